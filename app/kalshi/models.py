"""Typed results for Kalshi Trade API v2, with exact money and counts.

The wire carries prices as fixed-point dollar strings (``"0.5600"``, up to six
decimals) and contract counts as fixed-point strings with two decimals
(``"10.00"``, fields ending in ``_fp``). Both parse to :class:`~decimal.Decimal`
here; a float never appears. Balances and settlement revenue are integer cents
on the wire and stay ``int``. Field names are the spec's, so a reader can go
from a model to openapi.yaml / asyncapi.yaml without a translation table.
Unknown fields are kept (``extra="allow"``) so newer exchange versions do not
break parsing. The models follow Trade API v3.31.0: order and fill direction is
``outcome_side`` / ``book_side`` (the deprecated ``side`` / ``action`` /
``taker_side`` are not declared, so nothing can come to depend on them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict

# the money helpers live in app.kalshi.money; re-exported here for their callers
from app.kalshi.money import CENT as CENT
from app.kalshi.money import Count as Count
from app.kalshi.money import Dollars as Dollars
from app.kalshi.money import MoneyFormatError as MoneyFormatError
from app.kalshi.money import OptCount as OptCount
from app.kalshi.money import OptDollars as OptDollars
from app.kalshi.money import cents_to_dollars as cents_to_dollars
from app.kalshi.money import dollars_to_cents as dollars_to_cents
from app.kalshi.money import fmt_count as fmt_count
from app.kalshi.money import fmt_dollars as fmt_dollars
from app.kalshi.money import loads as loads
from app.kalshi.money import to_decimal as to_decimal


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ErrorBody(_Model):
    """Kalshi's ErrorResponse: ``{"code", "message", "details", "service"}``."""

    code: str | None = None
    message: str | None = None
    details: str | None = None
    service: str | None = None


# ---------------------------------------------------------------- exchange, series, events


class ExchangeStatus(_Model):
    exchange_active: bool
    trading_active: bool
    exchange_estimated_resume_time: datetime | None = None


class Series(_Model):
    ticker: str
    title: str = ""
    category: str = ""
    frequency: str = ""
    tags: list[str] | None = None
    fee_type: str | None = None
    fee_multiplier: OptDollars = None
    volume_fp: OptCount = None
    last_updated_ts: datetime | None = None


class PriceRange(_Model):
    start: Dollars
    end: Dollars
    step: Dollars


class Market(_Model):
    """GET /markets: ``settlement_bounds_type`` is required since v3.31.0."""

    ticker: str
    settlement_bounds_type: str
    event_ticker: str = ""
    market_type: str | None = None
    status: str = ""
    title: str | None = None
    yes_sub_title: str | None = None
    no_sub_title: str | None = None
    open_time: datetime | None = None
    close_time: datetime | None = None
    expected_expiration_time: datetime | None = None
    latest_expiration_time: datetime | None = None
    created_time: datetime | None = None
    updated_time: datetime | None = None
    settlement_ts: datetime | None = None
    strike_type: str | None = None
    floor_strike: OptDollars = None
    cap_strike: OptDollars = None
    yes_bid_dollars: OptDollars = None
    yes_ask_dollars: OptDollars = None
    no_bid_dollars: OptDollars = None
    no_ask_dollars: OptDollars = None
    last_price_dollars: OptDollars = None
    previous_price_dollars: OptDollars = None
    previous_yes_bid_dollars: OptDollars = None
    previous_yes_ask_dollars: OptDollars = None
    notional_value_dollars: OptDollars = None
    settlement_value_dollars: OptDollars = None
    yes_bid_size_fp: OptCount = None
    yes_ask_size_fp: OptCount = None
    volume_fp: OptCount = None
    volume_24h_fp: OptCount = None
    open_interest_fp: OptCount = None
    result: str | None = None
    can_close_early: bool | None = None
    fractional_trading_enabled: bool | None = None
    price_level_structure: str | None = None
    price_ranges: list[PriceRange] | None = None
    settlement_floor_dollars: OptDollars = None
    exchange_index: int | None = None


class Event(_Model):
    event_ticker: str
    series_ticker: str = ""
    title: str = ""
    sub_title: str = ""
    mutually_exclusive: bool | None = None
    strike_date: datetime | None = None
    strike_period: str | None = None
    markets: list[Market] | None = None


class EventWithMarkets(_Model):
    """GET /events/{event_ticker}: the event and its markets."""

    event: Event
    markets: list[Market] = []


class PriceLevel(NamedTuple):
    price: Decimal  # dollars
    count: Decimal  # contracts


def _levels(raw: Any) -> list[PriceLevel]:
    return [PriceLevel(to_decimal(p), to_decimal(c)) for p, c in (raw or [])]


@dataclass(frozen=True)
class Orderbook:
    """GET /markets/{ticker}/orderbook: bids only, per side, as the exchange sends them.

    A YES bid at p is a NO ask at 1 - p; levels are in the order received.
    """

    ticker: str
    yes: list[PriceLevel]
    no: list[PriceLevel]

    @classmethod
    def from_response(cls, ticker: str, data: dict[str, Any]) -> Orderbook:
        book = data.get("orderbook_fp") or {}
        return cls(ticker, _levels(book.get("yes_dollars")), _levels(book.get("no_dollars")))

    def as_maps(self) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        return ({p: c for p, c in self.yes}, {p: c for p, c in self.no})


