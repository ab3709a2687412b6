"""Order groups (Trade API v3.31.0): a contract limit over a rolling 15-second window.

An order placed with ``order_group_id`` joins the group. Every contract matched by an order
of the group (as taker or maker) counts in the window; when the window's total reaches the
limit the group triggers: every resting order of the group is canceled and the group takes
no new order until it is reset. ``trigger`` does the same on demand; ``limit`` changes the
limit (and triggers at once if the window already reaches it); ``delete`` cancels the group's
orders and removes it. Each change is published on the ``order_group_updates`` channel.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from app.sim.accounts import stable_uuid
from app.sim.errors import ExchangeError
from app.sim.wire import fp

if TYPE_CHECKING:
    from app.sim.accounts import Account
    from app.sim.matching import Order


class Venue(Protocol):
    """What order groups need of the exchange (app.sim.venue.Exchange), named here so
    this module does not import the exchange that imports it."""

    salt: int
    clock: Callable[[], int]
    accounts: dict[str, Account]
    observers: list[Any]

    def cancel_order(self, acct: Account, order: Order, reason: str) -> Any: ...

WINDOW_MS = 15_000
TRIGGERED = "order_group_triggered"


@dataclass
class OrderGroup:
    group_id: str
    account_id: str
    limit: int
    triggered: bool = False
    orders: list[str] = field(default_factory=list)
    matched: deque[tuple[int, int]] = field(default_factory=deque)  # (ts_ms, contracts)

    def in_window(self, now_ms: int) -> int:
        while self.matched and self.matched[0][0] <= now_ms - WINDOW_MS:
            self.matched.popleft()
        return sum(n for _, n in self.matched)

    def view(self) -> dict:
        return {"id": self.group_id, "contracts_limit_fp": fp(self.limit),
                "is_auto_cancel_enabled": True, "exchange_index": 0}


class OrderGroups:
    """The exchange's order groups; the exchange calls :meth:`matched` on every fill."""

    def __init__(self, ex: Venue) -> None:
        self.ex = ex
        self.groups: dict[str, OrderGroup] = {}
        self._due: list[OrderGroup] = []
        self._seq = 0

    def create(self, acct: Account, limit: int) -> OrderGroup:
        self._seq += 1
        g = OrderGroup(stable_uuid("order_group", self.ex.salt, self._seq, acct.account_id),
                       acct.account_id, limit)
        self.groups[g.group_id] = g
        self._publish(g, "created", with_limit=True)
        return g

    def owned(self, acct: Account, group_id: str) -> OrderGroup:
        g = self.groups.get(group_id)
        if g is None or g.account_id != acct.account_id:
            raise ExchangeError(404, "not_found", f"order group {group_id} not found")
        return g

    def admit(self, acct: Account, group_id: str) -> OrderGroup:
        """An order may join the group: it exists, is the account's and is not triggered."""
        g = self.owned(acct, group_id)
        if g.triggered:
            raise ExchangeError(400, TRIGGERED, f"order group {group_id} was triggered; reset "
                                "it before placing orders in it")
        return g

    def joined(self, group_id: str, order: Order) -> None:
        g = self.groups.get(group_id)
        if g is not None:
            g.orders.append(order.order_id)

    def matched(self, order: Order, count: int, ts_ms: int) -> None:
        g = self.groups.get(order.order_group_id or "")
        if g is None or g.triggered:
            return
        g.matched.append((ts_ms, count))
        if g.in_window(ts_ms) >= g.limit and g not in self._due:
            self._due.append(g)

    def run_due(self) -> None:
        """Trigger the groups whose limit was reached (after the matching that reached it)."""
        while self._due:
            self.trigger(self._due.pop(0))

    def trigger(self, g: OrderGroup) -> None:
        g.triggered = True
        self._cancel_all(g)
        self._publish(g, "triggered")

    def reset(self, g: OrderGroup) -> None:
        g.triggered = False
        g.matched.clear()
        self._publish(g, "reset")

    def set_limit(self, g: OrderGroup, limit: int) -> None:
        g.limit = limit
        self._publish(g, "limit_updated", with_limit=True)
        if not g.triggered and g.in_window(self.ex.clock()) >= limit:
            self.trigger(g)

    def delete(self, g: OrderGroup) -> None:
        self._cancel_all(g)
        del self.groups[g.group_id]
        self._publish(g, "deleted")

    def _cancel_all(self, g: OrderGroup) -> None:
        acct = self.ex.accounts.get(g.account_id)
        if acct is None:
            return
        for oid in g.orders:
            order = acct.resting.get(oid)
            if order is not None:
                self.ex.cancel_order(acct, order, "OrderGroupCancel")

    def _publish(self, g: OrderGroup, event: str, with_limit: bool = False) -> None:
        msg = {"event_type": event, "order_group_id": g.group_id, "ts_ms": self.ex.clock()}
        if with_limit:
            msg["contracts_limit_fp"] = fp(g.limit)
        acct = self.ex.accounts.get(g.account_id)
        for obs in self.ex.observers:
            obs.order_group(acct, msg)
