#!/usr/bin/env python3
"""A full simulated trading day: tests/test_trading_day.py at 24 hourly events.

    .venv/bin/python benchmarks/trading_day.py [--hours 24] [--speed 500]

The test suite runs a shorter day (REC_DAY_HOURS, 6 by default there) to stay near two
minutes of wall time; this runs the same test - every service a real process, auto entry on,
the simulator's faults (kill -9 between send and acknowledgement, lost answers, 429 and 5xx
storms, a WebSocket drop, a trading pause) and the ledger comparison to the cent - over the
whole day, and prints its figures (intents, exchange orders, trades and their outcomes,
settled hours, P&L, fees, wall time) with the load average.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--speed", type=float, default=500.0,
                    help="simulated seconds per wall second")
    args = ap.parse_args()
    env = {**os.environ, "REC_DAY_HOURS": str(args.hours), "REC_DAY_SPEED": str(args.speed)}
    load0 = os.getloadavg()
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           "tests/test_trading_day.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    wall = time.monotonic() - t0
    figures = [ln for ln in proc.stdout.splitlines() if ln.startswith("day:")]
    print("\n".join(figures) or proc.stdout[-6000:])
    print(f"{'passed' if proc.returncode == 0 else 'FAILED'} in {wall:.0f} s "
          f"(load average before {load0[0]:.2f}, after {os.getloadavg()[0]:.2f})")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
