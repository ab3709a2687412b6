-- rec-trade-manager's open statement sums today's realised P&L (max_daily_loss_dollars) on
-- every intent: by closing time through an index, not a scan of every trade ever made
CREATE INDEX trades_closed_at_idx ON trades (closed_at) WHERE closed_at IS NOT NULL;
