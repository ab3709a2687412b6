#!/usr/bin/env python3
"""Make the checked-in recording (tests/fixtures/rec-sim.parquet) the way a host records:
the simulator (in this process, its clock stepped one simulated second at a time at
``--speed``), rec-market-feed and rec-price-feed (5 Hz channel) as real processes against a
PostgreSQL of their own, then ``rec record export`` of the simulated window.

The feeds stamp what they receive (book changes, lifecycle) with their own clock, which
live is the exchange's give or take the network; here the simulated clock runs ``--speed``
times faster than the wall clock, so each feed process runs with ``time.time`` following
the simulated clock (``REC_FIXTURE_CLOCK``: the simulator's start, the shared monotonic
instant it started at, the speed). Nothing else of the feeds changes. PostgreSQL's own
``now()`` (rows' ``received_at``, ``market_status_log.at``) stays the wall clock.

    .venv/bin/python -m benchmarks.record_fixture [--hours 2] [--speed 40] [--activity 2]
        [--series KXBTCD,KXETHD] [--out tests/fixtures/rec-sim.parquet]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.datain import ROOT, Bench
from testkit.notify import NotifySocket
from testkit.sim import START_MS

CLOCK = "REC_FIXTURE_CLOCK"


def shimmed(service: str) -> int:
    """Run ``service`` with time.time on the simulated clock (see the module's doc)."""
    start_ms, mono0, speed = (float(x) for x in os.environ[CLOCK].split(","))

    def sim_time() -> float:  # still at the start until the stepping begins at mono0
        return (start_ms + max(0.0, time.monotonic() - mono0) * speed * 1000) / 1000

    time.time = sim_time
    from app.cli import main

    return main(["run", service])


def run(b: Bench, service: str, clock: str, **extra: str):
    notify = NotifySocket.open()
    env = {**b.env(**extra), "NOTIFY_SOCKET": str(notify.path), CLOCK: clock}
    log = b.home / f"{service}.log"
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.record_fixture", "--shimmed",
                             service], env=env, cwd=ROOT, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT)
    b.procs.append(proc)
    b.notifies.append(notify)
    return notify, log


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--speed", type=float, default=40.0,
                    help="simulated seconds per wall second")
    ap.add_argument("--activity", type=float, default=2.0,
                    help="taker trades per market per minute")
    ap.add_argument("--series", default="KXBTCD,KXETHD")
    ap.add_argument("--out", type=Path, default=ROOT / "tests/fixtures/rec-sim.parquet")
    ap.add_argument("--lead", type=float, default=45.0,
                    help="wall seconds the feeds get to become ready before the clock runs")
    args = ap.parse_args()
    # the feeds sign with their (simulated) time: the simulator checks it against the wall's
    b = Bench(activity_per_min=args.activity, max_clock_skew_ms=10**13)
    await b.start_sim()
    try:
        mono0 = time.monotonic() + args.lead  # the simulated clock runs from then on
        clock = f"{START_MS},{mono0},{args.speed}"
        scale = {"REC_MARKET_FEED_COMPACT_INTERVAL_SEC": f"{10 / args.speed:g}",
                 "REC_MARKET_FEED_SEGMENT_SEC": f"{300 / args.speed:g}",
                 "REC_PRICE_FEED_RETENTION_DAYS": "3650",  # the simulated dates are old
                 "REC_PRICE_FEED_STALE_AFTER_SEC": "600"}
        waits = [run(b, "market-feed", clock, REC_MARKET_FEED_SERIES=args.series, **scale),
                 run(b, "price-feed", clock, REC_PRICE_FEED_CHANNEL="cfbenchmarks_value_5hz",
                     **scale)]
        for notify, log in waits:
            await b.ready(notify, log, timeout=args.lead)
        await asyncio.sleep(max(0.0, mono0 - time.monotonic()))
        steps = int(args.hours * 3600)
        t0 = time.monotonic()
        for second in range(steps):
            b.sim.world.step()
            if second % 600 == 599:
                print(f"  simulated {(second + 1) / 3600:.2f} h of {args.hours:g}",
                      file=sys.stderr, flush=True)
            await asyncio.sleep(max(0.0, mono0 + (second + 1) / args.speed - time.monotonic()))
        wall = time.monotonic() - t0
        await asyncio.sleep(3 + 20 / args.speed)  # the last batches and their compaction
        env = b.env()
        start = datetime.fromtimestamp(START_MS / 1000, UTC)
        end = datetime.fromtimestamp((START_MS + steps * 1000) / 1000, UTC)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        r = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "app.cli", "record", "export", "--from",
                            start.isoformat(), "--to", end.isoformat(), "--series",
                             args.series, str(args.out)], env=env, cwd=ROOT, text=True,
            capture_output=True)
        sys.stderr.write(r.stderr)
        print(r.stdout)
        print(f"{steps} simulated seconds in {wall:.0f} s wall ({args.speed:g}x); "
              f"{b.sim.hub.sent:,} WS messages sent")
        return r.returncode
    finally:
        await b.close()


if __name__ == "__main__":
    if "--shimmed" in sys.argv:
        sys.exit(shimmed(sys.argv[sys.argv.index("--shimmed") + 1]))
    sys.exit(asyncio.run(main()))
