-- Record (issue 25): what an exact replay needs that 001-015 did not keep.
--
-- * index_ticks: every value the index channel published, one row each (index_prices keeps
--   one row per second, the last value of the second: on cfbenchmarks_value_5hz it dropped
--   four of five). ts is the index's own time (ms); sending_ms the venue's send time of the
--   message (sending_ts_ms, Kalshi since v3.32; NULL when absent); received_at rec's.
--   Written by rec-price-feed in the transaction of the second's index_prices row; pruned
--   with index_prices (price_feed_retention_days).
-- * market_status_log: every status / result a market's row took, with rec's time
--   (rec-market-feed writes markets; a trigger keeps the log, so the feed's code is
--   unchanged): when a market opened, closed, was determined and settled, as rec saw it.

CREATE TABLE index_ticks (
    index_name          TEXT NOT NULL,
    ts                  TIMESTAMPTZ NOT NULL,       -- the value's source time (ms)
    value               NUMERIC(20, 8) NOT NULL CHECK (value > 0),
    channel             TEXT NOT NULL,              -- cfbenchmarks_value | _5hz
    sending_ms          BIGINT,                     -- the venue's send time (sending_ts_ms)
    received_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (index_name, ts)
);
CREATE INDEX index_ticks_ts_idx ON index_ticks (ts);

CREATE TABLE market_status_log (
    ticker              TEXT NOT NULL,
    status              TEXT NOT NULL,
    result              TEXT,
    at                  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX market_status_log_ticker_idx ON market_status_log (ticker, at);

CREATE FUNCTION markets_status_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('rec.importing', true) = 'on' THEN  -- rec record import: the file's log
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status
       OR NEW.result IS DISTINCT FROM OLD.result THEN
        INSERT INTO market_status_log (ticker, status, result)
        VALUES (NEW.ticker, NEW.status, NEW.result);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER markets_status_log AFTER INSERT OR UPDATE OF status, result ON markets
    FOR EACH ROW EXECUTE FUNCTION markets_status_log();

-- the markets known before this migration: their current state, as of now
INSERT INTO market_status_log (ticker, status, result, at)
SELECT ticker, status, result, updated_at FROM markets;
