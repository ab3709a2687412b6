"""Order book and price-time-priority matching for one binary market.

Prices and money are integers in $0.0001 (ONE = $1), so sub-cent ticks need no special
case. Kalshi books hold bids only: YES bids and NO bids. Every order is normalised to the
outcome it positions its owner for and the price it bids on that outcome
(buy yes @ p -> yes bid p; sell yes @ p -> no bid ONE-p; buy no @ q -> no bid q;
sell no @ q -> yes bid ONE-q). A YES bid at y and a NO bid at n cross when y + n >= ONE;
the trade happens at the resting (maker) order's price.
"""

from __future__ import annotations

from bisect import insort
from collections import deque
from dataclasses import dataclass, field

from app.sim.fees import FeeAccumulator
from app.sim.money import ONE

YES = "yes"
NO = "no"


def other(outcome: str) -> str:
    return NO if outcome == YES else YES


@dataclass(eq=False)
class Order:
    order_id: str
    seq: int
    account_id: str
    ticker: str
    side: str  # as submitted: yes | no
    action: str  # buy | sell
    price: int  # bid price on `outcome`, $0.0001
    initial_count: int
    client_order_id: str = ""
    tif: str = "good_till_canceled"
    post_only: bool = False
    reduce_only: bool = False
    stp: str = "taker_at_cross"
    expiration_ms: int | None = None
    created_ms: int = 0
    updated_ms: int = 0
    remaining: int = 0
    filled: int = 0
    status: str = "resting"
    last_update_reason: str | None = None
    taker_cost: int = 0
    maker_cost: int = 0
    taker_fees: int = 0
    maker_fees: int = 0
    cancel_on_pause: bool = False
    in_book: bool = False
    order_group_id: str | None = None
    fees: FeeAccumulator = field(default_factory=FeeAccumulator)

    @property
    def outcome(self) -> str:
        """The outcome the order buys exposure to (buy yes / sell no -> yes)."""
        if self.action == "buy":
            return self.side
        return other(self.side)

    @property
    def yes_price(self) -> int:
        return self.price if self.outcome == YES else ONE - self.price

    @property
    def side_price(self) -> int:
        """Price in the submitted side's terms (yes_price for side yes, no price for no)."""
        return self.yes_price if self.side == YES else ONE - self.yes_price


@dataclass
class Match:
    maker: Order
    count: int
    maker_price: int  # maker's bid price on its outcome
    taker_price: int  # ONE - maker_price: what the taker pays on its outcome


@dataclass
class LevelChange:
    outcome: str
    price: int
    delta: int
    order: Order


