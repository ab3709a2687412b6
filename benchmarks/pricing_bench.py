#!/usr/bin/env python3
"""Pricing figures against a real PostgreSQL (testkit's), each with the services' own code:

* **price row write latency**: rec-price-feed's write of one second's row (index_prices
  upsert + index_freshness + NOTIFY, one transaction), p50/p99/max over --rows rows;
* **coordinator cycle time**: rec-coordinator's whole cycle (model check, both series
  concurrently: index head, cache top-up, open event, books, volume, 20 strikes priced on a
  worker thread with the fingerprint model, one write transaction each) for 2 series x
  +-10 strikes, p50/p99/max over --cycles cycles; the goal is p99 < 50 ms against 1 s;
* **`rec model build`** on --days days of 1 s history of one index (COPY-loaded), as the
  command runs it: read, build, calibrate, store.

    .venv/bin/python -m benchmarks.pricing_bench [--rows 2000] [--cycles 300] [--days 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from app import config
from app.db.migrate import migrate
from app.db.pool import open_pool
from app.pricing.build import History, build
from app.pricing.index import IndexWindow
from app.services.coordinator import CoordinatorService
from app.services.price_feed import PriceFeedService
from app.sim.views import INDEX_NAMES
from app.sim.world import Index
from testkit import pg as pgserver

ROOT = Path(__file__).resolve().parent.parent


SERIES = (("KXBTCD", "BRTI", 100_000.0, 250), ("KXETHD", "ETHUSD_RTI", 3_500.0, 20))


def pcts(xs: list[float]) -> str:
    xs = sorted(xs)
    p99 = xs[min(len(xs) - 1, int(len(xs) * 0.99))]
    return (f"p50 {statistics.median(xs) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, "
            f"max {xs[-1] * 1000:.2f} ms (n={len(xs)})")


def environment(server: pgserver.PgServer, root: Path) -> dict[str, str]:
    (root / "creds").mkdir()
    (root / "creds" / "db_password").write_text("bench-pw")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REC_")}
    env.update(REC_CONFIG_DIR=str(root), REC_CREDENTIALS_PATH=str(root / "creds"),
               REC_STATE_DIR=str(root), REC_DB_HOST=server.host, REC_DB_PORT=str(server.port),
               REC_DB_NAME="rec", REC_DB_USER="rec", REC_DB_SSLMODE="disable",
               REC_COORDINATOR_MAX_INDEX_AGE_SEC="3600",
               REC_COORDINATOR_MAX_MARKET_AGE_SEC="3600", REC_LOG_LEVEL="warning",
               PYTHONPATH=str(ROOT))
    return env


async def bench_writes(settings: config.Settings, rows: int) -> list[float]:
    svc = PriceFeedService(settings)
    svc.pool = await open_pool(settings, "bench-price-feed")
    w = IndexWindow()
    ix = Index("BRTI", 100_000.0, 0.5, random.Random(1))
    t0 = int(time.time()) - rows - 3600
    lat = []
    try:
        for k in range(rows):
            ix.move(0)
            row = w.add(t0 + k, ix.value)
            t = time.perf_counter()
            await svc.write("BENCH", row)
            lat.append(time.perf_counter() - t)
    finally:
        await svc.pool.close()
    return lat


def seed_market_data(dsn: str) -> None:
    """2 series, an open event each with 41 strikes, books, volume, an hour of index rows."""
    now = int(time.time())
    close = (now // 3600 + 1) * 3600
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO feed_status (name, mode, since) VALUES ('market-feed', 'ws', "
                     "now()) ON CONFLICT (name) DO UPDATE SET updated_at = now()")
        for series, index, spot, step in SERIES:
            ix = Index(index, spot, 0.5, random.Random(2))
            with conn.cursor().copy("COPY index_prices (index_name, ts, price) FROM STDIN") as cp:
                for ts in range(now - 3700, now + 1):
                    ix.move(0)
                    cp.write_row((index, datetime.fromtimestamp(ts, UTC), ix.value))
            conn.execute("INSERT INTO index_freshness (index_name, state) VALUES (%s, 'live')",
                         (index,))
            event = f"{series}-BENCH"
            center = round(ix.value / step) * step
            for k in range(-20, 21):
                strike = center + k * step - 0.01
                ticker = f"{event}-T{strike:.2f}"
                rules = (f"If the simple average of the sixty seconds of {INDEX_NAMES[index]} "
                         f"before close is above ${strike:,.2f}, then the market resolves to Yes.")
                conn.execute(
                    "INSERT INTO markets (ticker, event_ticker, series_ticker, status, "
                    "strike_type, floor_strike, close_time, raw, followed) VALUES (%s, %s, %s, "
                    "'active', 'greater', %s, to_timestamp(%s), %s, true)",
                    (ticker, event, series, strike, close, json.dumps({"rules_primary": rules})))
                for side, price in (("yes", 0.40), ("no", 0.55)):
                    for lvl in range(5):
                        conn.execute("INSERT INTO feed_book_levels VALUES (%s, %s, %s, 100, now())",
                                     (ticker, side, round(price - lvl * 0.01, 2)))
                conn.execute("INSERT INTO feed_quotes (ticker, ts, source, volume) "
                             "VALUES (%s, now(), 'ws', 1234)", (ticker,))


def seed_models(dsn: str) -> None:
    """A fingerprint per index, built from a simulated week, so the cycle uses its tables."""
    with psycopg.connect(dsn) as conn:
        for _, index, spot, _ in SERIES:
            ix = Index(index, spot, 0.5, random.Random(3))
            from array import array
            prices = array("d", [0.0]) * (7 * 86_400)
            for i in range(len(prices)):
                ix.move(0)
                prices[i] = ix.value
            params, tables, n = build(History(1_764_000_000, prices), len(prices))
            conn.execute("INSERT INTO prob_models (index_name, train_samples, params, tables) "
                         "VALUES (%s, %s, %s, %s)", (index, n, json.dumps(params),
                                                     json.dumps(tables)))


async def bench_cycles(settings: config.Settings, cycles: int) -> tuple[list[float], dict]:
    svc = CoordinatorService(settings)
    svc.pool = await open_pool(settings, "bench-coordinator")
    try:
        await svc.load_models()
        await svc.cycle()  # warm: caches filled
        assert not svc.failing and not any(svc.warned.values()), (svc.failing, svc.warned)
        svc.durations.clear()
        for _ in range(cycles):
            await svc.cycle()
        async with svc.pool.connection() as conn:
            cur = await conn.execute("SELECT series_ticker, count(*), min(prob_source), "
                                     "max(prob_source) FROM strike_table GROUP BY 1")
            got = {r[0]: r[1:] for r in await cur.fetchall()}
        return list(svc.durations), {"rows": got, "failing": dict(svc.failing)}
    finally:
        svc.executor.shutdown()
        await svc.pool.close()


def bench_build(dsn: str, env: dict[str, str], days: float) -> tuple[float, str]:
    n = int(days * 86_400)
    end = int(time.time())
    ix = Index("BRTI", 100_000.0, 0.5, random.Random(4))
    t = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM index_prices WHERE index_name = 'BRTI'")
        with conn.cursor().copy("COPY index_prices (index_name, ts, price) FROM STDIN") as cp:
            for ts in range(end - n, end):
                ix.move(0)
                cp.write_row(("BRTI", datetime.fromtimestamp(ts, UTC), ix.value))
    print(f"  loaded {n:,} rows of BRTI in {time.perf_counter() - t:.1f}s", flush=True)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "app.cli", "model", "build", "--index", "BRTI",
                          "--days", str(days + 1), "--json"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=3600)
    took = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return took, out.stdout


async def amain(args: argparse.Namespace) -> None:
    server = pgserver.start()
    root = Path(tempfile.mkdtemp(prefix="rec-pricing-bench-"))
    try:
        server.create_app_db("rec", "rec", "bench-pw")
        dsn = server.dsn("rec", "bench-pw", "rec")
        migrate(dsn, progress=lambda _: None)
        env = environment(server, root)
        settings = config.load(env)
        lat = await bench_writes(settings, args.rows)
        print(f"price row write (upsert + freshness + NOTIFY, one txn): {pcts(lat)}", flush=True)
        seed_market_data(dsn)
        seed_models(dsn)
        durations, info = await bench_cycles(settings, args.cycles)
        print(f"coordinator cycle, 2 series x +-10 strikes: {pcts(durations)}; "
              f"rows {info['rows']}; failing {info['failing'] or 'none'}", flush=True)
        if args.days > 0:
            took, out = bench_build(dsn, env, args.days)
            r = json.loads(out)[0]
            print(f"rec model build, {args.days:g} days of 1 s BRTI history ({r['rows']:,} rows):"
                  f" {took:.1f}s in all (build {r['build_sec']}s, calibration "
                  f"{r['calibrate_sec']}s); Brier model {r['brier']:.4f}, lognormal "
                  f"{r['brier_lognormal']:.4f}, constant 0.5 0.2500 "
                  f"({r['predictions']:,} held-out predictions)", flush=True)
    finally:
        pgserver.remove(server)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--cycles", type=int, default=300)
    ap.add_argument("--days", type=float, default=30)
    asyncio.run(amain(ap.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
