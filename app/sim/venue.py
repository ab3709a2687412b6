"""The simulated venue's core: markets, books, accounts, order operations, settlement.

Everything runs on one asyncio loop and mutates state synchronously, so there are no
locks. Observers (the WebSocket hub) get callbacks after each operation.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.sim import fees
from app.sim.accounts import Account, FillRecord, SettlementRecord, stable_uuid
from app.sim.errors import ExchangeError
from app.sim.market import ACTIVE, CLOSED, DETERMINED, FINALIZED, Event, Market, Series
from app.sim.matching import NO, YES, Book, LevelChange, Order, other
from app.sim.money import CENT, ONE
from app.sim.wire import dollars

TIFS = ("fill_or_kill", "good_till_canceled", "immediate_or_cancel")
KEEP: Any = object()  # amend: leave the expiry as it is
# Error code for orders refused while trading is paused (halt or maintenance window).
# The REST spec lists no error-code enum; this is the code the simulator has always sent.
TRADING_PAUSED = "trading_is_paused"


@dataclass
class TradeRecord:
    trade_id: str
    ticker: str
    count: int
    yes_price: int
    taker_outcome: str
    ts_ms: int
    seq: int


class Observer:
    """Callbacks for everything a WebSocket client can see; no-ops by default."""

    def book_changes(self, market: Market, changes: list[LevelChange]) -> None: ...
    def trade(self, market: Market, trade: TradeRecord) -> None: ...
    def ticker(self, market: Market, book: Book) -> None: ...
    def fill(self, account: Account, fill: FillRecord, market: Market) -> None: ...
    def order(self, account: Account, order: Order) -> None: ...
    def position(self, account: Account, ticker: str) -> None: ...
    def lifecycle(self, msg: dict, kind: str = "market_lifecycle_v2") -> None: ...
    def order_group(self, account: Account | None, msg: dict) -> None: ...
    def index_value(self, index_id: str, ts_ms: int, value: float,
                    history: Any) -> None: ...  # history: deque of (ts_ms, value)
    def index_fast_value(self, index_id: str, ts_ms: int, value: float) -> None: ...


@dataclass
class OrderRequest:
    ticker: str
    side: str
    action: str
    count: int
    price: int  # $0.0001, in `side` terms (yes price for side yes, no price for side no)
    client_order_id: str = ""
    tif: str = "good_till_canceled"
    post_only: bool = False
    reduce_only: bool = False
    stp: str = "taker_at_cross"
    expiration_ms: int | None = None
    cancel_on_pause: bool = False
    order_group_id: str | None = None


class Exchange:
    def __init__(self, clock: Callable[[], int], salt: int = 0, max_trades: int = 200_000):
        self.clock = clock
        self.salt = salt
        self.series: dict[str, Series] = {}
        self.events: dict[str, Event] = {}
        self.markets: dict[str, Market] = {}
        self.books: dict[str, Book] = {}
        self.accounts: dict[str, Account] = {}
        self.orders: dict[str, Order] = {}
        self.trades: deque[TradeRecord] = deque(maxlen=max_trades)
        self.trading_active = True
        self.observers: list[Observer] = []
        self._seq = 0
        self._last_ticker: dict[str, tuple] = {}
        self._expiring: set[Order] = set()
        from app.sim.order_groups import OrderGroups  # it uses this module's errors

        self.order_groups = OrderGroups(self)

    # --- helpers ------------------------------------------------------------
    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def account(self, account_id: str, cash: int = 0, unlimited: bool = False) -> Account:
        acct = self.accounts.get(account_id)
        if acct is None:
            acct = self.accounts[account_id] = Account(account_id, cash, unlimited)
        return acct

    def market(self, ticker: str) -> Market:
        m = self.markets.get(ticker)
        if m is None:
            raise ExchangeError(404, "not_found", f"market {ticker} not found")
        return m

    def add_series(self, s: Series) -> None:
        self.series[s.ticker] = s

    def add_event(self, event: Event, markets: list[Market]) -> None:
        event.seq = self.next_seq()
        self.events[event.event_ticker] = event
        for m in markets:
            m.seq = self.next_seq()
            self.markets[m.ticker] = m
            self.books[m.ticker] = Book(m.ticker)
            event.markets.append(m.ticker)

    def remove_event(self, event_ticker: str) -> None:
        event = self.events.pop(event_ticker, None)
        if event is None:
            return
        for t in event.markets:
            self.markets.pop(t, None)
            self.books.pop(t, None)
            self._last_ticker.pop(t, None)

    def fee_rate(self, market: Market, is_taker: bool) -> int:
        """The series' fee rate (ten-thousandths) for a taker or a maker."""
        s = self.series.get(market.series_ticker)
        fee_type = s.fee_type if s else "quadratic"
        mult = s.fee_multiplier if s else 1.0
        return fees.rate_bp(is_taker, fee_type, mult)

    def fee_for(self, market: Market, count: int, price: int, is_taker: bool) -> int:
        """At most what one fill of `count` at `price` costs in fees (collateral checks)."""
        return fees.fee_estimate(count, price, self.fee_rate(market, is_taker))

    # --- orders ---------------------------------------------------------------
    def check_price(self, m: Market, yes_price: int) -> None:
        """Refuse a price off the market's price grid, naming the tick that applies."""
        if not 0 < yes_price < ONE:
            raise ExchangeError(400, "invalid_price", "price must be above 0 and below 1")
        for start, end, step in m.price_ranges:
            if start <= yes_price <= end and (yes_price - start) % step == 0:
                return
        step = next((st for lo, hi, st in m.price_ranges if lo <= yes_price <= hi), CENT)
        raise ExchangeError(400, "invalid_price",
                            f"price {dollars(yes_price)} is not on the market's price tick "
                            f"{dollars(step)} ({m.price_level_structure})")

    def place(self, acct: Account, req: OrderRequest) -> Order:
        order = self._place(acct, req)
        self.order_groups.run_due()  # a group whose limit this matching reached triggers
        return order

    def _place(self, acct: Account, req: OrderRequest) -> Order:
        m = self.market(req.ticker)
        self._check_open(m)
        if req.client_order_id and req.client_order_id in acct.by_client_id:
            raise ExchangeError(409, "order_already_exists",
                                "an order with this client_order_id already exists")
        yes_price = req.price if req.side == YES else ONE - req.price
        self.check_price(m, yes_price)
        if req.order_group_id:
            self.order_groups.admit(acct, req.order_group_id)
        order = self._new_order(acct, m, req, yes_price)
        order.order_group_id = req.order_group_id
        held_against = self._held_against(acct, m, order.outcome)
        if req.reduce_only:
            if held_against == 0:
                return self._reject(acct, order, "ReduceOnlyCancel")
            order.remaining = min(order.remaining, held_against)
        self._check_collateral(acct, m, order, held_against)
        self._register(acct, order)
        if order.order_group_id:
            self.order_groups.joined(order.order_group_id, order)
        return self._match_or_rest(acct, m, order)

    def _check_open(self, m: Market) -> None:
        if not self.trading_active:
            raise ExchangeError(400, TRADING_PAUSED, "trading is paused on the exchange")
        if m.status != ACTIVE:
            raise ExchangeError(400, "market_closed", f"market {m.ticker} is not open")

    def _new_order(self, acct: Account, m: Market, req: OrderRequest, yes_price: int) -> Order:
        now = self.clock()
        outcome = req.side if req.action == "buy" else other(req.side)
        return Order(
            order_id=stable_uuid("order", self.salt, self.next_seq()), seq=self._seq,
            account_id=acct.account_id, ticker=m.ticker, side=req.side, action=req.action,
            price=yes_price if outcome == YES else ONE - yes_price,
            initial_count=req.count, client_order_id=req.client_order_id,
            tif=req.tif, post_only=req.post_only, reduce_only=req.reduce_only, stp=req.stp,
            expiration_ms=req.expiration_ms, created_ms=now, updated_ms=now,
            remaining=req.count, cancel_on_pause=req.cancel_on_pause,
        )

    @staticmethod
    def _held_against(acct: Account, m: Market, outcome: str) -> int:
        """Contracts of the other outcome an order for `outcome` would close."""
        pos = acct.positions.get(m.ticker)
        if pos is None:
            return 0
        return max(0, -pos.position if outcome == YES else pos.position)

    def _check_collateral(self, acct: Account, m: Market, order: Order,
                          held_against: int) -> None:
        if acct.unlimited:
            return
        opening = max(0, order.remaining - held_against)
        cost = opening * order.price + self.fee_for(m, opening, order.price, True)
        need = -(-cost // CENT) * CENT  # sub-cent prices: the balance is kept to the cent
        if need > acct.balance:
            raise ExchangeError(400, "insufficient_balance",
                                "insufficient balance for this order")

    def _match_or_rest(self, acct: Account, m: Market, order: Order) -> Order:
        book = self.books[m.ticker]
        if order.post_only and book.would_cross(order.outcome, order.price):
            return self._finish(acct, order, m, "PostOnlyCrossCancel")
        if order.tif == "fill_or_kill":
            reach = book.crossing_qty(order.outcome, order.price,
                                      exclude_account=acct.account_id)
            if reach < order.remaining:
                return self._finish(acct, order, m, None)
        self._execute(acct, order, m, book)
        if order.status == "canceled":
            return self._finish(acct, order, m, order.last_update_reason)
        if order.remaining and order.tif in ("immediate_or_cancel", "fill_or_kill"):
            return self._finish(acct, order, m, None)
        if order.remaining:
            book.add(order)
            acct.resting[order.order_id] = order
            acct.locked += order.remaining * order.price
            if order.expiration_ms is not None:
                self._expiring.add(order)
        else:
            order.status = "executed"
        self._publish(m, [(acct, order)])
        return order

    def _register(self, acct: Account, order: Order) -> None:
        if acct.unlimited:
            return
        self.orders[order.order_id] = order
        acct.orders[order.order_id] = order
        if order.client_order_id:
            acct.by_client_id[order.client_order_id] = order

    def _reject(self, acct: Account, order: Order, reason: str) -> Order:
        self._register(acct, order)
        order.status = "canceled"
        order.remaining = 0
        order.last_update_reason = reason
        self._publish(self.markets[order.ticker], [(acct, order)])
        return order

    def _finish(self, acct: Account, order: Order, m: Market, reason: str | None) -> Order:
        order.status = "canceled" if order.remaining or order.filled == 0 else "executed"
        if order.remaining and reason:
            order.last_update_reason = reason
        order.remaining = 0
        order.updated_ms = self.clock()
        self._publish(m, [(acct, order)])
        return order

    def _execute(self, acct: Account, taker: Order, m: Market, book: Book) -> None:
        matches, stopped = book.match(taker)
        self._settle_matches(acct, taker, m, book, matches, stopped)

    def fill_resting(self, taker_acct: Account, maker: Order, count: int) -> None:
        """An outside taker (``taker_acct``, unlimited: the replay's recorded flow) fills
        ``count`` of the resting ``maker`` at the maker's price, whatever stands ahead of
        it in the book: the replay's fill model decides who fills, this books it."""
        m = self.markets[maker.ticker]
        book = self.books[m.ticker]
        outcome = other(maker.outcome)
        req = OrderRequest(m.ticker, side=outcome, action="buy", count=count,
                           price=ONE - maker.price, tif="immediate_or_cancel")
        taker = self._new_order(taker_acct, m, req, req.price if outcome == YES else maker.price)
        match = book.take(maker, count)
        self._settle_matches(taker_acct, taker, m, book, [match], False)
        taker.status = "executed"
        self._publish(m, [])
        self.order_groups.run_due()

    def _settle_matches(self, acct: Account, taker: Order, m: Market, book: Book,
                        matches: list, stopped: bool) -> None:
        now = self.clock()
        touched: list[tuple[Account, Order]] = []
        for mt in matches:
            maker = mt.maker
            maker_acct = self.accounts[maker.account_id]
            yes_price = mt.maker_price if maker.outcome == YES else ONE - mt.maker_price
            trade = TradeRecord(stable_uuid("trade", self.salt, self.next_seq()), m.ticker,
                                mt.count, yes_price, taker.outcome, now, self._seq)
            self._record_trade(m, trade)
            taker.remaining -= mt.count
            taker.filled += mt.count
            self._fill(acct, taker, m, trade, True, mt.taker_price)
            self._fill(maker_acct, maker, m, trade, False, mt.maker_price)
            maker_acct.locked -= mt.count * maker.price
            if maker.remaining == 0:
                maker_acct.resting.pop(maker.order_id, None)
                self._expiring.discard(maker)
            touched.append((maker_acct, maker))
        for o in list(book.changes):
            if (o.order.status == "canceled" and o.order.last_update_reason == "SelfTradeCancel"
                    and o.order.remaining):
                owner = self.accounts[o.order.account_id]
                owner.locked -= o.order.remaining * o.order.price
                owner.resting.pop(o.order.order_id, None)
                self._expiring.discard(o.order)
                o.order.remaining = 0
                touched.append((owner, o.order))
        if stopped and taker.remaining:
            taker.status = "canceled"
            taker.last_update_reason = "SelfTradeCancel"
        self._pending = touched

    def _record_trade(self, m: Market, trade: TradeRecord) -> None:
        self.trades.append(trade)
        m.last_price = trade.yes_price
        m.volume += trade.count
        m.last_trade_size = trade.count
        m.dollar_volume += trade.count * trade.yes_price
        for obs in self.observers:
            obs.trade(m, trade)

    def _fill(self, acct: Account, order: Order, m: Market, trade: TradeRecord,
              is_taker: bool, price: int) -> None:
        """Account for one side of a trade: `price` is paid on the order's outcome."""
        pos = acct.position(m.ticker, m.event_ticker)
        before = max(pos.position, 0)
        delta = pos.apply_fill(order.outcome, trade.count, price, trade.ts_ms)
        charge = order.fees.charge(trade.count, price, self.fee_rate(m, is_taker), delta)
        fee = charge.net
        side_price = trade.yes_price if order.side == YES else ONE - trade.yes_price
        if is_taker:
            order.taker_cost += trade.count * side_price
            order.taker_fees += fee
        else:
            order.maker_cost += trade.count * side_price
            order.maker_fees += fee
        order.updated_ms = trade.ts_ms
        order.last_update_reason = "Trade"
        if order.order_group_id:
            self.order_groups.matched(order, trade.count, trade.ts_ms)
        acct.cash += delta - fee
        pos.fees_paid += fee
        m.open_interest += max(pos.position, 0) - before
        acct.updated_ms = trade.ts_ms
        if acct.unlimited:
            return
        rec = FillRecord(trade.trade_id, order.order_id, m.ticker, order.side, order.action,
                         order.outcome, trade.count, trade.yes_price, is_taker, charge,
                         trade.ts_ms, order.client_order_id, pos.position, self.next_seq())
        acct.fills.append(rec)
        for obs in self.observers:
            obs.fill(acct, rec, m)
            obs.position(acct, m.ticker)

    def _publish(self, m: Market, orders: list[tuple[Account, Order]]) -> None:
        book = self.books.get(m.ticker)
        pending = getattr(self, "_pending", [])
        self._pending = []
        if book is not None and book.changes:
            changes, book.changes = book.changes, []
            for obs in self.observers:
                obs.book_changes(m, changes)
        for acct, order in orders + pending:
            if acct.unlimited:
                continue
            for obs in self.observers:
                obs.order(acct, order)
        if book is not None:
            self._maybe_ticker(m, book)

    def _maybe_ticker(self, m: Market, book: Book) -> None:
        yb, nb = book.best(YES), book.best(NO)
        key = (yb, nb, book.size(YES, yb), book.size(NO, nb),
               m.last_price, m.volume, m.open_interest)
        if self._last_ticker.get(m.ticker) != key:
            self._last_ticker[m.ticker] = key
            for obs in self.observers:
                obs.ticker(m, book)

    def owned(self, acct: Account, order_id: str) -> Order:
        order = acct.orders.get(order_id)
        if order is None:
            raise ExchangeError(404, "not_found", f"order {order_id} not found")
        return order

    def cancel(self, acct: Account, order_id: str, reason: str | None = None) -> tuple[Order, int]:
        order = self.owned(acct, order_id)
        if order.status != "resting":
            raise ExchangeError(404, "not_found", f"order {order_id} is not resting")
        return order, self._cancel(acct, order, reason)

    def cancel_order(self, acct: Account, order: Order, reason: str | None) -> int:
        return self._cancel(acct, order, reason)

    def _cancel(self, acct: Account, order: Order, reason: str | None) -> int:
        book = self.books.get(order.ticker)
        reduced = order.remaining
        if order.in_book:
            acct.locked -= reduced * order.price
        if book is not None:
            book.remove(order)
        order.remaining = 0
        order.status = "canceled"
        order.last_update_reason = reason
        order.updated_ms = self.clock()
        acct.resting.pop(order.order_id, None)
        self._expiring.discard(order)
        m = self.markets.get(order.ticker)
        if m is not None:
            self._publish(m, [(acct, order)])
        return reduced

    def decrease(self, acct: Account, order_id: str, reduce_by: int | None,
                 reduce_to: int | None) -> Order:
        order = self.owned(acct, order_id)
        if order.status != "resting":
            raise ExchangeError(404, "not_found", f"order {order_id} is not resting")
        by = reduce_by if reduce_by is not None else order.remaining - min(order.remaining,
                                                                          reduce_to or 0)
        by = min(by, order.remaining)
        if by >= order.remaining:
            self._cancel(acct, order, "Decrease")
            return order
        if by > 0:
            self.books[order.ticker].reduce(order, by)
            acct.locked -= by * order.price
            order.last_update_reason = "Decrease"
            order.updated_ms = self.clock()
            self._publish(self.markets[order.ticker], [(acct, order)])
        return order

    def amend(self, acct: Account, order_id: str, ticker: str, outcome: str, yes_price: int,
              count: int | None, new_client_id: str | None,
              expiration_ms: int | None = KEEP) -> tuple[Order, Order]:
        """Change price, total count (filled + remaining) and/or expiry of a resting order.

        expiration_ms: KEEP leaves it, None removes it, a time sets it. Everything is
        checked before anything changes."""
        order = self._amendable(acct, order_id, ticker, outcome)
        total = count if count is not None else order.filled + order.remaining
        if total <= order.filled:
            raise ExchangeError(400, "invalid_parameters",
                                "count must exceed the filled count of the order")
        m = self.markets[order.ticker]
        self.check_price(m, yes_price)
        book_price = yes_price if order.outcome == YES else ONE - yes_price
        new_remaining = total - order.filled
        renamed = bool(new_client_id) and new_client_id != order.client_order_id
        if renamed and new_client_id in acct.by_client_id:
            raise ExchangeError(409, "order_already_exists",
                                "updated_client_order_id is already in use")
        extra = new_remaining * book_price - order.remaining * order.price
        if not acct.unlimited and extra > 0 and extra > acct.balance:
            raise ExchangeError(400, "insufficient_balance",
                                "insufficient balance for this amendment")
        old = copy.copy(order)
        if renamed:
            acct.by_client_id.pop(order.client_order_id, None)
            order.client_order_id = new_client_id or ""
            acct.by_client_id[order.client_order_id] = order
        if expiration_ms is not KEEP:
            order.expiration_ms = expiration_ms
            (self._expiring.discard if expiration_ms is None else self._expiring.add)(order)
        order.updated_ms = self.clock()
        order.last_update_reason = "Amend"
        order.initial_count = total
        if book_price == order.price and new_remaining <= order.remaining:
            self._shrink_in_place(acct, order, new_remaining)  # keeps queue priority
        else:
            self._requeue(acct, m, order, book_price, new_remaining)
        self._publish(m, [(acct, order)])
        self.order_groups.run_due()
        return old, order

    def _amendable(self, acct: Account, order_id: str, ticker: str, outcome: str) -> Order:
        order = self.owned(acct, order_id)
        if order.status != "resting":
            raise ExchangeError(404, "not_found", f"order {order_id} is not resting")
        if (ticker, outcome) != (order.ticker, order.outcome):
            raise ExchangeError(400, "invalid_parameters",
                                "ticker and side must match the order")
        if not self.trading_active:
            raise ExchangeError(400, TRADING_PAUSED, "trading is paused on the exchange")
        return order

    def _shrink_in_place(self, acct: Account, order: Order, new_remaining: int) -> None:
        if new_remaining < order.remaining:
            acct.locked -= (order.remaining - new_remaining) * order.price
            self.books[order.ticker].reduce(order, order.remaining - new_remaining)

    def _requeue(self, acct: Account, m: Market, order: Order, book_price: int,
                 new_remaining: int) -> None:
        """A new price or a larger size: to the back of the queue, matching first."""
        book = self.books[order.ticker]
        acct.locked -= order.remaining * order.price
        book.remove(order)
        acct.resting.pop(order.order_id, None)
        order.price = book_price
        order.remaining = new_remaining
        self._execute(acct, order, m, book)
        if order.status == "canceled":
            order.remaining = 0
        elif order.remaining:
            book.add(order)
            acct.resting[order.order_id] = order
            acct.locked += order.remaining * order.price
        else:
            order.status = "executed"
            self._expiring.discard(order)

    def expire(self, now_ms: int) -> None:
        for order in [o for o in self._expiring if o.expiration_ms <= now_ms]:
            self._cancel(self.accounts[order.account_id], order, "ExpiryCancel")

    # --- lifecycle --------------------------------------------------------------
    def open_market(self, m: Market) -> None:
        m.status = ACTIVE
        m.updated_ms = self.clock()
        for obs in self.observers:
            obs.lifecycle({"market_ticker": m.ticker, "event_type": "activated"})

    def close_market(self, m: Market) -> None:
        for order in self.books[m.ticker].orders():
            self._cancel(self.accounts[order.account_id], order, "CloseCancel")
        m.status = CLOSED
        m.updated_ms = self.clock()

    def settle_market(self, m: Market, result: str, expiration_value: str) -> None:
        now = self.clock()
        m.result = result
        m.settlement_value = ONE if result == YES else 0
        m.expiration_value = expiration_value
        m.status = DETERMINED
        m.determined_ms = now
        for obs in self.observers:
            obs.lifecycle({"market_ticker": m.ticker, "event_type": "determined",
                           "determination_ts": now // 1000, "result": result,
                           "settlement_value": dollars(m.settlement_value)})
        for acct in self.accounts.values():
            pos = acct.positions.get(m.ticker)
            if pos is None:
                continue
            yes_n, no_n = max(pos.position, 0), max(-pos.position, 0)
            revenue = ONE * (yes_n if result == YES else no_n)
            cost = pos.cost
            pos.realized_pnl += revenue - cost
            pos.position = 0
            pos.cost = 0
            pos.last_updated_ms = now
            acct.cash += revenue
            acct.updated_ms = now
            if acct.unlimited:
                continue
            acct.settlements.append(SettlementRecord(
                m.ticker, m.event_ticker, result, yes_n, cost if yes_n else 0, no_n,
                cost if no_n else 0, revenue, m.settlement_value, pos.fees_paid, now,
                self.next_seq()))
            for obs in self.observers:
                obs.position(acct, m.ticker)
        m.open_interest = 0
        m.status = FINALIZED
        m.settled_ms = now
        for obs in self.observers:
            obs.lifecycle({"market_ticker": m.ticker, "event_type": "settled",
                           "settled_ts": now // 1000})

    def set_trading(self, active: bool) -> None:
        if active == self.trading_active:
            return
        self.trading_active = active
        for m in self.markets.values():
            if m.status != ACTIVE:
                continue
            if not active:
                for order in [o for o in self.books[m.ticker].orders() if o.cancel_on_pause]:
                    self._cancel(self.accounts[order.account_id], order, "HaltCancel")
            for obs in self.observers:
                obs.lifecycle({"market_ticker": m.ticker,
                               "event_type": "deactivated" if not active else "activated",
                               "is_deactivated": not active})
