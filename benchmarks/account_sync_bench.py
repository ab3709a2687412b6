#!/usr/bin/env python3
"""rec-account-sync: initial sync of 10,000 fills, and the reconcile after a 60 s WS outage.

The simulator runs in this process; the benchmark gives the account 10,000 fills (one
contract each, against the simulated market maker), then starts `rec run account-sync` as
a real process against it and a real PostgreSQL and prints spawn -> READY and the service's
own "initial sync done in" time. Then the WebSocket is refused for --outage seconds while
fills keep happening (only REST has them); once it is back, the reconcile's time and the
time until the database holds every fill are printed.

    .venv/bin/python -m benchmarks.account_sync_bench [--fills 10000] [--outage 60]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import time
from pathlib import Path

import psycopg

from app.sim.money import CENT
from app.sim.venue import OrderRequest
from benchmarks.datain import Bench


def make_fills(b: Bench, n: int) -> int:
    """Taker orders of one contract each until the account has ``n`` more fills."""
    sim = b.sim
    acct = sim.account(b.signer.key_id)
    target = len(acct.fills) + n
    side = 0
    while len(acct.fills) < target:
        for m in list(sim.exchange.markets.values()):
            if m.status != "active" or len(acct.fills) >= target:
                continue
            side ^= 1
            req = OrderRequest(m.ticker, side="yes" if side else "no", action="buy", count=1,
                               price=99 * CENT, tif="immediate_or_cancel")
            sim.exchange.place(acct, req)
        sim.world.step()  # the market maker requotes
    return len(acct.fills)


async def db_fills(dsn: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT count(*) FROM account_fills")
        return (await cur.fetchone())[0]


async def wait_line(log: Path, pattern: str, after: int, timeout: float) -> re.Match:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = await asyncio.to_thread(log.read_text)
        m = re.compile(pattern).search(text, after)
        if m:
            return m
        await asyncio.sleep(0.05)
    raise SystemExit(f"no line matching {pattern!r}:\n{text[-3000:]}")


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fills", type=int, default=10_000)
    ap.add_argument("--outage", type=float, default=60.0)
    args = ap.parse_args()
    logging.getLogger("uvicorn.error").disabled = True  # refused handshakes are the point
    b = Bench(activity_per_min=0.0)
    await b.start_sim()
    try:
        t0 = time.monotonic()
        total = make_fills(b, args.fills)
        print(f"account has {total:,} fills (made in {time.monotonic() - t0:.1f}s)")
        t0 = time.monotonic()
        _, notify, log = b.run("account-sync", REC_KALSHI_WS_BACKOFF_MAX_SEC="2",
                               REC_ACCOUNT_SYNC_INITIAL_DEADLINE_SEC="80")
        to_ready = await b.ready(notify, log)
        m = await wait_line(log, r"initial sync done in ([0-9.]+)s: (.*)", 0, 5)
        stored = await db_fills(b.dsn)
        print(f"initial sync of {total:,} fills: {float(m.group(1)):.2f}s "
              f"(spawn -> READY {to_ready:.2f}s, incl. imports and the post-subscribe "
              f"reconcile); {stored:,} fills stored; {m.group(2)}")

        sim = b.sim
        f = sim.faults
        f.error_status, f.error_count, f.error_prefix = 503, 1_000_000, "/trade-api/ws"
        await sim.hub.drop_all()
        mark = len(await asyncio.to_thread(log.read_text))
        print(f"WebSocket refused for {args.outage:g}s while fills continue ...", flush=True)
        end = time.monotonic() + args.outage
        while time.monotonic() < end:
            make_fills(b, 5)
            await asyncio.sleep(0.5)
        total = len(sim.account(b.signer.key_id).fills)
        f.clear()
        back = time.monotonic()
        m = await wait_line(log, r"reconcile \(after reconnect\) done in ([0-9.]+)s: (.*)",
                            mark, 60)
        seen = time.monotonic() - back
        while await db_fills(b.dsn) < total:  # noqa: ASYNC110 - polling the database
            await asyncio.sleep(0.05)
        exact = time.monotonic() - back
        print(f"reconcile after a {args.outage:g}s outage: {float(m.group(1)):.2f}s "
              f"({m.group(2)}); WS back -> reconcile logged {seen:.2f}s, -> all {total:,} "
              f"fills in the database {exact:.2f}s")
    finally:
        await b.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
