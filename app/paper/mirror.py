"""The paper engine's world: the simulator's replay world (app/sim/replay.py) fed by the live
exchange's WebSocket instead of a recording.

Everything that decides a fill is the replay's, unchanged: the mirrored book rests in the
engine's book as one order per level of the unlimited account ``sim-replay``; rec's taker
orders walk it (the exchange's matching); a resting order of rec's fills from the live prints
by its queue place (``replay_fills.QueueModel``) or when a live bid crosses it. What differs
is only where events come from and the clock: each live message applies at the wall time it
is read, and markets open, close and settle when the live exchange says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any

from app.kalshi.book import OrderBook
from app.kalshi.models import Market as LiveMarket
from app.kalshi.money import to_decimal
from app.kalshi.ws import KalshiWS
from app.sim.market import ACTIVE, INITIALIZED
from app.sim.matching import Order
from app.sim.money import ONE
from app.sim.replay import ReplayWorld
from app.sim.replay_file import RecordedMarket, Recording

log = logging.getLogger("rec.paper")
CHANNELS = ("orderbook_delta", "trade")
DECIDED = ("determined", "amended", "finalized")  # a live market's status once it has a result
NOT_CLOSED = ("initialized", "inactive", "active", "open", "unopened")


def wall_ms() -> int:
    return int(time.time() * 1000)


def units(price: Any) -> int:
    """A dollar price of the wire -> the simulator's $0.0001 units."""
    return int((to_decimal(price) * ONE).to_integral_value())


def _ms(value: Any) -> int:
    return int(value.timestamp() * 1000) if value is not None else 0


def recorded(m: LiveMarket) -> RecordedMarket:
    """A live market as the replay world builds its markets from (one that has closed, if
    early, closed by now: the world adds it closed, settled on its result if it has one)."""
    close_ms = _ms(m.close_time)
    if m.status not in NOT_CLOSED:
        close_ms = min(close_ms, wall_ms())
    return RecordedMarket(
        ticker=m.ticker, event_ticker=m.event_ticker,
        series=m.event_ticker.split("-")[0], title=m.title or m.ticker,
        yes_sub_title=m.yes_sub_title or "", no_sub_title=m.no_sub_title or "",
        strike_type=m.strike_type or "", floor_strike=_float(m.floor_strike),
        cap_strike=_float(m.cap_strike), open_ms=_ms(m.open_time), close_ms=close_ms,
        result=(m.result or "") if m.status in DECIDED else "",
        price_level_structure=m.price_level_structure or "linear_cent",
        settle_delay_ms=0, expiration_value="")


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


