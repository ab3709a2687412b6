-- rec-trade-executor cancels resting legs (trade_orders.state 'cancel' -> 'canceled'), also
-- during an exchange pause; when an entry that rests is given up
INSERT INTO trading_settings (key, value, description) VALUES
  ('open_order_max_rest_sec', '0',
   'an entry order resting this long is canceled (0: it rests until the market closes)')
ON CONFLICT (key) DO NOTHING;
