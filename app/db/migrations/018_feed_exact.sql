-- Record (issue 25): the market lifecycle message itself (market_lifecycle_v2), beside the
-- status rec-market-feed already keeps: the settlement value and the exchange's
-- determination and settlement times. Additive: nullable columns, no rewrite of old rows
-- (NULL: stored before 018, or the message did not say).
--
-- feed_log's records changed form too (no DDL: the bytes are rec's own): the exchange's seq,
-- the other clock and sending_ts_ms on WebSocket records, GAP records, and the LZMA segment
-- form with their columns (app/db/feed_log.py; older records and segments read as before).

ALTER TABLE markets ADD COLUMN settlement_value NUMERIC(10, 4);  -- dollars a YES contract paid
ALTER TABLE markets ADD COLUMN determined_at TIMESTAMPTZ;        -- determination_ts
ALTER TABLE markets ADD COLUMN settled_at TIMESTAMPTZ;           -- settled_ts
