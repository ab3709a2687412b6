-- rec-market-feed's history, compact (issue 11: change-only storage against storing every
-- poll). 002's history tables stored one row per change with the ticker as text and NUMERIC
-- prices: about 220 bytes a change with their indexes. The history now is binary records
-- (app/services/market_feed/history.py: integer market ids, prices in $0.0001, sizes in
-- 1/100 contract): each committed batch one feed_log_hot row, moved by the feed's compactor
-- into one zlib-compressed feed_log segment per market and segment period. The current
-- book (feed_book_levels) and the latest ticker values (feed_quotes) stay plain tables.
-- 002's history rows are not converted (binary packing is the feed's); the latest ticker
-- values are carried into feed_quotes.

CREATE TABLE feed_market_ids (
    id                  INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticker              TEXT NOT NULL UNIQUE
);

-- the batches committed since the last compaction (no index: read whole, deleted whole)
CREATE TABLE feed_log_hot (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY,
    data                BYTEA NOT NULL
);

-- per market, the records moved between t0 and t1 (first byte: 0 raw, 1 zlib, 2 zlib by
-- column); the newest segment of a market grows at each compaction until sealed
CREATE TABLE feed_log (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY,
    market              INTEGER NOT NULL,
    t0                  TIMESTAMPTZ NOT NULL,
    t1                  TIMESTAMPTZ NOT NULL,
    sealed              BOOLEAN NOT NULL DEFAULT false,
    data                BYTEA NOT NULL
);
ALTER TABLE feed_log ALTER COLUMN data SET STORAGE EXTERNAL;  -- compressed already
CREATE INDEX feed_log_market_idx ON feed_log (market, id);

-- the latest ticker values of every followed market (what the dashboard and pricing read)
CREATE TABLE feed_quotes (
    ticker              TEXT PRIMARY KEY,
    ts                  TIMESTAMPTZ NOT NULL,       -- exchange time of the message
    source              TEXT NOT NULL CHECK (source IN ('ws', 'http')),
    yes_bid             NUMERIC(10, 4),
    yes_ask             NUMERIC(10, 4),
    yes_bid_size        NUMERIC(18, 2),
    yes_ask_size        NUMERIC(18, 2),
    last_price          NUMERIC(10, 4),
    volume              NUMERIC(18, 2),
    open_interest       NUMERIC(18, 2),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

INSERT INTO feed_quotes (ticker, ts, source, yes_bid, yes_ask, yes_bid_size, yes_ask_size,
                         last_price, volume, open_interest)
SELECT DISTINCT ON (ticker) ticker, ts, source, yes_bid, yes_ask, yes_bid_size, yes_ask_size,
       last_price, volume, open_interest
FROM feed_ticks ORDER BY ticker, ts DESC, id DESC;

DROP TABLE feed_ticks, feed_book_changes, feed_book_snapshots, feed_trades;
