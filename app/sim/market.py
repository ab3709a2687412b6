"""Series, events and markets of the simulated world (data only; views.py renders them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.sim.money import PRICE_STRUCTURES

# Internal market states use the spec's Market.status values.
INITIALIZED = "initialized"
ACTIVE = "active"
CLOSED = "closed"
DETERMINED = "determined"
FINALIZED = "finalized"

# GET /markets?status= filter values -> Market.status values.
STATUS_FILTER = {
    "unopened": {INITIALIZED},
    "open": {ACTIVE},
    "paused": {"inactive"},
    "closed": {CLOSED},
    "settled": {DETERMINED, FINALIZED},
}


@dataclass
class Series:
    ticker: str
    title: str
    frequency: str = "hourly"
    category: str = "Crypto"
    tags: list[str] = field(default_factory=lambda: ["BTC"])
    fee_type: str = "quadratic"
    fee_multiplier: float = 1.0
    price_level_structure: str = "linear_cent"
    created_ms: int = 0
    index_id: str = "BRTI"  # the CF Benchmarks index its markets settle on


@dataclass
class Event:
    event_ticker: str
    series_ticker: str
    title: str
    sub_title: str
    strike_ms: int
    mutually_exclusive: bool
    created_ms: int
    markets: list[str] = field(default_factory=list)
    seq: int = 0


@dataclass
class Market:
    ticker: str
    event_ticker: str
    series_ticker: str
    market_id: str
    title: str
    yes_sub_title: str
    no_sub_title: str
    strike_type: str  # greater | between
    floor_strike: float | None
    cap_strike: float | None
    created_ms: int
    open_ms: int
    close_ms: int
    seq: int
    status: str = INITIALIZED
    result: str = ""
    settlement_value: int | None = None  # $0.0001 paid per YES contract
    expiration_value: str = ""
    settled_ms: int | None = None
    determined_ms: int | None = None
    updated_ms: int = 0
    last_price: int = 0  # $0.0001
    volume: int = 0
    open_interest: int = 0
    dollar_volume: int = 0  # $0.0001 of YES-price notional traded
    last_trade_size: int = 0
    price_level_structure: str = "linear_cent"
    index_id: str = "BRTI"
    # (yes_bid, yes_ask, last_price) an hour ago, or at the first mark after the open for
    # a younger market; None before that ($0.0001)
    previous: tuple[int, int, int] | None = None

    @property
    def price_ranges(self) -> tuple[tuple[int, int, int], ...]:
        return PRICE_STRUCTURES[self.price_level_structure]

    def wins(self, value: float) -> bool:
        """Whether an expiration value settles this market YES."""
        if self.strike_type == "greater":
            return value > (self.floor_strike or 0.0)
        lo = self.floor_strike if self.floor_strike is not None else float("-inf")
        hi = self.cap_strike if self.cap_strike is not None else float("inf")
        return lo <= value <= hi
