-- A leg whose order write has an unknown outcome (the answer lost, a 5xx or a transport error
-- after the client's retries): rec-trade-executor sets in_doubt_since; while such a leg is
-- still 'new', rec-trade-manager refuses opens on its market (409 market_in_doubt), until the
-- exchange's record of its client_order_id settles it (NautilusTrader's rule).
ALTER TABLE trade_orders ADD COLUMN in_doubt_since TIMESTAMPTZ;
CREATE INDEX trade_orders_in_doubt_idx ON trade_orders (ticker)
    WHERE state = 'new' AND in_doubt_since IS NOT NULL;
