"""The replay world: the simulator plays a recording (docs/record.md) on its clock instead of
generating markets, books, trades and index values (setting ``sim_replay_file``).

It stands where ``World`` stands (``Sim.world``): the same exchange, the same REST views
and WebSocket channels, so rec's services connect unchanged. The recorded book of each
market rests in the exchange's book as one order per level of an unlimited account
(``REPLAY_ACCOUNT``), resized to each recorded size; a recorded print is published on the
trade channel; markets open, close and settle (the recorded result) at their recorded
times; every recorded index value goes out on the index channels (whole seconds on
``cfbenchmarks_value`` with its averages, all of them on ``cfbenchmarks_value_5hz``).

rec's orders trade against it by the fill model of docs/replay.md: a taker order walks the
displayed recorded levels (the exchange's own matching), a resting order fills from the
recorded prints by its queue place (replay_fills.QueueModel) or when a recorded bid
crosses it; what rec takes from a recorded level comes back at that level's next recorded
size (rec's orders do not move the recorded future).

The clock: ``run(speed)`` keeps it at wall time x speed (0: manual, ``advance()`` through
/_sim/advance), or as fast as the slowest WebSocket client reads (``flat_out``).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.sim.accounts import Account, stable_uuid
from app.sim.candles import Candles
from app.sim.market import ACTIVE, CLOSED, FINALIZED, INITIALIZED, Event, Market, Series
from app.sim.matching import NO, YES, Order, other
from app.sim.money import ONE
from app.sim.replay_file import (
    BOOK,
    CLOSE,
    INDEX,
    INDEX_SECOND,
    LEVEL,
    OPEN,
    SETTLE,
    TRADE,
    RecordedMarket,
    Recording,
)
from app.sim.replay_fills import QueueModel
from app.sim.venue import Exchange, Observer, TradeRecord
from app.sim.world import WorldParams, announce
from app.sim.ws import Hub

REPLAY_ACCOUNT = "sim-replay"  # the recorded liquidity and the recorded takers
BATCH = 2_000  # events applied between two yields to the event loop
BACKLOG = 5_000  # flat out: wait while a WebSocket client has more than this queued
OPEN_WAIT_S = 5.0  # flat out: at most this long for the clients to follow a new market


@dataclass
class ReplayIndex:
    """What the control API and the index channels need of one recorded index."""

    index_id: str
    value: float = 0.0
    paused: bool = False
    history: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=7200))
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=60))


class ReplayWorld:
    def __init__(self, recording: Recording, latency_ms: int = 0,
                 flat_out: bool = False) -> None:
        self.rec = recording
        self.latency_ms = latency_ms
        self.flat_out = flat_out
        self.p = WorldParams(maintenance_weekday=None)  # no weekly pause in a replay
        self.now_ms = self.started_ms = recording.start_ms
        self.ticks = 0
        self.halted = False
        self.exchange = Exchange(clock=lambda: self.now_ms)
        self.candles = Candles(self.exchange.books)
        self.exchange.observers.append(self.candles)
        self.acct: Account = self.exchange.account(REPLAY_ACCOUNT, unlimited=True)
        self.queues = QueueModel()
        self.exchange.observers.append(_Placements(self))
        self.indices = {name: ReplayIndex(name) for name in recording.index_names}
        self._levels: dict[tuple[str, str, int], Order] = {}
        self._next = 0  # the next event of recording.events
        self._second = self.now_ms // 1000
        self._level_seq = 0
        self._waiting: list[tuple[int, int, asyncio.Future]] = []  # orders held (latency)
        self._apply = self._handlers()
        self._opened: list[str] = []  # markets opened by the batch being played
        self._add_markets()
        self.advance_to(self.now_ms)  # what the recording holds at its first instant

    # --- what World offers its callers -------------------------------------------------
    @property
    def spot(self) -> float:
        ix = next(iter(self.indices.values()), None)
        return ix.value if ix else 0.0

    @spot.setter
    def spot(self, value: float) -> None:  # /_sim/set_spot: the replay's index is recorded
        pass

    @property
    def samples(self) -> deque[float]:
        ix = next(iter(self.indices.values()), None)
        return ix.samples if ix else deque()

    @property
    def done(self) -> bool:
        return self._next >= len(self.rec.events)

    def maintenance_window(self, at_ms: int | None = None) -> None:
        return None

    def in_maintenance(self) -> bool:
        return False

    def sync_trading(self) -> None:
        self.exchange.set_trading(not self.halted)

    async def order_latency(self) -> None:
        """Hold an order until ``latency_ms`` of simulated time has passed: it reaches the
        exchange then, against the book of then (under a manual clock, when the clock is
        advanced that far; at once when the recording has ended)."""
        if self.latency_ms <= 0 or self.done:
            return
        due = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (self.now_ms + self.latency_ms, id(due), due))
        await due

    def _wake(self) -> None:
        while self._waiting and (self._waiting[0][0] <= self.now_ms or self.done):
            _, _, due = heapq.heappop(self._waiting)
            if not due.done():
                due.set_result(None)

    # --- time ----------------------------------------------------------------------------
    def step(self) -> None:
        self.advance_to(self.now_ms + 1000)

    def advance(self, seconds: int) -> None:
        self.advance_to(self.now_ms + 1000 * seconds)

    def advance_to(self, target_ms: float, limit: int | None = None) -> int:
        """Apply the recorded events up to ``target_ms`` (at most ``limit`` of them); the
        clock stands at each event's time while it applies. Returns how many applied."""
        events = self.rec.events
        n = 0
        while self._next < len(events) and events[self._next][0] <= target_ms:
            if limit is not None and n >= limit:
                return n
            ts, kind, _, payload = events[self._next]
            self._next += 1
            self._clock(ts)
            self._apply[kind](payload)
            n += 1
        self._clock(int(target_ms))
        return n

    async def run(self, speed: float, tick_s: float = 0.02) -> None:
        """Play the recording at wall time x ``speed`` (0: manual), or flat out."""
        if self.flat_out:
            await self._run_flat_out()
            return
        if speed <= 0:
            return
        wall0, sim0 = time.monotonic(), self.now_ms
        while True:
            target = sim0 + (time.monotonic() - wall0) * speed * 1000
            # a full batch: more is due, after the event loop has had its turn
            await asyncio.sleep(0 if self.advance_to(target, BATCH) == BATCH else tick_s)

    async def _run_flat_out(self) -> None:
        """As fast as the slowest WebSocket client reads: a batch of events, then a wait
        while a client has more than BACKLOG messages queued. A market that opens holds
        the replay until every client following markets by ticker has subscribed to it
        (at most OPEN_WAIT_S of wall time: a client may not want it), as a live feed has
        the time to before the market trades."""
        events = self.rec.events
        while not self.done:
            if self._backlog() > BACKLOG:
                await asyncio.sleep(0.002)
                continue
            self._opened.clear()
            self.advance_to(events[min(self._next + BATCH, len(events)) - 1][0], BATCH)
            if self._opened:
                await self._subscribed(set(self._opened))
            await asyncio.sleep(0)

    async def _subscribed(self, tickers: set[str]) -> None:
        hub = self._hub()
        if hub is None:
            return
        end = time.monotonic() + OPEN_WAIT_S
        while time.monotonic() < end:
            following = [s for s in hub.by_channel["orderbook_delta"] if s.tickers is not None]
            if all(tickers <= set().union(*(s.tickers for s in following if s.conn is c))
                   for c in {s.conn for s in following}):
                return
            await asyncio.sleep(0.005)

    def _hub(self) -> Hub | None:
        return next((o for o in self.exchange.observers if isinstance(o, Hub)), None)

    def _backlog(self) -> int:
        hub = self._hub()
        return max((c.queue.qsize() for c in hub.conns), default=0) if hub else 0

    def _clock(self, ts: int) -> None:
        if ts <= self.now_ms:
            return
        self.now_ms = ts
        if self._waiting:
            self._wake()
        second = ts // 1000
        while self._second < second:
            self._second += 1
            self.ticks += 1
            self._each_second(self._second * 1000)

    def _each_second(self, at_ms: int) -> None:
        self.exchange.expire(at_ms)
        for t, m in self.exchange.markets.items():
            if m.status == ACTIVE:
                self.candles.sample(m, self.exchange.books.get(t), at_ms)

    # --- the recording's events ------------------------------------------------------------
    def _handlers(self) -> dict[int, Callable[[Any], None]]:
        return {LEVEL: lambda p: self._set_level(*p), TRADE: lambda p: self._print(*p),
                BOOK: lambda p: self._set_book(*p), INDEX: lambda p: self._index(*p),
                INDEX_SECOND: lambda p: self._index(*p), OPEN: self._open,
                CLOSE: self._close, SETTLE: self._settle}

    def _open(self, ticker: str) -> None:
        m = self.exchange.markets[ticker]
        if m.status == INITIALIZED:
            self.exchange.open_market(m)
            self._opened.append(ticker)

    def _close(self, ticker: str) -> None:
        m = self.exchange.markets[ticker]
        if m.status == ACTIVE:
            self.exchange.close_market(m)
            self._levels = {k: o for k, o in self._levels.items() if k[0] != ticker}

    def _settle(self, ticker: str) -> None:
        m = self.exchange.markets[ticker]
        r = self.rec.markets[ticker]
        if m.status == CLOSED:
            self.exchange.settle_market(m, r.result, r.expiration_value)

    def _live(self, ticker: str) -> Market | None:
        m = self.exchange.markets.get(ticker)
        return m if m is not None and m.status in (INITIALIZED, ACTIVE) else None

    def _set_book(self, ticker: str, yes: list[tuple[int, int]],
                  no: list[tuple[int, int]]) -> None:
        if self._live(ticker) is None:
            return
        want = {(YES, p): s for p, s in yes} | {(NO, p): s for p, s in no}
        for (_, side, price) in [k for k in self._levels if k[0] == ticker]:
            if (side, price) not in want:
                self._set_level(ticker, side, price, 0)
        for (side, price), size in want.items():
            self._set_level(ticker, side, price, size)

    def _set_level(self, ticker: str, side: str, price: int, size: int) -> None:
        """The recorded book shows ``size`` at ``price`` on ``side``'s bids. A size that
        crosses rec's resting orders on the other side trades with them first."""
        m = self._live(ticker)
        if m is None:
            return
        ex = self.exchange
        book = ex.books[ticker]
        if size > 0 and m.status == ACTIVE and ex.trading_active:
            size -= self._cross(m, side, price, size)
        key = (ticker, side, price)
        order = self._levels.get(key)
        if order is not None and not order.in_book:
            order = None
        if order is None:
            if size <= 0:
                return
            self._level_seq += 1
            order = Order(f"replay-level-{self._level_seq}", self._level_seq, REPLAY_ACCOUNT,
                          ticker, side, "buy", price, size, created_ms=self.now_ms,
                          updated_ms=self.now_ms, remaining=size)
            self._levels[key] = order
            book.add(order)
        else:
            book.resize(order, size)
            if size <= 0:
                del self._levels[key]
        ex._publish(m, [])

    def _cross(self, m: Market, side: str, price: int, size: int) -> int:
        """rec's resting orders a recorded bid (side, price) crosses fill against it,
        best first; returns the contracts they took."""
        book = self.exchange.books[m.ticker]
        opp = other(side)
        taken = 0
        for p in reversed(list(book.prices[opp])):
            if p + price < ONE or taken >= size:
                break
            for o in [o for o in book.levels[opp].get(p, ()) if o.account_id != REPLAY_ACCOUNT]:
                n = min(o.remaining, size - taken)
                if n <= 0:
                    break
                self.exchange.fill_resting(self.acct, o, n)
                taken += n
        return taken

    def _print(self, ticker: str, yes_price: int, size: int, taker_side: str) -> None:
        """A recorded trade: rec's resting orders it reaches fill (their own prints), the
        rest prints as recorded."""
        m = self.exchange.markets.get(ticker)
        if m is None or size <= 0:
            return
        fills = self.queues.on_print(ticker, yes_price, size, taker_side) \
            if m.status == ACTIVE and self.exchange.trading_active else []
        for order, n in fills:
            self.exchange.fill_resting(self.acct, order, n)
            size -= n
        if size > 0:
            ex = self.exchange
            ex._record_trade(m, TradeRecord(stable_uuid("trade", "replay", ex.next_seq()),
                                            ticker, size, yes_price, taker_side, self.now_ms,
                                            ex._seq))
            ex._publish(m, [])

    def _index(self, name: str, value: float) -> None:
        ix = self.indices[name]
        ix.value = value
        if self.now_ms % 1000 == 0:
            ix.samples.append(value)
            ix.history.append((self.now_ms, value))
        if ix.paused:
            return
        for obs in self.exchange.observers:
            if self.now_ms % 1000 == 0:
                obs.index_value(name, self.now_ms, value, ix.history)
            else:
                obs.index_fast_value(name, self.now_ms, value)

    # --- markets ---------------------------------------------------------------------------
    def _add_markets(self) -> None:
        by_event: dict[str, list[RecordedMarket]] = {}
        for r in sorted(self.rec.markets.values(), key=lambda r: (r.event_ticker, r.ticker)):
            by_event.setdefault(r.event_ticker, []).append(r)
            if r.series not in self.exchange.series:
                self.exchange.add_series(Series(
                    r.series, r.series, price_level_structure=r.price_level_structure,
                    created_ms=self.now_ms))
        for event_ticker, rs in by_event.items():
            first = rs[0]
            ev = Event(event_ticker, first.series, first.title.split("?")[0] + "?",
                       first.title.split("?")[-1].strip(), first.close_ms,
                       first.strike_type == "between", self.now_ms)
            markets = [Market(r.ticker, event_ticker, r.series, stable_uuid("market", r.ticker),
                              r.title, r.yes_sub_title, r.no_sub_title, r.strike_type,
                              r.floor_strike, r.cap_strike, self.now_ms, r.open_ms, r.close_ms,
                              0, updated_ms=self.now_ms,
                              price_level_structure=r.price_level_structure)
                       for r in rs]
            self.exchange.add_event(ev, markets)
            announce(self.exchange, ev, markets)
            for m, r in zip(markets, rs, strict=True):
                if r.close_ms <= self.now_ms:  # closed before the window: settled as recorded
                    m.status = CLOSED
                    if r.result:
                        self.exchange.settle_market(m, r.result, r.expiration_value)
                    m.status = FINALIZED if r.result else CLOSED


class _Placements(Observer):
    """Gives each resting order of rec's its queue place when it is placed or re-priced."""

    def __init__(self, world: ReplayWorld) -> None:
        self.world = world

    def order(self, account: Account, order: Order) -> None:
        if order.status == "resting" and order.in_book:
            book = self.world.exchange.books[order.ticker]
            self.world.queues.track(order, book.size(order.outcome, order.price)
                                    - order.remaining)