class Trade(_Model):
    trade_id: str
    ticker: str
    count_fp: Count
    yes_price_dollars: Dollars
    no_price_dollars: Dollars
    taker_outcome_side: str  # yes | no: the taker's exposure
    taker_book_side: str  # bid | ask: the same bit on the YES book
    is_block_trade: bool | None = None
    created_time: datetime | None = None


# ---------------------------------------------------------------- portfolio


class Balance(_Model):
    balance: int  # cents available for trading
    portfolio_value: int = 0  # cents
    updated_ts: int | None = None


class MarketPosition(_Model):
    ticker: str
    position_fp: Count  # > 0 YES contracts, < 0 NO contracts
    exchange_index: int | None = None
    market_exposure_dollars: OptDollars = None
    realized_pnl_dollars: OptDollars = None
    fees_paid_dollars: OptDollars = None
    total_traded_dollars: OptDollars = None
    resting_orders_count: int | None = None
    last_updated_ts: datetime | None = None


class EventPosition(_Model):
    event_ticker: str
    total_cost_dollars: OptDollars = None
    total_cost_shares_fp: OptCount = None
    event_exposure_dollars: OptDollars = None
    realized_pnl_dollars: OptDollars = None
    fees_paid_dollars: OptDollars = None


class Order(_Model):
    order_id: str
    client_order_id: str | None = None
    user_id: str | None = None
    ticker: str
    outcome_side: str  # yes | no: the exposure the order builds
    book_side: str  # bid | ask on the YES book
    type: str | None = None
    status: str
    yes_price_dollars: OptDollars = None
    no_price_dollars: OptDollars = None
    fill_count_fp: Count = Decimal(0)
    remaining_count_fp: Count = Decimal(0)
    initial_count_fp: OptCount = None
    taker_fees_dollars: OptDollars = None
    maker_fees_dollars: OptDollars = None
    taker_fill_cost_dollars: OptDollars = None
    maker_fill_cost_dollars: OptDollars = None
    created_time: datetime | None = None
    last_update_time: datetime | None = None
    expiration_time: datetime | None = None
    self_trade_prevention_type: str | None = None
    order_group_id: str | None = None
    cancel_order_on_pause: bool | None = None
    subaccount_number: int | None = None
    exchange_index: int | None = None


class Fill(_Model):
    fill_id: str | None = None
    trade_id: str
    order_id: str
    ticker: str | None = None
    market_ticker: str | None = None
    outcome_side: str  # yes | no
    book_side: str  # bid | ask
    count_fp: Count
    yes_price_dollars: Dollars
    no_price_dollars: OptDollars = None
    is_taker: bool | None = None
    fee_cost: OptDollars = None
    created_time: datetime | None = None
    ts: int | None = None
    client_order_id: str | None = None
    subaccount_number: int | None = None
    exchange_index: int | None = None


class Settlement(_Model):
    ticker: str
    event_ticker: str | None = None
    market_result: str
    yes_count_fp: Count = Decimal(0)
    yes_total_cost_dollars: OptDollars = None
    no_count_fp: Count = Decimal(0)
    no_total_cost_dollars: OptDollars = None
    revenue: int = 0  # cents
    value: int | None = None  # cents per YES contract
    fee_cost: OptDollars = None
    settled_time: datetime | None = None


class OrderAck(_Model):
    """V2 create (and each batch-create item): the exchange's answer, not a full Order.

    ``recovered`` is set by the client when the answer was lost and the order was
    found by its client_order_id instead (``order`` then holds what was found).
    """

    order_id: str
    client_order_id: str | None = None
    fill_count: Count = Decimal(0)
    remaining_count: Count = Decimal(0)
    average_fill_price: OptDollars = None
    average_fee_paid: OptDollars = None
    ts_ms: int | None = None
    recovered: bool = False
    order: Order | None = None

    @classmethod
    def from_order(cls, order: Order) -> OrderAck:
        return cls(
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            fill_count=order.fill_count_fp,
            remaining_count=order.remaining_count_fp,
            recovered=True,
            order=order,
        )


class CancelAck(_Model):
    """V2 cancel: ``reduced_by`` is None when a retry found the order already canceled."""

    order_id: str
    client_order_id: str | None = None
    reduced_by: OptCount = None
    ts_ms: int | None = None


class AmendAck(_Model):
    order_id: str
    client_order_id: str | None = None
    remaining_count: OptCount = None
    fill_count: OptCount = None
    average_fill_price: OptDollars = None
    average_fee_paid: OptDollars = None
    ts_ms: int | None = None


class DecreaseAck(_Model):
    order_id: str
    client_order_id: str | None = None
    remaining_count: Count
    ts_ms: int | None = None


