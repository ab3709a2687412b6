"""`rec backtest` (issue 25, docs/replay.md): the trading bundle on a replayed recording.
So far its report (report.py); the command that stands the bundle up is still to come."""
