#!/usr/bin/env python3
"""Database growth for one busy simulated hour: rec-market-feed's change-only storage against
storing every poll (what the old watchdog did: every market's REST answer every second).

The simulator (activity = the sim_activity default, a busy real BTC hour) runs in this
process and steps one simulated hour at ``--speed`` simulated seconds a wall second;
rec-market-feed runs as a real process against it, its compaction clock scaled by the same
speed (a compaction every 10 simulated seconds, a segment per 15 simulated minutes).

The baseline is what the old watchdog did (rec_io's kalshi_api_watchdog): once a second it
fetched GET /events/{event} (the event with all its markets and their quotes) and stored the
answer, every poll, whole. Here every followed series' open event is "polled" that way, plus
each market's full order book, and stored two ways: one JSONB row per event per poll
(PostgreSQL compresses such large values about 5x) and one row per market per poll as the
old watchdog's table had (rows under 2 kB stay uncompressed). Prints the database growth
(pg_total_relation_size: tables, TOAST, indexes) of the feed and of both baselines, and the
ratios.

    .venv/bin/python -m benchmarks.feed_storage [--minutes 60] [--activity 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime

import psycopg

from app import config
from app.db import feed_log
from app.sim import views
from benchmarks.datain import Bench

FEED_TABLES = ("feed_log", "feed_log_open", "feed_log_hot", "feed_market_ids", "feed_quotes",
               "feed_book_levels", "feed_freshness")
BASE_TABLES = ("poll_answers",)
ROW_TABLES = ("poll_rows",)


def size(conn: psycopg.Connection, tables: tuple[str, ...]) -> int:
    return sum(conn.execute("SELECT pg_total_relation_size(%s)", (t,)).fetchone()[0]
               for t in tables)


def rows(conn: psycopg.Connection, tables: tuple[str, ...]) -> int:
    return sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables)


def parts_of(conn: psycopg.Connection, table: str) -> dict[str, int]:
    """A table's bytes on disk by part: heap, TOAST (with its index), each index."""
    out = dict(conn.execute(
        "SELECT 'heap', pg_relation_size(c.oid) FROM pg_class c WHERE c.oid = %s::regclass "
        "UNION ALL SELECT 'TOAST', pg_total_relation_size(reltoastrelid) FROM pg_class "
        "WHERE oid = %s::regclass AND reltoastrelid <> 0 UNION ALL SELECT i.indexrelid::regclass"
        "::text, pg_relation_size(i.indexrelid) FROM pg_index i WHERE i.indrelid = "
        "%s::regclass", (table, table, table)).fetchall())
    return out


def records(conn: psycopg.Connection) -> dict[str, int]:
    """The feed's history records by kind (decoded from the segments and hot batches)."""
    names = {feed_log.LEVEL: "level changes", feed_log.TICK: "ticker changes",
             feed_log.TRADE: "trades", feed_log.BOOK: "snapshots", feed_log.GAP: "gaps"}
    out = dict.fromkeys(names.values(), 0)
    blobs = [feed_log.segment_bytes(d) for (d,) in conn.execute(
        "SELECT data FROM feed_log UNION ALL SELECT data FROM feed_log_open")]
    blobs += [d for (d,) in conn.execute("SELECT data FROM feed_log_hot")]
    for blob in blobs:
        for r in feed_log.records(blob):
            out[names[r.kind]] += 1
    return out


def poll(ex, series: tuple[str, ...], now: datetime) -> tuple[list[tuple], list[tuple]]:
    """One poll of every followed series' open event: (event rows, market rows)."""
    events: dict[str, list] = {}
    for m in ex.markets.values():
        if m.status == "active" and m.series_ticker in series:
            events.setdefault(m.event_ticker, []).append(m)
    per_event, per_market = [], []
    for ev, markets in events.items():
        answer = {"event": views.event_dict(ex.events[ev]), "markets": [], "orderbooks": {}}
        for m in markets:
            market = views.market_dict(m, ex.books.get(m.ticker))
            book = views.orderbook_dict(ex.books[m.ticker], 0)
            answer["markets"].append(market)
            answer["orderbooks"][m.ticker] = book
            per_market.append((m.ticker, now, json.dumps({"market": market, "orderbook": book})))
        per_event.append((ev, now, json.dumps(answer)))
    return per_event, per_market


