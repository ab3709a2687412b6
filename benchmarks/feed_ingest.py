#!/usr/bin/env python3
"""rec-market-feed ingest: WebSocket -> parse (KalshiWS) -> books -> history records -> commit.

A producer process speaks Kalshi's WS protocol (subscribe answers, orderbook_snapshot, then
orderbook_delta with per-subscription seq, each stamped with the wall-clock ms at send, in
the delta's ts_ms and the message's sending_ts_ms) as
fast as it can or paced at a rate. This process runs the feed's own pipeline - KalshiWS,
the feed's Tracker and FeedStore against a real PostgreSQL (testkit's) - and prints:

* the sustained persisted rate (msgs/s) unthrottled,
* tick -> commit latency p50/p99 paced at --rate (default 35,000 msgs/s),

each with permessage-deflate off and on, and where the CPU went per message across the
processes: this consumer, PostgreSQL (its server and every backend) and the producer. The
bare websockets client beside it is the limit the ratio is taken against; rec's own framing
(KalshiWS's FeedConnection) + orjson, nothing kept, is printed too: what parsing alone costs
with the framing rec uses. ``--profile`` prints where the consumer's time goes.

``--rounds`` short runs of rec and of the bare client in turn give as many ratios; the median
is the figure (one long run swung 0.5-1.0x with the machine's other load).

    .venv/bin/python -m benchmarks.feed_ingest [--seconds 3] [--rounds 5] [--rate 35000]
        [--only off|on] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import gc
import json
import multiprocessing as mp
import os
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

import orjson
from psycopg_pool import AsyncConnectionPool
from websockets.asyncio.client import connect

from app import config
from app.db.migrate import migrate
from app.kalshi.ws import KalshiWS
from app.kalshi.ws_frames import FeedConnection
from app.services.market_feed import MarketFeedService
from app.services.market_feed.store import FeedStore, Tracker
from testkit import pg as pgserver
from testkit.net import free_port
from testkit.ws import ws_frame

TICKERS = [f"KXBTCD-25NOV2517-T{100_000 + 250 * i - 0.01:.2f}" for i in range(20)]


# ---------------------------------------------------------------- producer (own process)

def _snapshot(sid: int, seq: int, ticker: str, book: dict) -> str:
    levels = {side: [[f"0.{p:02d}00", f"{q}.00"] for p, q in sorted(book[side].items())]
              for side in ("yes", "no")}
    return json.dumps({"type": "orderbook_snapshot", "sid": sid, "seq": seq,
                       "msg": {"market_ticker": ticker, "yes_dollars_fp": levels["yes"],
                               "no_dollars_fp": levels["no"]}})


async def _subscriptions(ws, books: dict) -> tuple[int, int]:
    """Answer the four subscribes (snapshots for orderbook_delta); (its sid, its last seq)."""
    sid, delta_sid, seq = 0, 0, 0
    async for raw in ws:
        cmd = json.loads(raw)
        if cmd.get("cmd") != "subscribe":
            await ws.send(json.dumps({"id": cmd.get("id"), "type": "ok", "msg": {}}))
            continue
        sid += 1
        ch = cmd["params"]["channels"][0]
        await ws.send(json.dumps({"id": cmd["id"], "type": "subscribed",
                                  "msg": {"channel": ch, "sid": sid}}))
        if ch == "orderbook_delta":
            delta_sid = sid
            for t in TICKERS:
                seq += 1
                await ws.send(_snapshot(sid, seq, t, books[t]))
        if sid == 4:  # every subscription answered: stream
            break
    return delta_sid, seq


def _deltas(rng: random.Random, books: dict, sid: int, seq: int, n: int) -> list[str]:
    """``n`` orderbook_delta messages after ``seq`` (sizes kept around 50), stamped now."""
    ts = int(time.time() * 1000)
    msgs = []
    for _ in range(n):
        t = TICKERS[rng.randrange(len(TICKERS))]
        side = "yes" if rng.random() < 0.5 else "no"
        p = rng.randrange(30, 50)
        q = books[t][side][p]
        d = 1 if q < 50 or rng.random() < 0.5 else -1
        books[t][side][p] = q + d
        seq += 1
        msgs.append(f'{{"type":"orderbook_delta","sid":{sid},"seq":{seq},"msg":'
                    f'{{"market_ticker":"{t}","price_dollars":"0.{p:02d}00",'
                    f'"delta_fp":"{d}.00","side":"{side}","ts_ms":{ts}}},'
                    f'"sending_ts_ms":{ts}}}')  # (Kalshi's send time, since 2026-10-01)
    return msgs


async def _send(ws, msgs: list[str], raw: bool) -> None:
    if raw:  # pre-framed writes: the producer costs little (limits.md)
        ws.transport.write(b"".join(ws_frame(m.encode()) for m in msgs))
        if ws.transport.get_write_buffer_size() > 2**22:
            await asyncio.sleep(0.001)
    else:
        for m in msgs:
            await ws.send(m)


def producer(port: int, rate: int, seconds: float, compression: bool, ready,
             done) -> None:
    from websockets.asyncio.server import serve

    books = {t: {"yes": {p: 100 for p in range(30, 50)}, "no": {p: 100 for p in range(30, 50)}}
             for t in TICKERS}
    rng = random.Random(1)
    burst = 200

    async def handler(ws) -> None:
        sid, seq = await _subscriptions(ws, books)
        t0 = time.monotonic()
        sent = 0
        while time.monotonic() < t0 + seconds:
            await _send(ws, _deltas(rng, books, sid, seq, burst), not compression)
            seq += burst
            sent += burst
            ahead = sent / rate - (time.monotonic() - t0) if rate else 0
            await asyncio.sleep(max(0.0, ahead))
        await ws.send(json.dumps({"type": "bench_done", "msg": {"sent": sent}}))
        done.sent.value = sent
        done.set()
        with contextlib.suppress(Exception):
            await ws.wait_closed()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port,
                         compression="deflate" if compression else None,
                         max_queue=None, write_limit=2**22):
            ready.set()
            await asyncio.Future()

    asyncio.run(main())


# ---------------------------------------------------------------- consumer (this process)

def feed_settings() -> config.Settings:
    d = tempfile.mkdtemp(prefix="rec-feed-bench-")
    return config.load({"REC_CONFIG_DIR": d, "REC_CREDENTIALS_PATH": d, "REC_STATE_DIR": d})


async def consume(port: int, dsn: str, compression: bool, profile: str | None, done) -> dict:
    """The feed's own consumer (``MarketFeedService.consume``) on KalshiWS, its Tracker and
    FeedStore committing to PostgreSQL: messages in, rows committed."""
    settings = feed_settings()
    pool = AsyncConnectionPool(dsn, min_size=2, max_size=4, open=False)
    await pool.open(wait=True)
    store = FeedStore(pool, name="bench", batch_rows=settings.market_feed_batch_rows,
                      flush_interval=settings.market_feed_flush_interval_ms / 1000,
                      snapshot_interval=3600)
    store.keep_latencies = True
    await store.ensure_ids(TICKERS)
    feed = MarketFeedService(settings)
    feed.store, feed.tracker = store, Tracker(store)
    feed.followed = dict.fromkeys(TICKERS)
    ws = feed.ws = KalshiWS(f"ws://127.0.0.1:{port}/trade-api/ws/v2", None,
                            compression="deflate" if compression else None,
                            ping_interval=None, queue_max=100_000, keep_books=False,
                            delta_runs=True)
    for ch in ("orderbook_delta", "ticker", "trade"):
        await ws.subscribe(ch, market_tickers=TICKERS)
    await ws.subscribe("market_lifecycle_v2")
    writer = asyncio.create_task(store.run())
    prof = cProfile.Profile() if profile else None
    async with ws:
        if prof:
            prof.enable()
        consumer = asyncio.create_task(feed.consume())
        while ws.stats.messages <= len(TICKERS):  # noqa: ASYNC110 (the snapshots come first)
            await asyncio.sleep(0.0005)
        first = time.monotonic()
        cpu0 = time.process_time()
        # until everything sent is received and committed
        while not done.is_set() or ws.lag()[0] or not store.batch.empty() or store.writing:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        last = store.last_commit_mono
        cpu = time.process_time() - cpu0
        if prof:
            prof.disable()
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    await pool.close()
    n = done.sent.value
    lat = sorted(store.latencies)
    out = {"received": n, "rate": n / (last - first), "cpu_us": cpu / n * 1e6 if n else 0,
           "p50_ms": lat[len(lat) // 2] * 1000 if lat else 0,
           "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else 0,
           "seq_gaps": ws.stats.seq_gaps}
    if prof:
        pstats.Stats(prof).sort_stats(profile).print_stats(30)
    return out


async def _subscribe_all(ws) -> None:
    for i, ch in enumerate(("orderbook_delta", "ticker", "trade", "market_lifecycle_v2")):
        await ws.send(orjson.dumps({"id": i + 1, "cmd": "subscribe",
                                    "params": {"channels": [ch]}}))


async def bare(port: int, compression: bool) -> dict:
    """The limit: the same frames through a bare websockets client and orjson, nothing kept."""
    n = 0
    async with connect(f"ws://127.0.0.1:{port}/trade-api/ws/v2", max_size=None, max_queue=None,
                       compression="deflate" if compression else None) as ws:
        await _subscribe_all(ws)
        first = 0.0
        async for raw in ws:
            msg = orjson.loads(raw)
            if msg.get("type") == "orderbook_delta":
                if not n:
                    first = time.monotonic()
                n += 1
            elif msg.get("type") == "bench_done":
                break
        last = time.monotonic()
    return {"received": n, "rate": n / (last - first) if n else 0.0}


async def framing(port: int, compression: bool) -> dict:
    """What parsing alone costs with rec's own framing (KalshiWS's FeedConnection) and orjson,
    nothing kept: the same frames; rec splits its frames itself, so it can beat :func:`bare`."""
    n, first, done = 0, 0.0, asyncio.Event()

    def on_message(raw: bytes) -> bool:
        nonlocal n, first
        kind = orjson.loads(raw).get("type")
        if kind == "orderbook_delta":
            if not n:
                first = time.monotonic()
            n += 1
        elif kind == "bench_done":
            done.set()
        return True

    async with connect(f"ws://127.0.0.1:{port}/trade-api/ws/v2", max_size=None,
                       compression="deflate" if compression else None,
                       create_connection=functools.partial(FeedConnection,
                                                           on_message=on_message)) as ws:
        await _subscribe_all(ws)
        await done.wait()
        last = time.monotonic()
    return {"received": n, "rate": n / (last - first) if n else 0.0}


class Done:
    """The producer's end: an event and how many deltas it sent."""

    def __init__(self, event, sent) -> None:
        self.event, self.sent = event, sent

    def set(self) -> None:
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its children it has reaped (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def family_cpu(pid: int) -> float:
    """CPU time of a process and of every child it has, alive or reaped (PostgreSQL: the
    postmaster, its backends and its background workers)."""
    total = cpu_seconds(pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def run(dsn: str, rate: int, seconds: float, compression: bool, profile: str | None,
        client: str = "rec", pg_pid: int | None = None) -> dict:
    """One producer run against this process's ``client`` (``rec``: the feed's consumer;
    ``bare``: the limit; ``framing``: rec's framing + orjson alone); adds the CPU each
    process spent per message (``cpu``: consumer, postgres, producer)."""
    port = free_port()
    ctx = mp.get_context("spawn")
    ready, done = ctx.Event(), Done(ctx.Event(), ctx.Value("q", 0))
    proc = ctx.Process(target=producer, args=(port, rate, seconds, compression, ready, done))
    proc.start()
    try:
        ready.wait(20)
        before = (time.process_time(), family_cpu(pg_pid) if pg_pid else 0.0,
                  cpu_seconds(proc.pid))
        work = (consume(port, dsn, compression, profile, done) if client == "rec"
                else bare(port, compression) if client == "bare" else framing(port, compression))
        out = asyncio.run(work)
        after = (time.process_time(), family_cpu(pg_pid) if pg_pid else 0.0,
                 cpu_seconds(proc.pid))
        n = max(out["received"], 1)
        out["cpu"] = [(b - a) / n * 1e6 for a, b in zip(before, after, strict=True)]
        return out
    finally:
        proc.terminate()
        proc.join(10)


def cpu_text(cpu: list[float]) -> str:
    return f"consumer {cpu[0]:.1f}, postgres {cpu[1]:.1f}, producer {cpu[2]:.1f}"


def wait_quiet(limit: float = 20.0) -> bool:
    """Wait until the machine is idle (< 0.15 core busy over 0.7 s), as limits.md did."""
    def busy() -> tuple[int, int]:
        f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return sum(f) - f[3] - f[4], sum(f)
    end = time.monotonic() + limit
    while time.monotonic() < end:
        b0, t0 = busy()
        time.sleep(0.7)
        b1, t1 = busy()
        ncpu = len([ln for ln in open("/proc/stat") if ln.startswith("cpu") and ln[3] != " "])
        if (b1 - b0) / max(1, t1 - t0) * ncpu < 0.15:
            return True
    return False


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def ratio_rounds(dsn: str, args: argparse.Namespace, compression: bool, pg_pid: int) -> None:
    """``--rounds`` short unthrottled runs of rec and of the limit, in turn (rec first in even
    rounds, the limit first in odd ones: a drift in the machine's load falls on both), each
    round's ratio and the median of them, with the load average each round began at."""
    name = "permessage-deflate " + ("on " if compression else "off")
    ratios, loads, recs, bares = [], [], [], []
    for i in range(args.rounds):
        loads.append(os.getloadavg()[0])
        order = ("rec", "bare") if i % 2 == 0 else ("bare", "rec")
        got = {c: run(dsn, 0, args.seconds, compression, args.profile if c == "rec" else None,
                      client=c, pg_pid=pg_pid if c == "rec" else None) for c in order}
        full, limit = got["rec"], got["bare"]
        ratios.append(full["rate"] / max(limit["rate"], 1e-9))
        recs.append(full)
        bares.append(limit)
        print(f"{name} round {i + 1}: rec {full['rate']:9,.0f} msgs/s persisted "
              f"({full['received']:,} msgs; p99 {full['p99_ms']:.0f} ms with backlog), "
              f"bare {limit['rate']:9,.0f} msgs/s: {ratios[-1]:.2f}x; CPU us/msg rec: "
              f"{cpu_text(full['cpu'])}; bare: consumer {limit['cpu'][0]:.1f}, producer "
              f"{limit['cpu'][2]:.1f}; load average {loads[-1]:.2f}", flush=True)
    per_cpu = [b["cpu"][0] / max(r["cpu"][0], 1e-9) for r, b in zip(recs, bares, strict=True)]
    print(f"{name}: rec / bare websockets + orjson (same frames, same run): median "
          f"{median(ratios):.2f}x (rounds: {', '.join(f'{r:.2f}' for r in ratios)}); rec "
          f"{median([r['rate'] for r in recs]):,.0f} msgs/s, consumer "
          f"{median([r['cpu'][0] for r in recs]):.1f} us/msg; bare "
          f"{median([r['rate'] for r in bares]):,.0f} msgs/s, consumer "
          f"{median([r['cpu'][0] for r in bares]):.1f} us/msg; messages per second of "
          f"consumer CPU, rec / bare: median {median(per_cpu):.2f}x (the machine's other "
          f"load moves it less); load average {min(loads):.2f}-{max(loads):.2f}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each run")
    ap.add_argument("--rate", type=int, default=35_000)
    ap.add_argument("--rounds", type=int, default=5,
                    help="unthrottled rounds of rec and the bare limit in turn (the median "
                         "ratio is the figure)")
    ap.add_argument("--profile", nargs="?", const="tottime", default=None,
                    choices=["tottime", "cumulative"],
                    help="print the consumer's profile, sorted by tottime (default) or "
                         "cumulative")
    ap.add_argument("--only", choices=["off", "on"], default=None,
                    help="only compression off or on")
    args = ap.parse_args()
    server = pgserver.start()
    try:
        server.create_app_db("rec", "rec", "bench-pw")
        dsn = server.dsn("rec", "bench-pw", "rec")
        migrate(dsn, progress=lambda _: None)
        gc.freeze()  # as rec-market-feed does once started; for rec and the bare client alike
        print("rec-market-feed ingest: producer process -> KalshiWS -> Tracker -> commit "
              f"({len(TICKERS)} markets, batches per the market_feed_batch_rows / "
              "market_feed_flush_interval_ms defaults)")
        for compression in (False, True):
            if args.only and (args.only == "on") != compression:
                continue
            name = "permessage-deflate " + ("on " if compression else "off")
            if not wait_quiet():
                print("(the machine did not go idle within 20 s: figures include other load)")
            ratio_rounds(dsn, args, compression, server.proc.pid)
            lean = run(dsn, 0, args.seconds, compression, None, client="framing")
            print(f"    rec's own framing + orjson alone (nothing kept): {lean['rate']:9,.0f} "
                  f"msgs/s, consumer {lean['cpu'][0]:.1f} us/msg; load average "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
            if args.rate:
                paced = run(dsn, args.rate, args.seconds, compression, None)
                print(f"{name}: paced {args.rate:,}/s -> {paced['rate']:9,.0f} msgs/s, "
                      f"tick->commit p50 {paced['p50_ms']:.1f} ms, p99 {paced['p99_ms']:.1f} ms "
                      f"(seq gaps {paced['seq_gaps']}); load average "
                      f"{os.getloadavg()[0]:.2f}", flush=True)
    finally:
        pgserver.remove(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
