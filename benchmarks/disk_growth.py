#!/usr/bin/env python3
"""Disk growth: what a busy simulated day adds to each table, and the disk a year takes at the
default retention settings.

    .venv/bin/python -m benchmarks.disk_growth [--hours 24] [--speed 300]

Runs tests/test_trading_day.py (every service a real process against the simulator and a real
PostgreSQL, auto entry on, the market and index feeds storing everything) for ``--hours``
simulated hours, reads each table's bytes on disk (with indexes and TOAST) and live rows at the
start and the end, and prints per table: the growth per simulated day, the retention that bounds
it (app/db/retention.py, rec-market-feed's own for ``feed_log``) and its size after a year at
the defaults of app/config.default.json. A table kept for ever grows 365 days' worth; one with
a retention of N days holds N days' worth; a working-set table (rows replaced, not added:
the current books, the open segments) holds what it holds after the run. The simulator's
activity is a busy real BTC hour (``sim_activity``), so these figures are an upper bound for a
quiet market.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from benchmarks.pytest_figures import ROOT, run

DEFAULTS = json.loads((ROOT / "app" / "config.default.json").read_text())
# table -> the setting of its retention in days (0 or absent: kept for ever)
RETENTION = {
    "feed_log": "market_feed_retention_days",
    "index_prices": "price_feed_retention_days",
    "index_ticks": "price_feed_retention_days",  # pruned with index_prices (rec-price-feed)
    "auto_entry_decisions": "auto_entry_decisions_retention_days",
    "trade_events": "trade_events_retention_days",
}
# tables whose rows are replaced, not added (the current books, the open segments, the newest
# quote and status of each thing): their size is a working set however long rec runs
WORKING_SET = {"feed_log_hot", "feed_log_open", "feed_book_levels", "feed_status",
               "strike_table", "watchlist", "series_status", "index_freshness",
               "account_balance", "account_sync_state", "trading_settings"}
MIB = 1024 * 1024


def retention_days(table: str) -> int | None:
    days = DEFAULTS.get(RETENTION.get(table, ""), 0)
    return days or None


def report(lines: list[str], hours: float) -> list[str]:
    per_day = {}
    for line in lines:
        _, table, size, rows = line.split()
        per_day[table] = (int(size) * 24 / hours, int(rows) * 24 / hours)
    out = [f"{'table':<26} {'MiB/day':>9} {'rows/day':>11} {'kept':>9} {'MiB/year':>10}"]
    total_day = total_year = 0.0
    for table, (size, rows) in sorted(per_day.items(), key=lambda kv: -kv[1][0]):
        if size <= 0 and rows <= 0:
            continue
        days = retention_days(table)
        if table in WORKING_SET:  # its size after the run, whatever the length
            year, kept = size * hours / 24, "working"
        else:
            year, kept = size * min(365, days or 365), f"{days} d" if days else "always"
        total_day += size
        total_year += year
        out.append(f"{table:<26} {size / MIB:9.2f} {rows:11.0f} {kept:>9} {year / MIB:10.1f}")
    out.append(f"{'all tables':<26} {total_day / MIB:9.2f} {'':>11} {'':>9} "
               f"{total_year / MIB:10.1f}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--speed", type=float, default=300.0,
                    help="simulated seconds per wall second")
    args = ap.parse_args()
    env = {"REC_DAY_HOURS": str(args.hours), "REC_DAY_SPEED": str(args.speed),
           "REC_DAY_DISK": "1"}
    lines: list[str] = []
    rc = run("tests/test_trading_day.py", env, "disk:", keep=lines)
    if rc == 0 and lines:
        print(f"\ndisk growth over {args.hours} simulated hours at {args.speed:g}x, scaled to "
              f"a day; a year at the default retention (load average now "
              f"{os.getloadavg()[0]:.2f}):")
        print("\n".join(report(lines, args.hours)))
    return rc


if __name__ == "__main__":
    sys.exit(main())
