"""Accounts, positions, fills and settlements; money in $0.0001 (money.py).

Kalshi nets YES and NO in one market: the position is signed (+YES / -NO). Buying the
outcome opposite to a holding closes pairs, and each YES+NO pair pays out $1 at
once. Cost basis and realised P&L follow from that rule; fees are kept apart.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from app.sim.fees import FeeCharge
from app.sim.matching import YES, Order
from app.sim.money import ONE

_NS = uuid.UUID("5b0c6f64-6a52-4c39-9d53-6e3f2b1f7a10")


def stable_uuid(*parts: object) -> str:
    return str(uuid.uuid5(_NS, "/".join(str(p) for p in parts)))


@dataclass
class Position:
    ticker: str
    event_ticker: str
    position: int = 0  # +YES / -NO contracts
    cost: int = 0  # cost basis of the current holding
    realized_pnl: int = 0
    fees_paid: int = 0
    total_traded: int = 0  # spent or received on fills
    volume: int = 0  # contracts traded
    last_updated_ms: int = 0

    def apply_fill(self, outcome: str, count: int, price: int, ts_ms: int) -> int:
        """Book `count` contracts of `outcome` bought at `price`; returns the cash change."""
        cash = -count * price
        self.total_traded += count * price
        self.volume += count
        self.last_updated_ms = ts_ms
        sign = 1 if outcome == YES else -1
        held = self.position * sign  # > 0: same outcome already held
        if held < 0:
            k = min(count, -held)
            removed = self.cost if k == -held else self.cost * k // (-held)
            self.cost -= removed
            self.realized_pnl += k * (ONE - price) - removed
            self.position += sign * k
            cash += ONE * k
            count -= k
        if count:
            self.position += sign * count
            self.cost += count * price
        return cash


@dataclass
class FillRecord:
    fill_id: str
    order_id: str
    ticker: str
    side: str
    action: str
    outcome: str
    count: int
    yes_price: int
    is_taker: bool
    charge: FeeCharge  # trade fee, rounding fee, rebate
    ts_ms: int
    client_order_id: str
    post_position: int
    seq: int

    @property
    def fee(self) -> int:
        """The net fee charged (trade + rounding - rebate), $0.0001."""
        return self.charge.net


@dataclass
class SettlementRecord:
    ticker: str
    event_ticker: str
    result: str  # yes | no
    yes_count: int
    yes_cost: int
    no_count: int
    no_cost: int
    revenue: int
    value: int
    fee_cost: int
    settled_ms: int
    seq: int


@dataclass
class Account:
    account_id: str
    cash: int
    unlimited: bool = False  # the simulator's own liquidity accounts
    user_id: str = ""
    positions: dict[str, Position] = field(default_factory=dict)
    resting: dict[str, Order] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    by_client_id: dict[str, Order] = field(default_factory=dict)
    fills: list[FillRecord] = field(default_factory=list)
    settlements: list[SettlementRecord] = field(default_factory=list)
    updated_ms: int = 0

    def __post_init__(self) -> None:
        if not self.user_id:
            self.user_id = stable_uuid("user", self.account_id)

    # Collateral held by resting orders: remaining contracts times their bid price,
    # kept up to date by the exchange on every book change.
    locked: int = 0

    @property
    def balance(self) -> int:
        return self.cash - self.locked

    def position(self, ticker: str, event_ticker: str) -> Position:
        pos = self.positions.get(ticker)
        if pos is None:
            pos = self.positions[ticker] = Position(ticker, event_ticker)
        return pos
