"""Trading figures: intent -> exchange acknowledgement, and the supervisor's cycle.

    .venv/bin/python -m benchmarks.trading_bench [--n 300] [--rounds 5] [--trades 100]

A PostgreSQL of its own, the simulator in a process of its own (uvloop + httptools, unlimited
tier, no simulated liquidity so orders rest), rec-trade-manager, rec-trade-executor and
rec-trade-supervisor as real `rec run` processes.

1. intent -> ack: N sequential ``POST /trades?wait=`` (open, good_till_canceled at $0.02: the
   exchange acknowledges a resting order) answered once the executor recorded the exchange's
   acknowledgement; p50/p99, against a bare signed HTTP round trip of the same order creation
   (httpx + the signer, straight to the simulator) in the same run, and the ratio. The two
   alternate in ``--rounds`` blocks (bare, intents, bare, intents, ..., bare), so a slow
   stretch of the machine weighs on both; the ratio of each intent block to the bare blocks
   either side is printed too;
2. the supervisor's cycle with ``--trades`` open trades (strike table and book rows for each):
   its own reported cycle time over 20 cycles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from app.db.migrate import migrate
from app.kalshi.rest import KalshiRest
from app.kalshi.signing import Signer, generate_private_key
from benchmarks.simproc import SimProcess, service_env
from testkit import pg as pgserver
from testkit.net import free_port
from testkit.notify import NotifySocket

ROOT = Path(__file__).resolve().parent.parent


PREFIX = "/trade-api/v2"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def line(name: str, xs: list[float]) -> str:
    return (f"{name:<44} p50 {statistics.median(xs):7.3f} ms   p99 {pct(xs, 0.99):7.3f} ms   "
            f"(n={len(xs)})")


class Harness:
    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="rec-trading-bench-"))
        self.pg = pgserver.start()
        self.pg.create_app_db("rec", "rec", "bench-pw")
        self.dsn = self.pg.dsn("rec", "bench-pw", "rec")
        migrate(self.dsn, progress=lambda _: None)
        self.signer = Signer("bench-trading", generate_private_key())
        self.sim = SimProcess([self.signer], liquid=False)
        self.procs: list[subprocess.Popen] = []
        self.ports = {k: free_port() for k in ("manager", "executor", "supervisor")}

    def env(self) -> dict[str, str]:
        return service_env(self.home, self.pg.port, self.signer, self.sim.port,
                           REC_LOG_LEVEL="warning",
                           REC_TRADE_MANAGER_PORT=str(self.ports["manager"]),
                           REC_TRADE_EXECUTOR_PORT=str(self.ports["executor"]),
                           REC_TRADE_SUPERVISOR_PORT=str(self.ports["supervisor"]))

    async def run(self, service: str) -> None:
        notify = NotifySocket.open()
        env = self.env()
        env["NOTIFY_SOCKET"] = str(notify.path)
        log = open(self.home / f"{service}.log", "wb")  # noqa: ASYNC230 - setup
        self.procs.append(subprocess.Popen(  # noqa: ASYNC220 - setup
            [sys.executable, "-m", "app.cli", "run", service],
                                           env=env, cwd=ROOT, stdout=log,
                                           stderr=subprocess.STDOUT))
        await asyncio.to_thread(notify.wait_for, "READY", "1", 60)

    async def markets(self) -> list[str]:
        async with KalshiRest(self.sim.base + PREFIX, self.signer) as rest:
            page = await rest.get_markets(series_ticker="KXBTCD", status="open", limit=100)
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            for m in page.items:
                raw = {"price_level_structure": m.price_level_structure,
                       "price_ranges": [r.model_dump(mode="json") for r in m.price_ranges or []]}
                await conn.execute(
                    "INSERT INTO markets (ticker, event_ticker, series_ticker, title, status, "
                    "price_level_structure, raw, followed) VALUES (%s,%s,%s,%s,'active',%s,%s,"
                    "true)", (m.ticker, m.event_ticker, "KXBTCD", m.title or "",
                              m.price_level_structure, json.dumps(raw)))
            await conn.execute(
                "UPDATE trading_settings SET value = %s WHERE key = %s",
                ('"good_till_canceled"', "open_time_in_force"))
            for key in ("max_contracts_per_market", "max_open_exposure_dollars"):
                await conn.execute("UPDATE trading_settings SET value = '1000000' "
                                   "WHERE key = %s", (key,))
        return [m.ticker for m in page.items]

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.sim.stop()
        pgserver.remove(self.pg)


async def timed(send, check, keys: range, warmup: int) -> list[float]:
    """``send(i)`` for each key in turn, its answer checked after the clock stops; the
    milliseconds of each after the first ``warmup``."""
    out = []
    for n, i in enumerate(keys):
        t0 = time.perf_counter()
        r = await send(i)
        dt = (time.perf_counter() - t0) * 1000
        check(r)
        if n >= warmup:
            out.append(dt)
    return out


async def bare(h: Harness, ticker: str, n: int, tag: str, warmup: int = 20) -> list[float]:
    path = PREFIX + "/portfolio/events/orders"
    async with httpx.AsyncClient(base_url=h.sim.base, timeout=10) as c:
        def send(i: int):
            body = {"ticker": ticker, "client_order_id": f"bare-{tag}-{i}", "side": "bid",
                    "count": "1.00", "price": "0.0200", "time_in_force": "good_till_canceled",
                    "self_trade_prevention_type": "taker_at_cross"}
            return c.post(path, json=body, headers=h.signer.headers("POST", path))

        def check(r: httpx.Response) -> None:
            assert r.status_code == 201, r.text

        return await timed(send, check, range(n + warmup), warmup)


async def intents(h: Harness, tickers: list[str], n: int, first: int = 0,
                  warmup: int = 20) -> list[float]:
    base = f"http://127.0.0.1:{h.ports['manager']}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        def send(i: int):
            body = {"intent": "open", "idempotency_key": f"bench-{i}",
                    "market": tickers[i % len(tickers)], "side": "yes", "count": 1,
                    "limit_price": "0.02"}
            return c.post("/trades", json=body, params={"wait": "5"})

        def check(r: httpx.Response) -> None:
            assert r.status_code == 201 and r.json()["trade"]["status"] == "submitted", r.text

        return await timed(send, check, range(first, first + n + warmup), warmup)


async def stages(h: Harness) -> list[float]:
    """The executor's own send -> ack times, and two stages on the database's clock."""
    async with await psycopg.AsyncConnection.connect(h.dsn) as conn:
        cur = await conn.execute("SELECT ack_ms FROM trade_orders WHERE ack_ms IS NOT NULL "
                                 "ORDER BY created_at OFFSET 20")
        exec_ms = [float(r[0]) for r in await cur.fetchall()]
        cur = await conn.execute(
            "SELECT extract(epoch FROM o.acked_at - o.created_at) * 1000, "
            "extract(epoch FROM e.ts - o.acked_at) * 1000 FROM trade_orders o "
            "JOIN trade_events e ON e.trade_id = o.trade_id AND e.kind = 'order accepted' "
            "ORDER BY o.created_at OFFSET 20")
        rows = await cur.fetchall()
    print(line("  intent committed -> executor acked (db clock)", [float(r[0]) for r in rows]))
    # 0 when the executor reported straight to the manager: one statement writes both
    print(line("  executor acked -> manager applied (db clock)", [float(r[1]) for r in rows]))
    return exec_ms


async def supervisor_cycle(h: Harness, tickers: list[str], trades: int) -> list[float]:
    async with await psycopg.AsyncConnection.connect(h.dsn, autocommit=True) as conn:
        await conn.execute("UPDATE trades SET status = 'canceled'")
        for i in range(trades):
            t = tickers[i % len(tickers)]
            await conn.execute(
                "INSERT INTO trades (ticker, side, status, quantity, entry_price, entry_cost, "
                "fees, entry_method) VALUES (%s, 'yes', 'open', 2, 0.50, 1.00, 0.02, 'auto')",
                (t,))
        for t in tickers:
            await conn.execute(
                "INSERT INTO strike_table (market_ticker, series_ticker, event_ticker, "
                "computed_at, close_time, index_name, index_ts, strike, index_price, momentum, "
                "buffer, buffer_pct, probability, prob_source, sample_size, yes_ask, no_ask, "
                "active_side, time_to_close_sec, window_sec, window_progress) VALUES "
                "(%s, 'KXBTCD', 'E', now(), now(), 'BRTI', now(), 100000, 100100, 0.01, 100, "
                "0.1, 0.8, 'lognormal', 100, 0.55, 0.47, 'yes', 1800, 60, 0) "
                "ON CONFLICT DO NOTHING", (t,))
            await conn.execute("INSERT INTO feed_book_levels (ticker, side, price, quantity, "
                               "updated_at) VALUES (%s, 'yes', 0.52, 10, now()) "
                               "ON CONFLICT DO NOTHING", (t,))
    await h.run("trade-supervisor")
    url = f"http://127.0.0.1:{h.ports['supervisor']}/status"
    seen: list[float] = []
    last = -1
    async with httpx.AsyncClient(timeout=5) as c:
        while len(seen) < 20:
            st = (await c.get(url)).json()
            if st["cycles"] != last and st.get("open_trades") == trades:
                last = st["cycles"]
                seen.append(st["last_cycle_ms"])
            await asyncio.sleep(0.2)
    return seen


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5,
                    help="bare and intent blocks alternate: N/rounds each, then one more bare")
    ap.add_argument("--trades", type=int, default=100)
    args = ap.parse_args()
    h = Harness()
    try:
        await h.sim.ready()
        tickers = await h.markets()
        await h.run("trade-executor")
        await h.run("trade-manager")
        block = max(1, args.n // args.rounds)
        b, total, ratios = await bare(h, tickers[1], block, "r0"), [], []
        for r in range(args.rounds):  # alternating blocks: drift hits both sides alike
            t = await intents(h, tickers, block, first=r * (block + 20), warmup=20 if r == 0
                              else 5)
            b2 = await bare(h, tickers[1], block, f"r{r + 1}", warmup=5)
            ratios.append((statistics.median(t), statistics.median(b[-block:] + b2)))
            total, b = total + t, b + b2
        exec_ms = await stages(h)
        print("intent -> exchange acknowledgement (sequential, loopback):")
        print(line("bare signed POST order (httpx + signer)", b))
        print(line("POST /trades?wait -> acknowledged trade", total))
        print(line("  of which executor send -> ack", exec_ms))
        ratio = statistics.median(total) / statistics.median(b)
        print(f"ratio intent->ack / bare: p50 {ratio:.2f}x, "
              f"p99 {pct(total, 0.99) / pct(b, 0.99):.2f}x; per block (p50 against the bare "
              f"blocks either side): "
              f"{', '.join(f'{t / x:.2f} ({t:.2f}/{x:.2f} ms)' for t, x in ratios)}")
        cyc = await supervisor_cycle(h, tickers, args.trades)
        print(f"\nsupervisor cycle, {args.trades} open trades (its own timing, 20 cycles): "
              f"p50 {statistics.median(cyc):.2f} ms, max {max(cyc):.2f} ms (period 1000 ms)")
    finally:
        h.stop()


if __name__ == "__main__":
    asyncio.run(main())
