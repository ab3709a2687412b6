"""The market feed's database side: change detection per market and batched COPY writes.

:class:`Tracker` keeps, per followed market, the book and ticker values last handed to the
store, and turns every message into the rows that changed (nothing changed: no row).
:class:`FeedStore` buffers rows and commits them in batches, each one transaction:
COPY into the history tables, the current book levels merged, freshness upserted, and one
``NOTIFY rec_market_feed`` carrying a summary of the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from app.kalshi.models import to_decimal

log = logging.getLogger("rec-market-feed.store")

NOTIFY_CHANNEL = "rec_market_feed"
ZERO = Decimal(0)

TICK_COLS = ("ticker", "ts", "received_at", "source", "yes_bid", "yes_ask", "yes_bid_size",
             "yes_ask_size", "last_price", "volume", "open_interest")
CHANGE_COLS = ("ticker", "received_at", "source", "side", "price", "quantity", "seq")
TRADE_COLS = ("trade_id", "ticker", "ts", "received_at", "yes_price", "count",
              "taker_outcome_side")
SNAPSHOT_COLS = ("ticker", "received_at", "source", "reason", "yes_levels", "no_levels")


def dec(value: Any) -> Decimal | None:
    """A wire fixed-point value as Decimal (None stays None)."""
    if value is None or value == "":
        return None
    return to_decimal(value)


def utc_ms(ms: int | None) -> datetime:
    return datetime.fromtimestamp((ms if ms is not None else time.time() * 1000) / 1000, UTC)


_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
NULL = "\\N"  # COPY text NULL
_clock: list[Any] = [0, None, ""]  # ms, its datetime and its text: made once per millisecond


def now_utc() -> datetime:
    """The time, to the millisecond (cheap to format many rows of one ms in a batch)."""
    ms = int(time.time() * 1000)
    if ms != _clock[0]:
        dt = datetime.fromtimestamp(ms / 1000, UTC)
        _clock[0], _clock[1], _clock[2] = ms, dt, dt.isoformat()
    return _clock[1]


def now_text() -> str:
    now_utc()
    return _clock[2]


def copy_text(value: str) -> str:
    """A string as a COPY text field."""
    return value.translate(_ESCAPE)


def change_line(key: str, source: str, side: str, price: Decimal, qty: Decimal,
                seq: int | None) -> str:
    """One feed_book_changes row in COPY text format (CHANGE_COLS order); ``key`` is the
    ticker already escaped. Formatted as it is made: the hottest row of the feed."""
    tail = NULL if seq is None else seq
    return f"{key}\t{now_text()}\t{source}\t{side}\t{price}\t{qty}\t{tail}\n"


def levels_json(side: dict[Decimal, Decimal]) -> str:
    return json.dumps([[str(p), str(q)] for p, q in sorted(side.items(), reverse=True)])


TickValues = tuple[Decimal | None, ...]  # yes_bid, yes_ask, sizes, last price, volume, OI


@dataclass
class MarketState:
    ticker: str
    yes: dict[Decimal, Decimal] = field(default_factory=dict)
    no: dict[Decimal, Decimal] = field(default_factory=dict)
    has_book: bool = False
    key: str = ""  # the ticker as a COPY text field
    tick: TickValues | None = None
    last_snapshot_mono: float = 0.0

    def side(self, side: str) -> dict[Decimal, Decimal]:
        return self.yes if side == "yes" else self.no


@dataclass
class Batch:
    ticks: list[tuple] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # COPY text lines (change_line)
    # WS deltas netted per level: key -> [size before the batch, size now, seq, time, ticker
    # as COPY text]; written as change lines when the size differs at the end of the batch
    net: dict[tuple[str, str, Decimal], list] = field(default_factory=dict)
    deltas: int = 0  # deltas netted into ``net``
    trades: list[tuple] = field(default_factory=list)
    snapshots: list[tuple] = field(default_factory=list)
    # current book: final size per level in this batch; replaced: tickers whose stored
    # levels are replaced by a full book (ticker -> (yes, no) copies at batch time)
    levels: dict[tuple[str, str, Decimal], Decimal] = field(default_factory=dict)
    replaced: dict[str, tuple[dict, dict]] = field(default_factory=dict)
    # freshness: ticker -> (last message time, changed?, source)
    touched: dict[str, tuple[datetime, bool, str]] = field(default_factory=dict)
    snapshotted: set[str] = field(default_factory=set)
    received: list[float] = field(default_factory=list)  # monotonic receive times (latency)

    @property
    def rows(self) -> int:
        """Rows and netted deltas waiting: what fills a batch (every delta counts, so a
        busy book that nets to few rows still flushes as often as a batch fills)."""
        return (len(self.ticks) + len(self.changes) + self.deltas + len(self.trades)
                + len(self.snapshots))

    def net_lines(self) -> None:
        """Move the netted deltas into ``changes`` (in the order they were first seen)."""
        for (_, side, price), (before, after, seq, ts, key) in self.net.items():
            if after != before:
                tail = NULL if seq is None else seq
                self.changes.append(f"{key}\t{ts}\tws\t{side}\t{price}\t{after}\t{tail}\n")
        self.net.clear()
        self.deltas = 0

    def empty(self) -> bool:
        return not (self.rows or self.levels or self.replaced or self.touched)


class Tracker:
    """What was last stored per market; turns messages into changed rows in a Batch."""

    def __init__(self, store: FeedStore) -> None:
        self.store = store
        self.markets: dict[str, MarketState] = {}

    def state(self, ticker: str) -> MarketState:
        st = self.markets.get(ticker)
        if st is None:
            st = self.markets[ticker] = MarketState(ticker, key=copy_text(ticker))
        return st

    def forget(self, ticker: str) -> None:
        self.markets.pop(ticker, None)

    # -- books ---------------------------------------------------------------------------
    def book(self, ticker: str, yes: dict[Decimal, Decimal], no: dict[Decimal, Decimal],
             source: str, reason: str, received: float | None = None) -> int:
        """A full book (WS snapshot or REST poll): store the levels that differ, and a
        compact snapshot when the book is new, resynced or due. Returns rows written."""
        st = self.state(ticker)
        b = self.store.batch
        now = now_utc()
        if b.net:
            b.net_lines()  # keep the order: deltas before this book
        n = 0
        for side, new in (("yes", yes), ("no", no)):
            old = st.side(side)
            for price in old.keys() | new.keys():
                q_old = old.get(price, ZERO)
                q_new = new.get(price, ZERO)
                if q_old != q_new:
                    b.changes.append(change_line(st.key, source, side, price, q_new, None))
                    n += 1
        first = not st.has_book
        st.yes, st.no, st.has_book = dict(yes), dict(no), True
        mono = time.monotonic()
        due = mono - st.last_snapshot_mono >= self.store.snapshot_interval
        if first or (reason == "resync" and n) or due:
            why = "initial" if first else (reason if reason == "resync" else "periodic")
            b.snapshots.append((ticker, now, source, why, levels_json(st.yes),
                                levels_json(st.no)))
            st.last_snapshot_mono = mono
            n += 1
        b.replaced[ticker] = (dict(st.yes), dict(st.no))
        for key in [k for k in b.levels if k[0] == ticker]:
            del b.levels[key]
        b.snapshotted.add(ticker)
        self._touch(ticker, now, n > 0, source, received)
        return n

    def delta(self, ticker: str, side: str, price: Decimal, delta: Decimal,
              seq: int | None, received: float | None = None) -> bool:
        st = self.markets.get(ticker)
        if st is None or not st.has_book or side not in ("yes", "no"):
            return False
        levels = st.side(side)
        old = levels.get(price, ZERO)
        qty = old + delta
        if qty <= 0:
            levels.pop(price, None)
            qty = ZERO
        else:
            levels[price] = qty
        b = self.store.batch
        now = now_utc()
        # net change per level per batch: a cancel and replace that restores a level within
        # one batch (50 ms) writes nothing; the last size and seq of a level are kept
        key = (ticker, side, price)
        b.deltas += 1
        net = b.net.get(key)
        if net is None:
            b.net[key] = [old, qty, seq, now_text(), st.key]
        else:
            net[1], net[2], net[3] = qty, seq, now_text()
        if ticker in b.replaced:
            rep = b.replaced[ticker][0 if side == "yes" else 1]
            if qty:
                rep[price] = qty
            else:
                rep.pop(price, None)
        else:
            b.levels[key] = qty
        self._touch(ticker, now, True, "ws", received)
        return True

    # -- ticker values -------------------------------------------------------------------
    def tick(self, ticker: str, values: TickValues, ts: datetime, source: str,
             received: float | None = None) -> bool:
        """Store a ticker row only if a value changed; returns True if one was written."""
        st = self.state(ticker)
        now = now_utc()
        if st.tick == values:
            self._touch(ticker, now, False, source, None)
            return False
        st.tick = values
        self.store.batch.ticks.append((ticker, ts, now, source, *values))
        self._touch(ticker, now, True, source, received)
        return True

    def trade(self, row: tuple, ticker: str, received: float | None = None) -> None:
        self.store.batch.trades.append(row)
        self._touch(ticker, now_utc(), True, "ws", received)

    def heard(self, ticker: str, source: str) -> None:
        """A message that changed nothing still proves the market is live."""
        self._touch(ticker, now_utc(), False, source, None)

    def _touch(self, ticker: str, at: datetime, changed: bool, source: str,
               received: float | None) -> None:
        b = self.store.batch
        prev = b.touched.get(ticker)
        b.touched[ticker] = (at, changed or (prev is not None and prev[1]), source)
        if received is not None and changed:
            b.received.append(received)
        self.store.poke()


class FeedStore:
    """Buffers rows and writes them in batches (COPY), one NOTIFY per batch."""

    def __init__(self, pool: AsyncConnectionPool, *, name: str, batch_rows: int,
                 flush_interval: float, snapshot_interval: float,
                 max_pending_batches: int = 50) -> None:
        self.pool = pool
        self.name = name
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        self.snapshot_interval = snapshot_interval
        self.max_pending_rows = batch_rows * max_pending_batches
        self.batch = Batch()
        self._first_at: float | None = None
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.snapshotted: set[str] = set()  # tickers with a committed snapshot this run
        self.snapshot_event = asyncio.Event()
        self.batches = 0
        self.rows_written = 0
        self.last_commit_mono = 0.0
        self.latencies: list[float] = []  # receive -> commit, seconds (benchmarks read it)
        self.keep_latencies = False
        self.failures = 0
        self.writing = False  # a batch is being committed

    # -- producer side -------------------------------------------------------------------
    def poke(self) -> None:
        if self._first_at is None:
            self._first_at = time.monotonic()
            self._wake.set()
        rows = self.batch.rows
        if rows >= self.batch_rows:
            self._full.set()
            if rows >= self.max_pending_rows:
                self._room.clear()

    async def room(self) -> None:
        """Wait while the database is too far behind (the feed then stops reading)."""
        if not self._room.is_set():
            await self._room.wait()

    # -- writer --------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            await self._wake.wait()
            first = self._first_at or time.monotonic()
            interval = self.flush_interval if self.batch.rows else max(self.flush_interval, 1.0)
            while self.batch.rows < self.batch_rows:
                left = first + interval - time.monotonic()
                if left <= 0:
                    break
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), left)
            batch, self.batch = self.batch, Batch()
            self._first_at = None
            self._wake.clear()
            self._full.clear()
            self.writing = True
            try:
                await self._write_until_done(batch)
            finally:
                self.writing = False
            if self.batch.rows < self.max_pending_rows:
                self._room.set()

    async def flush_now(self) -> None:
        """Write what is buffered (on stop)."""
        batch, self.batch = self.batch, Batch()
        self._first_at = None
        if not batch.empty():
            await asyncio.wait_for(self.write(batch), 5)

    async def _write_until_done(self, batch: Batch) -> None:
        delay = 0.1
        while True:
            try:
                await self.write(batch)
                if self.failures:
                    log.info("database writes work again after %d failed attempt(s)",
                             self.failures)
                self.failures = 0
                return
            except (psycopg.OperationalError, psycopg.errors.AdminShutdown,
                    psycopg.pool.PoolTimeout) as exc:
                self.failures += 1
                log.warning("feed batch of %d rows not written (%s); retrying in %.1fs",
                            batch.rows, str(exc).strip().splitlines()[0] if str(exc) else
                            type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    async def write(self, b: Batch) -> None:
        if b.empty():
            return
        async with self.pool.connection() as conn:
            async with conn.transaction():
                cur = conn.cursor()
                await _copy(cur, "feed_ticks", TICK_COLS, b.ticks)
                b.net_lines()
                await _copy_lines(cur, "feed_book_changes", CHANGE_COLS, b.changes)
                await _copy(cur, "feed_trades", TRADE_COLS, b.trades)
                await _copy(cur, "feed_book_snapshots", SNAPSHOT_COLS, b.snapshots)
                await self._levels(cur, b)
                await self._freshness(cur, b)
                payload = json.dumps({
                    "batch": self.batches + 1, "ticks": len(b.ticks),
                    "levels": len(b.changes), "trades": len(b.trades),
                    "snapshots": len(b.snapshots),
                    "tickers": sorted(b.touched)[:100],
                })
                await cur.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, payload))
        done = time.monotonic()
        self.batches += 1
        self.rows_written += b.rows
        self.last_commit_mono = done
        if self.keep_latencies:
            self.latencies.extend(done - r for r in b.received)
        if b.snapshotted:
            self.snapshotted |= b.snapshotted
            self.snapshot_event.set()

    async def _levels(self, cur: psycopg.AsyncCursor, b: Batch) -> None:
        now = now_utc()
        if b.replaced:
            await cur.execute("DELETE FROM feed_book_levels WHERE ticker = ANY(%s)",
                              (list(b.replaced),))
            rows = [(t, side, p, q, now) for t, (yes, no) in b.replaced.items()
                    for side, levels in (("yes", yes), ("no", no)) for p, q in levels.items()]
            await _copy(cur, "feed_book_levels",
                        ("ticker", "side", "price", "quantity", "updated_at"), rows)
        if b.levels:
            gone = [(t, s, p) for (t, s, p), q in b.levels.items() if not q]
            live = [(t, s, p, q, now) for (t, s, p), q in b.levels.items() if q]
            if gone:
                await cur.execute(
                    "DELETE FROM feed_book_levels l USING unnest(%s::text[], %s::text[], "
                    "%s::numeric[]) AS g(ticker, side, price) WHERE l.ticker = g.ticker "
                    "AND l.side = g.side AND l.price = g.price",
                    ([g[0] for g in gone], [g[1] for g in gone], [g[2] for g in gone]))
            if live:
                await cur.execute(
                    "INSERT INTO feed_book_levels (ticker, side, price, quantity, updated_at) "
                    "SELECT * FROM unnest(%s::text[], %s::text[], %s::numeric[], "
                    "%s::numeric[], %s::timestamptz[]) ON CONFLICT (ticker, side, price) DO "
                    "UPDATE SET quantity = EXCLUDED.quantity, updated_at = EXCLUDED.updated_at",
                    tuple(list(c) for c in zip(*live, strict=True)))

    async def _freshness(self, cur: psycopg.AsyncCursor, b: Batch) -> None:
        if not b.touched:
            return
        tickers = list(b.touched)
        at = [b.touched[t][0] for t in tickers]
        changed = [b.touched[t][0] if b.touched[t][1] else None for t in tickers]
        source = [b.touched[t][2] for t in tickers]
        snap = [at[i] if t in b.snapshotted else None for i, t in enumerate(tickers)]
        await cur.execute(
            "INSERT INTO feed_freshness AS f (ticker, last_message_at, last_change_at, "
            "snapshot_at, source, state) SELECT t, a, c, s, src, 'live' FROM unnest("
            "%s::text[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[], %s::text[]) "
            "AS x(t, a, c, s, src) ON CONFLICT (ticker) DO UPDATE SET "
            "last_message_at = GREATEST(f.last_message_at, EXCLUDED.last_message_at), "
            "last_change_at = COALESCE(EXCLUDED.last_change_at, f.last_change_at), "
            "snapshot_at = COALESCE(EXCLUDED.snapshot_at, f.snapshot_at), "
            "source = EXCLUDED.source",  # state: 'closed' is the feed's to set and clear
            (tickers, at, changed, snap, source))



def _text(v: Any) -> str:
    if v is None:
        return NULL
    if isinstance(v, str):
        return v.translate(_ESCAPE)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, bool):
        return "t" if v else "f"
    return str(v)


async def _copy_lines(cur: psycopg.AsyncCursor, table: str, cols: Iterable[str],
                     lines: list[str]) -> None:
    if lines:
        async with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
            await cp.write("".join(lines).encode())


async def _copy(cur: psycopg.AsyncCursor, table: str, cols: Iterable[str],
                rows: list[tuple]) -> None:
    """COPY rows in PostgreSQL's text format, formatted here in one pass (psycopg's
    per-row write_row costs more than the whole formatting)."""
    if not rows:
        return
    iso: dict[datetime, str] = {}

    def text(v: Any) -> str:
        if type(v) is datetime:
            s = iso.get(v)
            if s is None:
                s = iso[v] = v.isoformat()
            return s
        return _text(v)

    data = "".join("\t".join(map(text, row)) + "\n" for row in rows)
    async with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
        await cp.write(data.encode())


# ---- freshness read side (web /readyz, dashboard, tests) ------------------------------------

async def stale_markets(pool: AsyncConnectionPool, max_age_sec: float) -> list[tuple[str, float]]:
    """Followed live markets whose last message is older than ``max_age_sec``."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT ticker, age_sec FROM feed_freshness_ages WHERE state = 'live' "
            "AND age_sec > %s ORDER BY age_sec DESC", (max_age_sec,))
        return [(t, float(a)) for t, a in await cur.fetchall()]
