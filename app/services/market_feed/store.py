"""The market feed's database side: change detection per market and batched writes.

:class:`Tracker` keeps, per followed market, the book and ticker values last handed to the
store, and turns every message into the history records that changed (nothing changed: no
record; :mod:`app.db.feed_log` says how records are packed). :class:`FeedStore` buffers them and
commits a batch as one transaction: the batch's records as one ``feed_log_hot`` row, the
current book levels merged, the latest ticker values and freshness upserted, and one
``NOTIFY rec_market_feed`` carrying a summary of the batch. :func:`FeedStore.compact` moves
the hot rows into per-market ``feed_log`` segments.
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
from typing import Any, NamedTuple

import psycopg
from psycopg_pool import AsyncConnectionPool

from app.db import feed_log as history
from app.db.pool import DatabaseWait
from app.kalshi.models import to_decimal
from app.runtime import clock, metrics

log = logging.getLogger("rec-market-feed.store")

NOTIFY_CHANNEL = "rec_market_feed"
FEED = "market"  # the feed label of rec-market-feed's metrics (app/runtime/metrics.py)
ZERO = Decimal(0)
QUOTE_COLS = ("ticker", "ts", "source", "yes_bid", "yes_ask", "yes_bid_size", "yes_ask_size",
              "last_price", "volume", "open_interest")


_DECIMALS: dict[str, Decimal] = {}  # wire strings seen: the feed's prices and sizes repeat


def dec(value: Any) -> Decimal | None:
    """A wire fixed-point value as Decimal (None stays None); a string seen before is one
    dict lookup."""
    got = _DECIMALS.get(value)
    if got is not None:
        return got
    if value is None or value == "":
        return None
    got = to_decimal(value)
    if type(value) is str and len(_DECIMALS) < 100_000:
        _DECIMALS[value] = got
    return got


def utc_ms(ms: int | None) -> datetime:
    return datetime.fromtimestamp((ms if ms is not None else clock.now_ms()) / 1000, UTC)


_clock: list[Any] = [0, None]  # ms and its datetime: made once per millisecond


def now_ms() -> int:
    return clock.now_ms()


def now_utc() -> datetime:
    """The time, to the millisecond."""
    ms = clock.now_ms()
    if ms != _clock[0]:
        _clock[0], _clock[1] = ms, datetime.fromtimestamp(ms / 1000, UTC)
    return _clock[1]


class Quote(NamedTuple):
    """A market's ticker values (``feed_quotes``; a TICK record when one changed)."""

    yes_bid: Decimal | None
    yes_ask: Decimal | None
    yes_bid_size: Decimal | None
    yes_ask_size: Decimal | None
    last_price: Decimal | None
    volume: Decimal | None
    open_interest: Decimal | None

    @classmethod
    def from_ws(cls, body: dict[str, Any]) -> Quote:
        """From a WS ``ticker`` message's fixed-point strings."""
        get = body.get
        return cls(dec(get("yes_bid_dollars")), dec(get("yes_ask_dollars")),
                   dec(get("yes_bid_size_fp")), dec(get("yes_ask_size_fp")),
                   dec(get("price_dollars")), dec(get("volume_fp")),
                   dec(get("open_interest_fp")))



@dataclass
class MarketState:
    ticker: str
    mid: int  # feed_market_ids.id
    yes: dict[Decimal, Decimal] = field(default_factory=dict)
    no: dict[Decimal, Decimal] = field(default_factory=dict)
    has_book: bool = False
    tick: Quote | None = None
    last_snapshot_mono: float = 0.0
    gapped: bool = False  # a GAP was written: the next resync writes a BOOK, changed or not

    def side(self, side: str) -> dict[Decimal, Decimal]:
        return self.yes if side == "yes" else self.no


