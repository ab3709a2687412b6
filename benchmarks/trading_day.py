#!/usr/bin/env python3
"""A full simulated trading day: tests/test_trading_day.py at 24 hourly events.

    .venv/bin/python -m benchmarks.trading_day [--hours 24] [--speed 500]

The test suite runs a shorter day (REC_DAY_HOURS, 6 by default there) to stay near two
minutes of wall time; this runs the same test - every service a real process, auto entry on,
the simulator's faults (kill -9 between send and acknowledgement, lost answers, 429 and 5xx
storms, a WebSocket drop, a trading pause) and the ledger comparison to the cent - over the
whole day, and prints its figures (intents, exchange orders, trades and their outcomes,
settled hours, P&L, fees, wall time) with the load average.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.pytest_figures import run


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--speed", type=float, default=500.0,
                    help="simulated seconds per wall second")
    args = ap.parse_args()
    return run("tests/test_trading_day.py",
               {"REC_DAY_HOURS": str(args.hours), "REC_DAY_SPEED": str(args.speed)}, "day:")


if __name__ == "__main__":
    sys.exit(main())
