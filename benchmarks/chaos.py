#!/usr/bin/env python3
"""A seeded chaos soak: tests/test_chaos.py for any seed and length.

    .venv/bin/python -m benchmarks.chaos --seed N --hours H [--speed 150]

Every trading and data service a real process against the simulator and a real PostgreSQL,
auto entry on, manual intents at a steady rate, and the faults of testkit.chaos.schedule(N)
at seeded moments (kill -9 of each service, the executor killed between send and
acknowledgement, lost answers, 429/5xx storms, WebSocket drops, a PostgreSQL restart with an
intent in flight, a halt, a scheduled pause, the market feed down while a market closes,
closes racing the settlement). At the end everything settles and the invariants are checked:
no duplicate client_order_id, no orphan either way, no unowned fill, no unfinished trade, the
trades' P&L equal to the cash change to the cent, fees equal, `rec ledger check` exit 0.
Prints the faults injected by kind, each invariant's figure, wall time and load average;
exits non-zero when an invariant fails.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.pytest_figures import run


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hours", type=int, default=6)
    ap.add_argument("--speed", type=float, default=150.0,
                    help="simulated seconds per wall second")
    args = ap.parse_args()
    return run("tests/test_chaos.py", {"REC_CHAOS_SEED": str(args.seed),
                                       "REC_CHAOS_HOURS": str(args.hours),
                                       "REC_CHAOS_SPEED": str(args.speed)}, "chaos:")


if __name__ == "__main__":
    sys.exit(main())
