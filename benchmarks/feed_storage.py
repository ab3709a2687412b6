#!/usr/bin/env python3
"""Database growth for one busy simulated hour: rec-market-feed's change-only storage against
storing every poll (what the old watchdog did: every market's REST answer every second).

The simulator (activity = the sim_activity default, a busy real BTC hour) runs in this
process and steps one simulated hour as fast as the feed keeps up; rec-market-feed runs as a
real process against it. Alongside, the benchmark "polls" as the old watchdog did - once a
simulated second, every followed event's REST answer (GET /events/{event} with its markets)
and each market's order book - and stores every answer whole (JSONB, one row per event per
poll). Prints both database growths (tables + indexes) and their ratio.

    .venv/bin/python benchmarks/feed_storage.py [--minutes 60] [--activity 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from app import config
from app.sim import views
from benchmarks.datain import Bench

FEED_TABLES = ("feed_ticks", "feed_book_changes", "feed_book_snapshots", "feed_trades",
               "feed_book_levels", "feed_freshness")
BASE_TABLES = ("poll_answers",)


def size(conn: psycopg.Connection, tables: tuple[str, ...]) -> int:
    return sum(conn.execute("SELECT pg_total_relation_size(%s)", (t,)).fetchone()[0]
               for t in tables)


def rows(conn: psycopg.Connection, tables: tuple[str, ...]) -> int:
    return sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables)


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--activity", type=float, default=None,
                    help="taker trades per market per minute (default: the sim_activity "
                         "default, a busy hour)")
    args = ap.parse_args()
    activity = args.activity
    if activity is None:
        activity = json.loads(config.DEFAULT_FILE.read_text())["sim_activity"]
    b = Bench(activity_per_min=activity)
    await b.start_sim()
    try:
        with psycopg.connect(b.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE poll_answers (id BIGINT GENERATED ALWAYS AS IDENTITY "
                         "PRIMARY KEY, event_ticker TEXT NOT NULL, polled_at TIMESTAMPTZ NOT "
                         "NULL, answer JSONB NOT NULL)")
        _, notify, log = b.run("market-feed")
        await b.ready(notify, log)
        await asyncio.sleep(1.0)
        sim = b.sim
        ex = sim.exchange
        with psycopg.connect(b.dsn, autocommit=True) as conn:
            feed0 = size(conn, FEED_TABLES)
            feed_rows0 = rows(conn, FEED_TABLES[:4])
            sent0 = sim.hub.sent
            acur = await psycopg.AsyncConnection.connect(b.dsn, autocommit=True)
            answers: list[tuple] = []
            for second in range(args.minutes * 60):
                sim.world.step()
                now = datetime.now(UTC)
                events: dict[str, list] = {}
                for m in ex.markets.values():
                    if m.status == "active" and m.series_ticker in ("KXBTCD", "KXBTC"):
                        events.setdefault(m.event_ticker, []).append(m)
                for ev, markets in events.items():
                    answer = {
                        "event": views.event_dict(ex.events[ev]),
                        "markets": [views.market_dict(m, ex.books.get(m.ticker))
                                    for m in markets],
                        "orderbooks": {m.ticker: views.orderbook_dict(ex.books[m.ticker], 0)
                                       for m in markets},
                    }
                    answers.append((ev, now, json.dumps(answer)))
                if second % 60 == 59:
                    async with acur.cursor() as cur:
                        async with cur.copy("COPY poll_answers (event_ticker, polled_at, answer) "
                                            "FROM STDIN") as cp:
                            for r in answers:
                                await cp.write_row(r)
                    answers.clear()
                    print(f"  simulated minute {second // 60 + 1}/{args.minutes}", end="\r",
                          file=sys.stderr, flush=True)
                await asyncio.sleep(0.004)  # the simulator's writers send; the feed stores
            await acur.close()
            await asyncio.sleep(2.0)  # the last batches
            feed = size(conn, FEED_TABLES) - feed0
            feed_rows = rows(conn, FEED_TABLES[:4]) - feed_rows0
            base = size(conn, BASE_TABLES)
            base_rows = rows(conn, BASE_TABLES)
            raw = conn.execute("SELECT sum(octet_length(answer::text)) FROM poll_answers"
                               ).fetchone()[0]
            msgs = sim.hub.sent - sent0
            detail = {t: (size(conn, (t,)), rows(conn, (t,))) for t in FEED_TABLES[:4]}
        out = await asyncio.to_thread(log.read_text)
        print(f"\nsimulated {args.minutes} min at activity {activity:g} taker trades/market/min "
              f"({msgs:,} WS messages to the feed):")
        print(f"  change-only (rec-market-feed): {feed / 2**20:8.2f} MiB  {feed_rows:>9,} rows")
        for t, (nbytes, n) in detail.items():
            print(f"    {t:<22} {nbytes / 2**20:8.2f} MiB  {n:>9,} rows")
        print(f"  every 1 s poll stored whole:   {base / 2**20:8.2f} MiB  {base_rows:>9,} rows")
        print(f"  (the polls' JSON text, before PostgreSQL compresses it: {raw / 2**20:.2f} MiB)")
        print(f"  ratio change-only / every poll: {feed / base * 100:.2f} %  (goal < 1 %)")
        print(f"  ratio change-only / uncompressed poll answers: {feed / raw * 100:.2f} %")
        hour = 60 / args.minutes
        print(f"  per hour: change-only {feed * hour / 2**20:.1f} MiB, every poll "
              f"{base * hour / 2**20:.1f} MiB")
        if "Traceback" in out:
            print(out[-2000:])
    finally:
        await b.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
