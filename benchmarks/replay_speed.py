#!/usr/bin/env python3
"""Replay speed through the data path: the simulator replaying a recording (in this process,
flat out: as fast as its WebSocket clients read) -> WebSocket -> rec-market-feed (a real
process: KalshiWS, its Tracker, FeedStore committing to a PostgreSQL of its own).

Prints the messages the simulator sent, messages/s, and the speed-up over real time (the
recording's window over the wall time from the first event to the feed having read the
last message), with the load average beside them. Goal (issue 25): >= 100x real time.

    .venv/bin/python -m benchmarks.replay_speed [--file tests/fixtures/rec-sim.parquet]
        [--series KXBTCD,KXETHD]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from benchmarks.datain import ROOT, Bench

FIXTURE = ROOT / "tests" / "fixtures" / "rec-sim.parquet"


async def _subscribed(b: Bench, timeout: float = 60) -> None:
    """Until the feed has its orderbook_delta subscription on the simulator."""
    end = time.monotonic() + timeout
    while not b.sim.hub.by_channel["orderbook_delta"]:
        if time.monotonic() > end:
            raise SystemExit("rec-market-feed did not subscribe")
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)  # its snapshots and the rest of its subscriptions


async def _drained(b: Bench) -> None:
    """Until every WebSocket client has read what was queued for it."""
    while any(c.queue.qsize() for c in b.sim.hub.conns):  # noqa: ASYNC110 (a queue each)
        await asyncio.sleep(0.005)


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", type=Path, default=FIXTURE)
    ap.add_argument("--series", default="KXBTCD,KXETHD")
    args = ap.parse_args()
    b = Bench(replay_file=str(args.file))
    await b.start_sim()
    try:
        world = b.sim.world
        _, notify, log = b.run("market-feed", REC_MARKET_FEED_SERIES=args.series)
        await b.ready(notify, log)
        await _subscribed(b)
        window_s = (world.rec.end_ms - world.rec.start_ms) / 1000
        events = len(world.rec.events)
        sent0 = b.sim.hub.sent
        load0 = os.getloadavg()
        t0 = time.monotonic()
        world.flat_out = True
        await world.run(0)
        await _drained(b)
        sent_s = time.monotonic() - t0
        # the feed's own word (its STATUS=, every few seconds) that its queue is empty: an
        # upper bound on when it had taken in the last message
        after = time.monotonic()
        done = await asyncio.to_thread(notify.wait_until, lambda ms: any(
            m.at >= after and " queue 0 " in m.fields.get("STATUS", "") for m in ms), 300)
        wall = max(m.at for m in done if m.at >= after and " queue 0 " in
                   m.fields.get("STATUS", "")) - t0
        sent = b.sim.hub.sent - sent0
        load = os.getloadavg()
        print(f"replay of {args.file.name}: {window_s / 3600:.2f} h recorded, {events:,} "
              f"events, {len(world.rec.markets)} markets")
        print(f"  simulator replay -> WebSocket -> rec-market-feed: {sent:,} messages in "
              f"{wall:.1f} s wall (all sent and read by {sent_s:.1f} s; the feed's queue "
              f"empty by {wall:.1f} s) = {sent / wall:,.0f} msgs/s, {window_s / wall:.0f}x "
              f"real time (goal >= 100x)")
        followed = [s for s in notify.statuses() if "markets" in s][-1:]
        print(f"  rec-market-feed's last status: {followed[0] if followed else '-'}")
        print(f"  load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, after "
              f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)")
        return 0
    finally:
        await b.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