@dataclass
class Batch:
    log: bytearray = field(default_factory=bytearray)  # history records (:mod:`app.db.feed_log`)
    records: int = 0
    ticks: int = 0
    levels_written: int = 0
    trades: int = 0
    snapshots: int = 0
    # WS deltas netted per level: key -> [size before the batch, size now, ms, market id,
    # the last delta's seq, ts_ms, sending_ts_ms]; written as LEVEL records when the size
    # differs at the end of the batch (the numbers, not the frame: a frame kept until then
    # would outlive gen 0 and make the full collections the feed avoids: gc.freeze in start)
    net: dict[tuple[str, str, Decimal], list] = field(default_factory=dict)
    deltas: int = 0  # deltas netted into ``net``
    quotes: dict[str, tuple] = field(default_factory=dict)  # ticker -> feed_quotes row
    # current book: final size per level in this batch; replaced: tickers whose stored
    # levels are replaced by a full book (ticker -> (yes, no) copies at batch time)
    levels: dict[tuple[str, str, Decimal], Decimal] = field(default_factory=dict)
    replaced: dict[str, tuple[dict, dict]] = field(default_factory=dict)
    # freshness: ticker -> (last message time, changed?, source)
    touched: dict[str, tuple[int, bool, str]] = field(default_factory=dict)  # ms
    snapshotted: set[str] = field(default_factory=set)
    received: list[float] = field(default_factory=list)  # monotonic receive times (latency)

    @property
    def rows(self) -> int:
        """Records and netted deltas waiting: what fills a batch (every delta counts, so a
        busy book that nets to few records still flushes as often as a batch fills)."""
        return self.records + self.deltas

    def add(self, record: bytes) -> None:
        self.log += record
        self.records += 1

    def net_records(self) -> None:
        """Move the netted deltas into the log (in the order they were first seen) and their
        sizes into the current book: ``levels``, or the market's full book of this batch
        (``replaced``; a full book nets what came before it first: :meth:`Tracker.book`)."""
        level = history.level_ws
        levels, replaced = self.levels, self.replaced
        for key, (before, after, ms, mid, seq, ts, sent) in self.net.items():
            ticker, side, price = key
            full = replaced.get(ticker)
            if full is None:
                levels[key] = after
            else:
                _set_level(full[0] if side == "yes" else full[1], price, after)
            if after != before:
                self.log += level(mid, ms, side, price, after, seq, ts, sent)
                self.records += 1
                self.levels_written += 1
        self.net.clear()
        self.deltas = 0

    def empty(self) -> bool:
        return not (self.rows or self.levels or self.replaced or self.touched or self.quotes)


def _set_level(levels: dict[Decimal, Decimal], price: Decimal, qty: Decimal) -> None:
    """A level's new size (0: gone)."""
    if qty:
        levels[price] = qty
    else:
        levels.pop(price, None)


# how long a public trade's exchange id is remembered to drop the same trade seen again
# (the ids are not stored: :mod:`app.db.feed_log`)
TRADE_DEDUPE_SEC = 600.0


