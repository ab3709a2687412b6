"""Exchange simulator throughput (a script that prints figures, not a test).

    .venv/bin/python benchmarks/sim_bench.py [--seconds N]

1. matching engine alone: orders/s placed and matched in-process (no HTTP);
2. REST over loopback: orders/s the simulator accepts and matches, single orders and
   20-order batches, several signed httpx clients (the simulator runs in its own process);
3. WebSocket: messages/s the simulator pushes to one client (orderbook_delta, ticker and
   trade on every market while the world runs flat out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.kalshi.signing import Signer, generate_private_key, public_pem  # noqa: E402
from app.sim.cli import register_public_key  # noqa: E402
from app.sim.exchange import Exchange, OrderRequest  # noqa: E402
from app.sim.world import World, WorldParams  # noqa: E402

START_MS = 1_764_086_400_000


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
            price=rng.randint(40, 60))))
    t0 = time.perf_counter()
    for acct, req in reqs:
        ex.place(acct, req)
    dt = time.perf_counter() - t0
    trades = len(ex.trades)
    print(f"engine (in-process):  {n / dt:>10,.0f} orders/s placed, "
          f"{trades / dt:>9,.0f} trades/s matched ({trades:,} trades from {n:,} orders)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int, keys_dir: str, liquid: bool) -> None:
    import uvicorn

    from app.sim.app import create_app
    from app.sim.config import SimConfig
    from app.sim.server import uvicorn_options

    world = WorldParams() if liquid else WorldParams(mm_levels=0, flow_rate_per_s=0)
    cfg = SimConfig(keys_dir=Path(keys_dir), seed=1, speed=0, start_ms=START_MS,
                    faults_enabled=True, rate_tier="unlimited", world=world,
                    start_balance_cents=10**12)
    uvicorn.run(create_app(cfg), host="127.0.0.1", port=port, log_level="warning",
                loop="uvloop", http="httptools", **uvicorn_options(cfg))


class Server:
    def __init__(self, signers: list[Signer], liquid: bool) -> None:
        self.dir = tempfile.mkdtemp(prefix="sim-bench-")
        for s in signers:
            register_public_key(Path(self.dir), s.key_id, public_pem(s.private_key))
        self.port = _free_port()
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(self.port),
                                      self.dir] + (["--liquid"] if liquid else []), cwd=ROOT)
        self.base = f"http://127.0.0.1:{self.port}"

    async def ready(self) -> None:
        import httpx

        async with httpx.AsyncClient() as c:
            for _ in range(200):
                try:
                    if (await c.get(self.base + "/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("simulator did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def bench_rest(seconds: float, clients: int = 4) -> None:
    import httpx

    signers = [Signer(f"bench-{i}", generate_private_key()) for i in range(clients)]
    srv = Server(signers, liquid=False)
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
                path = "/trade-api/v2/portfolio/orders" + ("/batched" if batch > 1 else "")
                async with httpx.AsyncClient(base_url=srv.base, timeout=10) as c:
                    while time.perf_counter() < end:
                        orders = [{"ticker": rng.choice(tickers),
                                   "side": "yes" if (i + k) % 2 else "no", "action": "buy",
                                   "count": rng.randint(1, 20),
                                   "yes_price" if (i + k) % 2 else "no_price":
                                       rng.randint(40, 60)} for k in range(batch)]
                        body = {"orders": orders} if batch > 1 else orders[0]
                        resp = await c.post(path, json=body, headers=s.headers("POST", path))
                        assert resp.status_code == 201, resp.text
                        data = resp.json()
                        items = [o["order"] for o in data["orders"]] if batch > 1 \
                            else [data["order"]]
                        stats["orders"] += len(items)
                        stats["trades"] += sum(o["fill_count_fp"] != "0.00" for o in items)

            t0 = time.perf_counter()
            end = t0 + seconds
            await asyncio.gather(*(worker(i, s, end) for i, s in enumerate(signers)))
            dt = time.perf_counter() - t0
            label = "single orders" if batch == 1 else f"batches of {batch}"
            print(f"REST ({label:>14}, {clients} clients): {stats['orders'] / dt:>8,.0f} "
                  f"orders/s accepted, {stats['trades'] / dt:>8,.0f} orders/s (partly) matched")
    finally:
        srv.stop()


async def bench_ws(sim_seconds: int) -> None:
    import httpx
    from websockets.asyncio.client import connect

    s = Signer("bench-ws", generate_private_key())
    srv = Server([s], liquid=True)
    try:
        await srv.ready()
        async with httpx.AsyncClient(base_url=srv.base, timeout=120) as c:
            r = await c.get("/trade-api/v2/markets", params={"limit": 1000})
            tickers = [m["ticker"] for m in r.json()["markets"]]
            url = f"ws://127.0.0.1:{srv.port}/trade-api/ws/v2"
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
    finally:
        srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--serve", nargs=2, metavar=("PORT", "KEYS_DIR"))
    ap.add_argument("--liquid", action="store_true")
    args = ap.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], args.liquid)
        return
    print(f"host: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    bench_engine()
    asyncio.run(bench_rest(args.seconds))
    asyncio.run(bench_ws(1800))


if __name__ == "__main__":
    main()