class BatchCreateItem(_Model):
    """One item of a V2 batch create: the order's ids, or its error."""

    order_id: str | None = None
    client_order_id: str | None = None
    fill_count: OptCount = None
    remaining_count: OptCount = None
    average_fill_price: OptDollars = None
    average_fee_paid: OptDollars = None
    ts_ms: int | None = None
    error: ErrorBody | None = None
    recovered: bool = False
    order: Order | None = None

    @classmethod
    def from_order(cls, order: Order) -> BatchCreateItem:
        """An item for an order an earlier, unanswered attempt of the batch placed."""
        return cls(
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            fill_count=order.fill_count_fp,
            remaining_count=order.remaining_count_fp,
            recovered=True,
            order=order,
        )


class BatchCancelItem(_Model):
    """One item of a V2 batch cancel: the order's ids and what it took off, or its error."""

    order_id: str | None = None
    client_order_id: str | None = None
    reduced_by: OptCount = None
    ts_ms: int | None = None
    error: ErrorBody | None = None


class BucketLimit(_Model):
    """One token bucket: ``refill_rate`` tokens/s up to ``bucket_capacity``."""

    refill_rate: int
    bucket_capacity: int


class AccountLimits(_Model):
    """GET /account/limits."""

    usage_tier: str
    read: BucketLimit
    write: BucketLimit
    grants: list[dict[str, Any]] = []


class EndpointCost(_Model):
    method: str
    path: str
    cost: int


class EndpointCosts(_Model):
    """GET /account/endpoint_costs: only endpoints whose cost differs from the default."""

    default_cost: int
    endpoint_costs: list[EndpointCost] = []


class HistoricalCutoff(_Model):
    """Where live data ends: older orders (canceled or executed), fills, settled markets and
    archived positions are served under ``/historical``."""

    market_settled_ts: datetime
    trades_created_ts: datetime
    orders_updated_ts: datetime
    market_positions_last_updated_ts: datetime | None = None


class Positions(_Model):
    market_positions: list[MarketPosition] = []
    event_positions: list[EventPosition] = []
    cursor: str | None = None


T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    """One page of a cursor-paginated list; ``cursor`` is None on the last page."""

    items: list[T]
    cursor: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


# ---------------------------------------------------------------- WebSocket payloads (msg bodies)


class TickerMsg(_Model):
    market_ticker: str
    market_id: str | None = None
    price_dollars: OptDollars = None
    yes_bid_dollars: OptDollars = None
    yes_ask_dollars: OptDollars = None
    yes_bid_size_fp: OptCount = None
    yes_ask_size_fp: OptCount = None
    last_trade_size_fp: OptCount = None
    volume_fp: OptCount = None
    open_interest_fp: OptCount = None
    dollar_volume: int | None = None
    dollar_open_interest: int | None = None
    ts_ms: int | None = None


class TradeMsg(_Model):
    trade_id: str
    market_ticker: str
    yes_price_dollars: Dollars
    no_price_dollars: OptDollars = None
    count_fp: Count
    taker_outcome_side: str | None = None
    taker_book_side: str | None = None
    is_block_trade: bool | None = None
    ts_ms: int | None = None


class FillMsg(_Model):
    trade_id: str
    order_id: str
    market_ticker: str
    exchange_index: int | None = None
    is_taker: bool | None = None
    outcome_side: str | None = None
    book_side: str | None = None
    yes_price_dollars: Dollars
    count_fp: Count
    fee_cost: OptDollars = None
    post_position_fp: OptCount = None
    client_order_id: str | None = None
    ts_ms: int | None = None


class UserOrderMsg(_Model):
    order_id: str
    ticker: str
    exchange_index: int | None = None
    status: str
    client_order_id: str | None = None
    outcome_side: str | None = None
    book_side: str | None = None
    yes_price_dollars: OptDollars = None
    fill_count_fp: OptCount = None
    remaining_count_fp: OptCount = None
    initial_count_fp: OptCount = None
    last_update_reason: str | None = None


class MarketPositionMsg(_Model):
    market_ticker: str
    position_fp: Count
    position_cost_dollars: OptDollars = None
    realized_pnl_dollars: OptDollars = None
    fees_paid_dollars: OptDollars = None
    volume_fp: OptCount = None


class MarketLifecycleMsg(_Model):
    market_ticker: str
    event_type: str
    open_ts: int | None = None
    close_ts: int | None = None
    determination_ts: int | None = None
    settled_ts: int | None = None
    result: str | None = None
    settlement_value: OptDollars = None
    is_deactivated: bool | None = None
    exchange_index: int | None = None
    price_level_structure: str | None = None
    price_ranges: list[PriceRange] | None = None


WS_MSG_MODELS: dict[str, type[_Model]] = {
    "ticker": TickerMsg,
    "trade": TradeMsg,
    "fill": FillMsg,
    "user_order": UserOrderMsg,
    "market_position": MarketPositionMsg,
    "market_lifecycle_v2": MarketLifecycleMsg,
}


def parse_ws_msg(msg_type: str, body: dict[str, Any]) -> _Model | None:
    """The typed model for a data message's ``msg`` body, or None for other types."""
    model = WS_MSG_MODELS.get(msg_type)
    return model.model_validate(body) if model else None