async def copy_rows(conn: psycopg.AsyncConnection, table: str, key: str,
                    rows_: list[tuple]) -> None:
    async with conn.cursor() as cur:
        async with cur.copy(f"COPY {table} ({key}, polled_at, answer) FROM STDIN") as cp:
            for r in rows_:
                await cp.write_row(r)


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--activity", type=float, default=None,
                    help="taker trades per market per minute (default: the sim_activity "
                         "default, a busy hour)")
    ap.add_argument("--speed", type=float, default=30.0,
                    help="simulated seconds per wall second")
    args = ap.parse_args()
    defaults = json.loads(config.DEFAULT_FILE.read_text())
    activity = args.activity if args.activity is not None else defaults["sim_activity"]
    series = tuple(defaults["market_feed_series"].split(","))
    b = Bench(activity_per_min=activity)
    await b.start_sim()
    try:
        with psycopg.connect(b.dsn, autocommit=True) as conn:
            for table, key in (("poll_answers", "event_ticker"), ("poll_rows", "ticker")):
                conn.execute(f"CREATE TABLE {table} (id BIGINT GENERATED ALWAYS AS IDENTITY "
                             f"PRIMARY KEY, {key} TEXT NOT NULL, polled_at TIMESTAMPTZ NOT "
                             "NULL, answer JSONB NOT NULL)")
        compact = defaults["market_feed_compact_interval_sec"] / args.speed
        segment = defaults["market_feed_segment_sec"] / args.speed
        _, notify, log = b.run("market-feed", REC_MARKET_FEED_COMPACT_INTERVAL_SEC=f"{compact:g}",
                               REC_MARKET_FEED_SEGMENT_SEC=f"{segment:g}")
        await b.ready(notify, log)
        await asyncio.sleep(1.0)
        sim = b.sim
        with psycopg.connect(b.dsn, autocommit=True) as conn:
            feed0 = size(conn, FEED_TABLES)
            sent0 = sim.hub.sent
            acur = await psycopg.AsyncConnection.connect(b.dsn, autocommit=True)
            per_event: list[tuple] = []
            per_market: list[tuple] = []
            t0 = time.monotonic()
            for second in range(args.minutes * 60):
                sim.world.step()
                ev_rows, m_rows = poll(sim.exchange, series, datetime.now(UTC))
                per_event += ev_rows
                per_market += m_rows
                if second % 60 == 59:
                    await copy_rows(acur, "poll_answers", "event_ticker", per_event)
                    await copy_rows(acur, "poll_rows", "ticker", per_market)
                    per_event.clear()
                    per_market.clear()
                    print(f"  simulated minute {second // 60 + 1}/{args.minutes}", end="\r",
                          file=sys.stderr, flush=True)
                # the pace: the simulator's writers send, the feed stores and compacts
                await asyncio.sleep(max(0.0, t0 + (second + 1) / args.speed - time.monotonic()))
            wall = time.monotonic() - t0
            await acur.close()
            await asyncio.sleep(2.0 + 2 * compact)  # the last batches and their compaction
            feed = size(conn, FEED_TABLES) - feed0
            kinds = records(conn)
            base = size(conn, BASE_TABLES)
            base_rows = rows(conn, BASE_TABLES)
            per_row = size(conn, ROW_TABLES)
            per_row_rows = rows(conn, ROW_TABLES)
            raw = conn.execute("SELECT sum(octet_length(answer::text)) FROM poll_answers"
                               ).fetchone()[0]
            msgs = sim.hub.sent - sent0
            detail = {t: (size(conn, (t,)), rows(conn, (t,))) for t in FEED_TABLES}
            parts = parts_of(conn, "feed_log")
            stored, packed = conn.execute(
                "SELECT coalesce(sum(octet_length(data)), 0), count(*) FROM (SELECT data FROM "
                "feed_log UNION ALL SELECT data FROM feed_log_open) s").fetchone()
            unpacked = sum(len(feed_log.segment_bytes(d))
                           for (d,) in conn.execute(
                               "SELECT data FROM feed_log UNION ALL "
                               "SELECT data FROM feed_log_open"))
        out = await asyncio.to_thread(log.read_text)
        hour = 60 / args.minutes
        print(f"\nsimulated {args.minutes} min in {wall:.0f} s at activity {activity:g} taker "
              f"trades/market/min, series {','.join(series)} ({msgs:,} WS messages to the "
              "feed):")
        print(f"  change-only (rec-market-feed): {feed / 2**10:10.1f} KiB  "
              + ", ".join(f"{n:,} {k}" for k, n in kinds.items()))
        for t, (nbytes, n) in detail.items():
            print(f"    {t:<22} {nbytes / 2**10:10.1f} KiB  {n:>9,} rows")
        print("    (feed_log: " + ", ".join(f"{k} {v / 2**10:.1f} KiB" for k, v in parts.items())
              + ")")
        print(f"    (the {packed} segments and chunks: {unpacked / 2**10:.1f} KiB of records, "
              f"{stored / 2**10:.1f} KiB compressed)")
        n = sum(kinds.values())
        print(f"    bytes per record: {stored / max(n, 1):.2f} compressed (LZMA segments and "
              f"chunks), {unpacked / max(n, 1):.1f} unpacked; {n:,} records")
        print(f"  every poll, one JSONB row per event:  {base / 2**20:8.2f} MiB  "
              f"{base_rows:>9,} rows")
        print(f"  every poll, one row per market:       {per_row / 2**20:8.2f} MiB  "
              f"{per_row_rows:>9,} rows")
        print(f"  (the polls' JSON text: {raw / 2**20:.2f} MiB)")
        print(f"  ratio change-only / every poll (JSONB per event, compressed): "
              f"{feed / base * 100:.3f} %  (goal < 1 %)")
        print(f"  ratio change-only / every poll (a row per market, as the old watchdog): "
              f"{feed / per_row * 100:.3f} %")
        print(f"  ratio change-only / the polls' JSON text: {feed / raw * 100:.3f} %")
        print(f"  per hour: change-only {feed * hour / 2**20:.2f} MiB, every poll "
              f"{base * hour / 2**20:.1f} MiB (JSONB per event), "
              f"{per_row * hour / 2**20:.1f} MiB (row per market)")
        if "Traceback" in out:
            print(out[-2000:])
    finally:
        await b.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