class Tracker:
    """What was last stored per market; turns messages into changed records in a Batch."""

    def __init__(self, store: FeedStore) -> None:
        self.store = store
        self.markets: dict[str, MarketState] = {}
        self.recent_trades: dict[str, float] = {}  # trade id -> monotonic time first seen

    def state(self, ticker: str) -> MarketState:
        st = self.markets.get(ticker)
        if st is None:
            st = self.markets[ticker] = MarketState(ticker, self.store.ids[ticker])
        return st

    def forget(self, ticker: str) -> None:
        self.markets.pop(ticker, None)

    # -- books ---------------------------------------------------------------------------
    def book(self, ticker: str, yes: dict[Decimal, Decimal], no: dict[Decimal, Decimal],
             source: str, reason: str, received: float | None = None,
             ex: tuple | None = None) -> int:
        """A full book (WS snapshot or REST poll): store the levels that differ, and a
        compact snapshot when the book is new, resynced (with changes, or after a GAP) or
        due. ``ex``: the snapshot's (seq, exchange time, send time), on every record it
        writes. Returns records written."""
        st = self.state(ticker)
        b = self.store.batch
        ms = now_ms()
        http = source == "http"
        if b.net:
            b.net_records()  # keep the order: deltas before this book
        changed = []
        for side, new in (("yes", yes), ("no", no)):
            old = st.side(side)
            for price in old.keys() | new.keys():
                q_new = new.get(price, ZERO)
                if old.get(price, ZERO) != q_new:
                    changed.append((side, price, q_new))
        n = len(changed)
        first = not st.has_book
        st.yes, st.no, st.has_book = dict(yes), dict(no), True
        mono = time.monotonic()
        due = mono - st.last_snapshot_mono >= self.store.snapshot_interval
        # a BOOK record covers the changes
        if first or (reason == "resync" and (n or st.gapped)) or due:
            b.add(history.book(st.mid, ms, st.yes, st.no, http, ex))
            b.snapshots += 1
            st.last_snapshot_mono = mono
            st.gapped = False
            n += 1
        else:
            for side, price, q in changed:
                b.add(history.level(st.mid, ms, side, price, q, http, ex))
            b.levels_written += len(changed)
        b.replaced[ticker] = (dict(st.yes), dict(st.no))
        for key in [k for k in b.levels if k[0] == ticker]:
            del b.levels[key]
        b.snapshotted.add(ticker)
        self._touch(ticker, ms, n > 0, source, received)
        return n

    def ws_deltas(self, frames: list[dict[str, Any]], received: float | None = None,
                  ) -> list[tuple[str, str]]:
        """WS ``orderbook_delta`` frames (parsed; KalshiWS has checked their seq and that
        each market is in sync) applied to the books in stream order and netted per level
        into the batch (:meth:`Batch.net_records`), in one loop: the feed's hot path, no call
        per delta.

        A market without a book here (not followed, no snapshot yet) is skipped. A delta this
        book cannot take - a level below zero, an unknown side, a price or size that is not a
        number - changes nothing and is returned as (ticker, why): the market needs a resync
        (KalshiWS keeps no levels for the feed)."""
        markets = self.markets
        store = self.store
        b = store.batch
        net, touched = b.net, b.touched
        ms = clock.now_ms()  # rec's receive time
        mark = (ms, True, "ws")  # freshness (_touch): changed now, over WS
        cache = _DECIMALS
        applied = 0
        refused: list[tuple[str, str]] = []
        for frame in frames:
            body = frame["msg"]
            ticker = body["market_ticker"]
            st = markets.get(ticker)
            if st is None or not st.has_book:
                continue
            side = body.get("side")
            levels = st.yes if side == "yes" else st.no if side == "no" else None
            try:  # (dec's own first step, inlined: a 0 is looked up again)
                price = cache.get(body["price_dollars"]) or dec(body["price_dollars"])
                delta = cache.get(body["delta_fp"]) or dec(body["delta_fp"])
                old = levels.get(price, ZERO)  # type: ignore[union-attr]
                qty = old + delta
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                refused.append((ticker, f"delta with side {side!r}" if levels is None else
                                f"unreadable delta {body!r}: {type(exc).__name__}"))
                continue
            if qty < 0:
                refused.append((ticker, f"{side} {price} would go to {qty} after delta "
                                        f"{delta}"))
                continue
            if qty:
                levels[price] = qty  # type: ignore[index]
            else:
                levels.pop(price, None)  # type: ignore[union-attr]
            # net change per level per batch: a cancel and replace that restores a level
            # within one batch writes nothing; the last size of a level is kept
            key = (ticker, side, price)
            cell = net.get(key)
            if cell is None:
                net[key] = [old, qty, ms, st.mid, frame.get("seq"), body.get("ts_ms"),
                            frame.get("sending_ts_ms")]
            else:
                cell[1], cell[2], cell[4], cell[5], cell[6] = (
                    qty, ms, frame.get("seq"), body.get("ts_ms"), frame.get("sending_ts_ms"))
            touched[ticker] = mark
            applied += 1
        if applied:
            store.took_deltas(applied, received)
        return refused

    # -- ticker values -------------------------------------------------------------------
    def tick(self, ticker: str, values: Quote, ts: datetime, source: str,
             received: float | None = None, sending: int | None = None) -> bool:
        """Store a ticker record only if a value changed; returns True if one was written.
        Over the WebSocket the record keeps rec's receive time and the venue's send time
        ``sending`` beside the exchange's time ``ts``."""
        st = self.state(ticker)
        now = now_ms()
        if st.tick == values:
            self._touch(ticker, now, False, source, None)
            return False
        st.tick = values
        b = self.store.batch
        http = source == "http"
        b.add(history.tick(st.mid, int(ts.timestamp() * 1000), values, http,
                           None if http else (None, now, sending)))
        b.ticks += 1
        b.quotes[ticker] = (ticker, ts, source, *values)
        self._touch(ticker, now, True, source, received)
        return True

    def trade(self, ticker: str, trade_id: str, ts_ms: int, price: Decimal, count: Decimal,
              taker: str | None, received: float | None = None, seq: int | None = None,
              sending: int | None = None) -> bool:
        """Store a public trade unless its id was seen in the last ``TRADE_DEDUPE_SEC``
        (the id itself is not stored), with its message's ``seq``, rec's receive time and
        the venue's send time ``sending``; returns True if stored."""
        if trade_id:
            seen = self.recent_trades
            if trade_id in seen:
                self.heard(ticker, "ws")
                return False
            mono = time.monotonic()
            seen[trade_id] = mono
            while (mono - next(iter(seen.values()))) > TRADE_DEDUPE_SEC:
                del seen[next(iter(seen))]
        b = self.store.batch
        now = now_ms()
        b.add(history.trade(self.state(ticker).mid, ts_ms, price, count, taker,
                            (seq, now, sending)))
        b.trades += 1
        self._touch(ticker, now, True, "ws", received)
        return True

    def gap(self, ticker: str, reason: int, expected: int | None = None,
            got: int | None = None, since: int | None = None) -> None:
        """Market data of ``ticker`` was lost (:func:`app.db.feed_log.gap`): a GAP record
        now, after the deltas before it; the market's resync then writes a BOOK."""
        st = self.markets.get(ticker)
        if st is None:
            return
        b = self.store.batch
        if b.net:
            b.net_records()
        b.add(history.gap(st.mid, now_ms(), reason, expected, got, since))
        st.gapped = True
        self.store.poke()

    def heard(self, ticker: str, source: str) -> None:
        """A message that changed nothing still proves the market is live."""
        self._touch(ticker, now_ms(), False, source, None)

    def _touch(self, ticker: str, at: int, changed: bool, source: str,
               received: float | None) -> None:
        b = self.store.batch
        prev = b.touched.get(ticker)
        b.touched[ticker] = (at, changed or (prev is not None and prev[1]), source)
        if received is not None and changed and self.store.keep_latencies:
            b.received.append(received)
        self.store.poke()


