"""Exchange simulator throughput (a script that prints figures, not a test).

    .venv/bin/python -m benchmarks.sim_bench [--seconds N]

1. matching engine alone: orders/s placed and matched in-process (no HTTP);
2. REST over loopback: orders/s the simulator accepts and matches, single orders and
   20-order batches, several signed httpx clients (the simulator runs in its own process);
3. WebSocket: messages/s the simulator pushes to one client (orderbook_delta, ticker and
   trade on every market while the world runs flat out);
4. one hostile WebSocket command (a 381 KB subscribe naming a channel 20,000 times, issue
   24): time to its answer and the slowest /healthz answered meanwhile (the loop's stall).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time

from app.kalshi.signing import Signer, generate_private_key
from app.sim.money import CENT
from app.sim.venue import Exchange, OrderRequest
from app.sim.world import World, WorldParams
from benchmarks.simproc import SimProcess
from testkit.sim import START_MS


def bench_engine(n: int = 200_000) -> None:
    w = World(WorldParams(seed=1, start_ms=START_MS, mm_levels=0, flow_rate_per_s=0))
    ex: Exchange = w.exchange
    tickers = [m.ticker for m in ex.markets.values() if m.status == "active"]
    a = ex.account("a", cash=10**12)
    b = ex.account("b", cash=10**12)
    rng = random.Random(1)
    reqs = []
    for i in range(n):
        side = "yes" if i % 2 else "no"
        reqs.append((a if i % 2 else b, OrderRequest(
            tickers[i % len(tickers)], side=side, action="buy", count=rng.randint(1, 20),
            price=rng.randint(40, 60) * CENT)))
    t0 = time.perf_counter()
    for acct, req in reqs:
        ex.place(acct, req)
    dt = time.perf_counter() - t0
    trades = len(ex.trades)
    print(f"engine (in-process):  {n / dt:>10,.0f} orders/s placed, "
          f"{trades / dt:>9,.0f} trades/s matched ({trades:,} trades from {n:,} orders)")


async def bench_rest(seconds: float, clients: int = 4) -> None:
    import httpx

    signers = [Signer(f"bench-{i}", generate_private_key()) for i in range(clients)]
    srv = SimProcess(signers, liquid=False)
    try:
        await srv.ready()
        async with httpx.AsyncClient() as c:
            r = await c.get(srv.base + "/trade-api/v2/markets", params={"status": "open"})
            tickers = [m["ticker"] for m in r.json()["markets"]]
        for batch in (1, 20):
            stats = {"orders": 0, "trades": 0}

            async def worker(i: int, s: Signer, end: float, batch: int = batch,
                             stats: dict = stats) -> None:
                rng = random.Random(i)
                path = "/trade-api/v2/portfolio/events/orders" + ("/batched" if batch > 1
                                                                   else "")
                async with httpx.AsyncClient(base_url=srv.base, timeout=10) as c:
                    while time.perf_counter() < end:
                        orders = [{"ticker": rng.choice(tickers),
                                   "side": "bid" if (i + k) % 2 else "ask",
                                   "count": f"{rng.randint(1, 20)}.00",
                                   "price": f"0.{rng.randint(40, 60):02d}",
                                   "time_in_force": "good_till_canceled",
                                   "self_trade_prevention_type": "taker_at_cross"}
                                  for k in range(batch)]
                        body = {"orders": orders} if batch > 1 else orders[0]
                        resp = await c.post(path, json=body, headers=s.headers("POST", path))
                        assert resp.status_code == 201, resp.text
                        data = resp.json()
                        items = data["orders"] if batch > 1 else [data]
                        stats["orders"] += len(items)
                        stats["trades"] += sum(o["fill_count"] != "0.00" for o in items)

            t0 = time.perf_counter()
            end = t0 + seconds
            await asyncio.gather(*(worker(i, s, end) for i, s in enumerate(signers)))
            dt = time.perf_counter() - t0
            label = "single orders" if batch == 1 else f"batches of {batch}"
            print(f"REST ({label:>14}, {clients} clients): {stats['orders'] / dt:>8,.0f} "
                  f"orders/s accepted, {stats['trades'] / dt:>8,.0f} orders/s (partly) matched")
    finally:
        srv.stop()


@contextlib.asynccontextmanager
async def liquid_sim(key_id: str):
    """A liquid simulator process, one signer, an httpx client and every market ticker."""
    import httpx

    s = Signer(key_id, generate_private_key())
    srv = SimProcess([s], liquid=True)
    try:
        await srv.ready()
        async with httpx.AsyncClient(base_url=srv.base, timeout=120) as c:
            r = await c.get("/trade-api/v2/markets", params={"limit": 1000})
            yield srv, s, c, [m["ticker"] for m in r.json()["markets"]]
    finally:
        srv.stop()


async def bench_ws(sim_seconds: int) -> None:
    from websockets.asyncio.client import connect

    async with liquid_sim("bench-ws") as (srv, s, c, tickers):
        url = srv.ws_url
        async with connect(url, additional_headers=s.headers("GET", "/trade-api/ws/v2"),
                           compression=None, max_size=2**24, max_queue=None) as ws:
            await ws.send(json.dumps({"id": 1, "cmd": "subscribe", "params": {
                "channels": ["orderbook_delta", "ticker", "trade"],
                "market_tickers": tickers}}))
            while True:  # acks and snapshots
                try:
                    await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    break
            # the world runs sim_seconds in one go (the loop is busy, messages queue up),
            # then the simulator pushes the backlog: that drain is what we time
            await c.post("/_sim/advance", json={"seconds": sim_seconds})
            n = 0
            first = last = None
            while True:
                try:
                    raw = await asyncio.wait_for(ws.recv(), 1.5)
                except TimeoutError:
                    break
                json.loads(raw)
                last = time.perf_counter()
                first = first or last
                n += 1
    dt = (last - first) if first and last else 0
    if dt:
        print(f"WS push to one client:  {n / dt:>10,.0f} msgs/s received and parsed "
              f"({n:,} messages in {dt:.2f}s; {sim_seconds} simulated seconds)")


async def bench_hostile_ws() -> None:
    from websockets.asyncio.client import connect

    async with liquid_sim("bench-hostile") as (srv, s, c, tickers):
        command = json.dumps({"id": 1, "cmd": "subscribe", "params": {
            "channels": ["orderbook_delta"] * 20_000, "market_tickers": tickers}})
        slowest = 0.0
        done = asyncio.Event()

        async def poll() -> None:
            nonlocal slowest
            while not done.is_set():
                t = time.perf_counter()
                await c.get("/healthz")
                slowest = max(slowest, time.perf_counter() - t)

        poller = asyncio.create_task(poll())
        async with connect(srv.ws_url, additional_headers=s.headers("GET", "/trade-api/ws/v2"),
                           compression=None, max_size=2**24) as ws:
            t0 = time.perf_counter()
            await ws.send(command)
            reply = json.loads(await asyncio.wait_for(ws.recv(), 60))
            took = time.perf_counter() - t0
        done.set()
        await poller
    print(f"hostile WS subscribe ({len(command) / 1000:.0f} KB): answered "
          f"{reply['type']} {reply['msg'].get('code', '')} in {took * 1000:.1f} ms; "
          f"slowest /healthz meanwhile {slowest * 1000:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    print(f"host: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    bench_engine()
    asyncio.run(bench_rest(args.seconds))
    asyncio.run(bench_ws(1800))
    asyncio.run(bench_hostile_ws())


if __name__ == "__main__":
    main()
