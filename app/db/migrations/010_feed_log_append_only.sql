-- rec-market-feed's history append-only, LZMA-compressed and without public trade ids
-- (issue 11: storage per busy simulated hour under 1 % of storing every poll as the old
-- watchdog's table did).
--
-- * 009's compactor rewrote a market's growing segment every compaction; each rewrite left
--   a dead copy of the whole segment (TOAST included) that VACUUM frees but the table keeps.
--   Now it inserts one small chunk per market and compaction into feed_log_open, and every
--   market_feed_segment_sec (each market at its own phase, so the markets' open chunks do
--   not all peak together) merges a market's chunks into one sealed feed_log segment and
--   deletes them (app/db/feed_log.py: compact). feed_log holds sealed
--   segments only (insert-only until retention), so its index stays small; feed_log_open is
--   a few hundred small rows (read whole by the compactor, per market by readers: no index).
--   009's open segments move into feed_log_open as they are (every segment form decodes).
-- * New chunks and segments are by column and LZMA (first byte 3), about a fifth smaller
--   than by column and zlib (first byte 2).
-- * Public trades are stored without the exchange's trade id (a random 16-byte UUID that
--   does not compress: a third of the stored history). rec-market-feed de-duplicates a trade
--   seen twice by its id in memory over the last minutes (store.Tracker.trade); nothing
--   reads the id from the history. Trades stored before keep their id.

CREATE TABLE feed_log_open (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY,
    market              INTEGER NOT NULL,
    t0                  TIMESTAMPTZ NOT NULL,       -- when the chunk was stored
    data                BYTEA NOT NULL
);
ALTER TABLE feed_log_open ALTER COLUMN data SET STORAGE EXTERNAL;  -- compressed already

INSERT INTO feed_log_open (market, t0, data)
SELECT market, t0, data FROM feed_log WHERE NOT sealed ORDER BY id;
DELETE FROM feed_log WHERE NOT sealed;
