-- The state of a series' last pricing cycle as a column (app/pricing/series.py SeriesState):
-- 'priced', 'warming' (history still coming by itself) or 'failed'. Before, a warming series
-- was ok = false with its error text behind a "warming up: " prefix that the reader parsed.
-- The error stays a message for people; nothing parses it.
ALTER TABLE series_status ADD COLUMN state TEXT NOT NULL DEFAULT 'failed'
    CHECK (state IN ('priced', 'warming', 'failed'));
UPDATE series_status SET state = CASE
    WHEN ok THEN 'priced'
    WHEN error LIKE 'warming up: %' THEN 'warming'
    ELSE 'failed' END;
