-- rec-trade-manager paces the closes of each trade: at most close_orders_per_minute close
-- orders a minute, and after each close that ended without a fill a wait that doubles up to
-- close_backoff_max_sec (the exit rule may not repeat orders that cannot fill)
INSERT INTO trading_settings (key, value, description) VALUES
  ('close_orders_per_minute', '6', 'at most this many close orders per trade per minute'),
  ('close_backoff_max_sec', '60',
   'after a close that did not fill, wait 1, 2, 4 ... seconds up to this before the next')
ON CONFLICT (key) DO NOTHING;