class FeedStore:
    """Buffers records and writes them in batches, one NOTIFY per batch."""

    def __init__(self, pool: AsyncConnectionPool, *, name: str, batch_rows: int,
                 flush_interval: float, snapshot_interval: float,
                 max_pending_batches: int = 50, db: DatabaseWait | None = None) -> None:
        self.pool = pool
        self.db = db or DatabaseWait(log, lambda _: None)
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
        self.backlogged = False  # the consumer waits in room() (read inline on the hot path)
        self.snapshotted: set[str] = set()  # tickers with a committed snapshot this run
        self.snapshot_event = asyncio.Event()
        self.batches = 0
        self.rows_written = 0
        self.stored = metrics.STORED.labels(feed=FEED)
        self.last_commit_mono = 0.0
        self.latencies: list[float] = []  # receive -> commit, seconds (benchmarks read it)
        self.keep_latencies = False
        self.writing = False  # a batch is being committed
        self._writing = asyncio.Lock()  # held while a batch is committed (drain waits)
        self.ids: dict[str, int] = {}  # ticker -> feed_market_ids.id
        self.compacted = 0  # hot rows moved into segments

    async def ensure_ids(self, tickers: Iterable[str]) -> None:
        """Give every ticker its integer id before its first record."""
        missing = [t for t in tickers if t not in self.ids]
        if missing:
            async with self.pool.connection() as conn:
                self.ids.update(await history.market_ids(conn, missing))
                await conn.commit()

    async def compact(self, segment_sec: float) -> int:
        """Move the committed batches into per-market segments, then let PostgreSQL reuse
        the space of the moved rows and of the rewritten current-state rows (VACUUM takes
        no lock that blocks ingest)."""
        async with self.pool.connection() as conn:
            moved, _ = await history.compact(conn, segment_sec)
            if moved:
                await conn.set_autocommit(True)
                try:
                    await conn.execute("VACUUM feed_log_hot, feed_log_open, feed_log, "
                                       "feed_book_levels, feed_quotes, feed_freshness")
                finally:
                    await conn.set_autocommit(False)
        self.compacted += moved
        return moved

    # -- producer side -------------------------------------------------------------------
    def took_deltas(self, n: int, received: float | None) -> None:
        """``n`` deltas netted into the batch (received at ``received``, monotonic)."""
        b = self.batch
        b.deltas += n
        if received is not None and self.keep_latencies:
            b.received += [received] * n
        self.poke()

    def poke(self) -> None:
        if self._first_at is None:
            self._first_at = time.monotonic()
            self._wake.set()
        rows = self.batch.rows
        if rows >= self.batch_rows:
            self._full.set()
            if rows >= self.max_pending_rows:
                self._room.clear()
                self.backlogged = True

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
                async with self._writing:
                    await self._write_until_done(batch)
            finally:
                self.writing = False
            if self.batch.rows < self.max_pending_rows:
                self._room.set()
                self.backlogged = False

    async def drain(self) -> None:
        """Until every row taken so far is written (the writer's batch too)."""
        async with self._writing:
            await self.flush_now()

    async def flush_now(self) -> None:
        """Write what is buffered (on stop)."""
        batch, self.batch = self.batch, Batch()
        self._first_at = None
        if not batch.empty():
            await asyncio.wait_for(self.write(batch), 5)

    async def _write_until_done(self, batch: Batch) -> None:
        """One transaction, retried whole while the database is down (a wait, not a crash)."""
        await self.db.run(f"a feed batch of {batch.rows} rows", self.write, batch)

    async def write(self, b: Batch) -> None:
        if b.empty():
            return
        async with self.pool.connection() as conn:
            async with conn.transaction():
                cur = conn.cursor()
                if b.net:
                    b.net_records()
                if b.log:
                    await cur.execute("INSERT INTO feed_log_hot (data) VALUES (%s)",
                                      (bytes(b.log),))
                await self._levels(cur, b)
                await self._quotes(cur, b)
                await self._freshness(cur, b)
                payload = json.dumps({
                    "batch": self.batches + 1, "ticks": b.ticks,
                    "levels": b.levels_written, "trades": b.trades,
                    "snapshots": b.snapshots, "tickers": sorted(b.touched)[:100],
                })
                await cur.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, payload))
        done = time.monotonic()
        self.batches += 1
        self.rows_written += b.rows
        self.stored.inc(b.rows)
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
            if rows:
                await cur.execute(
                    "INSERT INTO feed_book_levels (ticker, side, price, quantity, updated_at) "
                    "SELECT * FROM unnest(%s::text[], %s::text[], %s::numeric[], "
                    "%s::numeric[], %s::timestamptz[])",
                    tuple(list(c) for c in zip(*rows, strict=True)))
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

    async def _quotes(self, cur: psycopg.AsyncCursor, b: Batch) -> None:
        if not b.quotes:
            return
        cols = list(zip(*b.quotes.values(), strict=True))
        await cur.execute(
            f"INSERT INTO feed_quotes ({', '.join(QUOTE_COLS)}, updated_at) SELECT *, now() "
            "FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::numeric[], "
            "%s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], "
            "%s::numeric[]) ON CONFLICT (ticker) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in QUOTE_COLS[1:]) + ", updated_at = now()",
            tuple(list(c) for c in cols))

    async def _freshness(self, cur: psycopg.AsyncCursor, b: Batch) -> None:
        if not b.touched:
            return
        tickers = list(b.touched)
        at = [utc_ms(b.touched[t][0]) for t in tickers]
        changed = [at[i] if b.touched[t][1] else None for i, t in enumerate(tickers)]
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



# ---- freshness read side (web /readyz, dashboard, tests) ------------------------------------

async def stale_markets(pool: AsyncConnectionPool, max_age_sec: float) -> list[tuple[str, float]]:
    """Followed live markets whose last message is older than ``max_age_sec``."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT ticker, age_sec FROM feed_freshness_ages WHERE state = 'live' "
            "AND age_sec > %s ORDER BY age_sec DESC", (max_age_sec,))
        return [(t, float(a)) for t, a in await cur.fetchall()]