class MirrorWorld(ReplayWorld):
    """A replay world whose events are the live exchange's, applied as they are read."""

    def __init__(self, markets: list[RecordedMarket]) -> None:
        now = wall_ms()
        super().__init__(Recording(now, now, {}))
        self.live_books: dict[str, OrderBook] = {}  # the live book as the mirror last read it
        self.unplaced: dict[str, list[Order]] = {}  # restored orders waiting for a snapshot
        self.add_markets(markets)

    def add_markets(self, markets: list[RecordedMarket]) -> list[str]:
        """Mirror the markets of events not mirrored yet (a new market of a mirrored event
        waits for a restart); returns the tickers added."""
        self.at_now()  # a market that closed before now is added closed
        known = {m.event_ticker for m in self.exchange.markets.values()}
        new = {r.ticker: r for r in markets if r.event_ticker not in known}
        if not new:
            return []
        everything, self.rec.markets = self.rec.markets, new
        try:
            self._add_markets()
        finally:
            self.rec.markets = everything | new
        self.follow_lifecycle()
        return list(new)

    def rejoin(self, orders: list[Order]) -> None:
        """Resting orders of a saved account (app/paper/account_file.py) back in the book of
        their market, where it still trades; the others are canceled as the exchange cancels
        them at the close. A rejoined order takes its queue place (the back of its level)
        from the market's first live snapshot: prints fill it only from then on."""
        ex = self.exchange
        for order in orders:
            acct = ex.accounts[order.account_id]
            m = ex.markets.get(order.ticker)
            if m is None or m.status != ACTIVE:
                order.status, order.remaining = "canceled", 0
                order.last_update_reason, order.updated_ms = "CloseCancel", self.now_ms
                continue
            ex.books[order.ticker].add(order)
            acct.resting[order.order_id] = order
            acct.locked += order.remaining * order.price
            if order.expiration_ms is not None:
                ex._expiring.add(order)
            self.unplaced.setdefault(order.ticker, []).append(order)
            ex._publish(m, [])

    def _placed(self, ticker: str) -> None:
        """The market's first snapshot since a restart: rejoined orders take their places."""
        book = self.exchange.books[ticker]
        for order in self.unplaced.pop(ticker, ()):
            if order.in_book:
                self.queues.track(order, book.size(order.outcome, order.price) - order.remaining)

    # --- the clock: wall time ------------------------------------------------------------
    def at_now(self) -> None:
        self._clock(wall_ms())

    def follow_lifecycle(self) -> None:
        """Open and close markets at their times (the live lifecycle messages settle them)."""
        now = self.now_ms
        for ticker, r in self.rec.markets.items():
            status = self.exchange.markets[ticker].status
            if status == INITIALIZED and r.open_ms <= now < r.close_ms:
                self._open(ticker)
            elif status == ACTIVE and r.close_ms <= now:
                self._close(ticker)
        self._opened.clear()

    async def run(self, speed: float, tick_s: float = 0.25) -> None:
        """Keep the clock at wall time (orders expire, candles sample, markets open/close)."""
        while True:
            self.at_now()
            self.follow_lifecycle()
            await asyncio.sleep(tick_s)

    # --- live messages -------------------------------------------------------------------
    def apply(self, mtype: str, msg: dict[str, Any]) -> None:
        """One message of the live WebSocket, at the wall time it is read."""
        ticker = msg.get("market_ticker", "")
        if ticker not in self.rec.markets:
            return
        self.at_now()
        if mtype == "orderbook_snapshot":
            book = self.live_books.setdefault(ticker, OrderBook(ticker))
            book.apply_snapshot(msg)
            self._set_book(ticker, *(self._bids(book, side) for side in ("yes", "no")))
            if ticker in self.unplaced:
                self._placed(ticker)
        elif mtype == "orderbook_delta":
            book = self.live_books.get(ticker)
            if book is None or not book.valid:
                return
            book.apply_delta(msg)
            side = msg["side"]
            price = to_decimal(msg["price_dollars"])
            levels = book.yes if side == "yes" else book.no
            self._set_level(ticker, side, units(price), int(levels.get(price, 0)))
        elif mtype == "trade":
            self._print(ticker, units(msg["yes_price_dollars"]), int(to_decimal(msg["count_fp"])),
                        msg.get("taker_outcome_side") or msg["taker_side"])
        elif mtype == "market_lifecycle_v2" and msg.get("event_type") == "determined":
            self.determined(ticker, str(msg.get("result", "")))

    @staticmethod
    def _bids(book: OrderBook, side: str) -> list[tuple[int, int]]:
        levels = book.yes if side == "yes" else book.no
        return [(units(p), int(s)) for p, s in levels.items() if int(s) > 0]

    def determined(self, ticker: str, result: str) -> None:
        """The live market's result: closed (if it was not) and settled on it."""
        if result not in ("yes", "no"):
            return
        self.rec.markets[ticker].result = result
        self._close(ticker)
        self._settle(ticker)


async def follow(world: MirrorWorld, ws: KalshiWS) -> None:
    """Subscribe to the mirrored markets' books, prints and lifecycle; apply every message."""
    tickers = list(world.rec.markets)
    for channel in CHANNELS:
        await ws.subscribe(channel, market_tickers=tickers)
    await ws.subscribe("market_lifecycle_v2")
    async for m in ws:
        if isinstance(m.msg, dict):
            try:
                world.apply(m.type, m.msg)
            except (KeyError, ValueError, ArithmeticError) as exc:  # one bad message
                log.warning("paper: %s message not mirrored: %s", m.type, exc)
                book = world.live_books.get(m.msg.get("market_ticker", ""))
                if book is not None:
                    book.invalidate()
                    ws.resync(book.ticker)