@dataclass
class Book:
    ticker: str
    # per outcome: price -> orders in time priority; only non-empty levels are kept
    levels: dict[str, dict[int, deque[Order]]] = field(default_factory=dict)
    qty: dict[str, dict[int, int]] = field(default_factory=dict)
    prices: dict[str, list[int]] = field(default_factory=dict)  # non-empty levels, ascending
    changes: list[LevelChange] = field(default_factory=list)

    def __post_init__(self) -> None:
        for outcome in (YES, NO):
            self.levels[outcome] = {}
            self.qty[outcome] = {}
            self.prices[outcome] = []

    # --- queries -------------------------------------------------------------
    def best(self, outcome: str) -> int:
        """Best (highest) bid price on an outcome, 0 when empty."""
        ps = self.prices[outcome]
        return ps[-1] if ps else 0

    def size(self, outcome: str, price: int) -> int:
        return self.qty[outcome].get(price, 0)

    def depth(self, outcome: str, levels: int = 0) -> list[tuple[int, int]]:
        """Aggregated (price, size) levels, best first; levels=0 means all."""
        q = self.qty[outcome]
        out = [(p, q[p]) for p in reversed(self.prices[outcome]) if q[p]]
        return out[:levels] if levels > 0 else out

    def orders(self) -> list[Order]:
        """Every resting order."""
        return [o for side in self.levels.values() for lvl in side.values() for o in lvl]

    def crossing_qty(self, outcome: str, price: int, exclude_account: str | None = None) -> int:
        """Contracts resting on the other side that an order (outcome, price) would reach."""
        opp = other(outcome)
        total = 0
        for p in reversed(self.prices[opp]):
            if p + price < ONE:
                break
            if exclude_account is None:
                total += self.qty[opp][p]
            else:
                total += sum(o.remaining for o in self.levels[opp][p]
                             if o.account_id != exclude_account)
        return total

    def would_cross(self, outcome: str, price: int) -> bool:
        best = self.best(other(outcome))
        return best > 0 and best + price >= ONE

    # --- mutations -----------------------------------------------------------
    def _level(self, outcome: str, price: int) -> deque[Order]:
        level = self.levels[outcome].get(price)
        if level is None:
            level = self.levels[outcome][price] = deque()
            self.qty[outcome][price] = 0
            insort(self.prices[outcome], price)
        return level

    def _drop_if_empty(self, outcome: str, price: int) -> None:
        if not self.levels[outcome].get(price):
            self.levels[outcome].pop(price, None)
            self.qty[outcome].pop(price, None)
            self.prices[outcome].remove(price)

    def add(self, order: Order) -> None:
        self._level(order.outcome, order.price).append(order)
        self.qty[order.outcome][order.price] += order.remaining
        order.in_book = True
        self.changes.append(LevelChange(order.outcome, order.price, order.remaining, order))

    def remove(self, order: Order) -> None:
        """Take an order out of the book (cancel / fully reduced)."""
        if not order.in_book:
            return
        self.levels[order.outcome][order.price].remove(order)
        self.qty[order.outcome][order.price] -= order.remaining
        self._drop_if_empty(order.outcome, order.price)
        order.in_book = False
        if order.remaining:
            self.changes.append(
                LevelChange(order.outcome, order.price, -order.remaining, order))

    def reduce(self, order: Order, by: int) -> None:
        """Reduce a resting order in place, keeping its time priority."""
        order.remaining -= by
        self.qty[order.outcome][order.price] -= by
        self.changes.append(LevelChange(order.outcome, order.price, -by, order))

    def match(self, taker: Order) -> tuple[list[Match], bool]:
        """Match `taker` against resting orders; mutates makers, not the taker's counts.

        Returns the matches and whether self-trade prevention stopped the taker
        (taker_at_cross).
        """
        opp = other(taker.outcome)
        matches: list[Match] = []
        want = taker.remaining
        for maker_price in list(reversed(self.prices[opp])):
            if want == 0 or maker_price + taker.price < ONE:
                break
            level = self.levels[opp][maker_price]
            while want and level:
                maker = level[0]
                if maker.account_id == taker.account_id:
                    if taker.stp == "maker":
                        self.remove(maker)
                        maker.status = "canceled"
                        maker.last_update_reason = "SelfTradeCancel"
                        continue
                    return matches, True
                n = min(want, maker.remaining)
                want -= n
                matches.append(self.take(maker, n, keep_level=True))
            if maker_price in self.levels[opp]:
                self._drop_if_empty(opp, maker_price)
        return matches, False

    def take(self, maker: Order, n: int, keep_level: bool = False) -> Match:
        """Fill ``n`` of the resting ``maker`` (an outside taker, or match()'s own walk);
        keep_level leaves an emptied level for the caller to drop."""
        maker.remaining -= n
        maker.filled += n
        self.qty[maker.outcome][maker.price] -= n
        self.changes.append(LevelChange(maker.outcome, maker.price, -n, maker))
        if maker.remaining == 0:
            self.levels[maker.outcome][maker.price].remove(maker)
            maker.in_book = False
            maker.status = "executed"
            if not keep_level:
                self._drop_if_empty(maker.outcome, maker.price)
        return Match(maker, n, maker.price, ONE - maker.price)

    def resize(self, order: Order, remaining: int) -> None:
        """Set a resting order's size in place (its queue place kept); 0 takes it out."""
        if remaining <= 0:
            self.remove(order)
            order.remaining = 0
            return
        delta = remaining - order.remaining
        if delta:
            order.remaining = remaining
            self.qty[order.outcome][order.price] += delta
            self.changes.append(LevelChange(order.outcome, order.price, delta, order))
