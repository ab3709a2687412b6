"""Order book and price-time-priority matching for one binary market.

Kalshi books hold bids only: YES bids and NO bids. Every order is normalised to the
outcome it positions its owner for and the price it bids on that outcome
(buy yes @ p -> yes bid p; sell yes @ p -> no bid 100-p; buy no @ q -> no bid q;
sell no @ q -> yes bid 100-q). A YES bid at y and a NO bid at n cross when y + n >= 100;
the trade happens at the resting (maker) order's price.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from app.sim.fees import FeeAccumulator

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
    price: int  # bid price on `outcome`, cents
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
    fees: FeeAccumulator = field(default_factory=FeeAccumulator)

    @property
    def outcome(self) -> str:
        """The outcome the order buys exposure to (buy yes / sell no -> yes)."""
        if self.action == "buy":
            return self.side
        return other(self.side)

    @property
    def yes_price(self) -> int:
        return self.price if self.outcome == YES else 100 - self.price

    @property
    def side_price(self) -> int:
        """Price in the submitted side's terms (yes_price for side yes, no price for no)."""
        return self.yes_price if self.side == YES else 100 - self.yes_price


@dataclass
class Match:
    maker: Order
    count: int
    maker_price: int  # maker's bid price on its outcome
    taker_price: int  # 100 - maker_price: what the taker pays on its outcome


@dataclass
class LevelChange:
    outcome: str
    price: int
    delta: int
    order: Order


@dataclass
class Book:
    ticker: str
    levels: dict[str, list[deque[Order]]] = field(default_factory=dict)
    qty: dict[str, list[int]] = field(default_factory=dict)
    changes: list[LevelChange] = field(default_factory=list)

    def __post_init__(self) -> None:
        for outcome in (YES, NO):
            self.levels[outcome] = [deque() for _ in range(100)]
            self.qty[outcome] = [0] * 100

    # --- queries -------------------------------------------------------------
    def best(self, outcome: str) -> int:
        """Best (highest) bid price on an outcome, 0 when empty."""
        q = self.qty[outcome]
        for price in range(99, 0, -1):
            if q[price]:
                return price
        return 0

    def depth(self, outcome: str, levels: int = 0) -> list[tuple[int, int]]:
        """Aggregated (price, size) levels, best first; levels=0 means all."""
        q = self.qty[outcome]
        out = [(p, q[p]) for p in range(99, 0, -1) if q[p]]
        return out[:levels] if levels > 0 else out

    def crossing_qty(self, outcome: str, price: int, exclude_account: str | None = None) -> int:
        """Contracts resting on the other side that an order (outcome, price) would reach."""
        opp = other(outcome)
        total = 0
        for p in range(99, 99 - price, -1):
            if exclude_account is None:
                total += self.qty[opp][p]
            else:
                total += sum(o.remaining for o in self.levels[opp][p]
                             if o.account_id != exclude_account)
        return total

    def would_cross(self, outcome: str, price: int) -> bool:
        best = self.best(other(outcome))
        return best > 0 and best + price >= 100

    # --- mutations -----------------------------------------------------------
    def add(self, order: Order) -> None:
        self.levels[order.outcome][order.price].append(order)
        self.qty[order.outcome][order.price] += order.remaining
        order.in_book = True
        self.changes.append(LevelChange(order.outcome, order.price, order.remaining, order))

    def remove(self, order: Order) -> None:
        """Take an order out of the book (cancel / fully reduced)."""
        if not order.in_book:
            return
        level = self.levels[order.outcome][order.price]
        level.remove(order)
        self.qty[order.outcome][order.price] -= order.remaining
        order.in_book = False
        if order.remaining:
            self.changes.append(
                LevelChange(order.outcome, order.price, -order.remaining, order))

    def reduce(self, order: Order, by: int) -> None:
        """Reduce a resting order in place, keeping its time priority."""
        order.remaining -= by
        self.qty[order.outcome][order.price] -= by
        self.changes.append(LevelChange(order.outcome, order.price, -by, order))

    def match(self, taker: Order, limit_cost: int | None = None) -> tuple[list[Match], bool]:
        """Match `taker` against resting orders; mutates makers, not the taker's counts.

        Returns the matches and whether self-trade prevention stopped the taker
        (taker_at_cross). With `limit_cost`, stops before the taker's cost would pass it.
        """
        opp = other(taker.outcome)
        matches: list[Match] = []
        want = taker.remaining
        cost = 0
        for maker_price in range(99, 0, -1):
            if want == 0 or maker_price + taker.price < 100:
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
                if limit_cost is not None:
                    afford = (limit_cost - cost) // (100 - maker_price)
                    n = min(n, afford)
                    if n <= 0:
                        return matches, False
                cost += n * (100 - maker_price)
                maker.remaining -= n
                maker.filled += n
                self.qty[opp][maker_price] -= n
                self.changes.append(LevelChange(opp, maker_price, -n, maker))
                if maker.remaining == 0:
                    level.popleft()
                    maker.in_book = False
                    maker.status = "executed"
                want -= n
                matches.append(Match(maker, n, maker_price, 100 - maker_price))
        return matches, False
