"""The two records the ledger compares, read once each: the exchange's (through the public
methods of the client app.exchange_client builds) and rec's books (trades, legs and
rec-account-sync's mirror of the account)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

from app.kalshi.models import Fill, MarketPosition, Order, Settlement

ZERO = Decimal(0)


@dataclass
class ExchangeRecord:
    orders: list[Order]
    fills: list[Fill]
    positions: list[MarketPosition]
    settlements: list[Settlement]
    balance_cents: int


@dataclass
class Leg:
    client_order_id: str
    trade_id: int
    leg: str
    ticker: str
    side: str
    action: str
    count: Decimal
    state: str
    exchange_order_id: str | None


@dataclass
class Trade:
    id: int
    ticker: str
    side: str
    status: str
    quantity: Decimal
    entry_cost: Decimal | None
    exit_proceeds: Decimal | None
    fees: Decimal
    pnl_cents: int | None
    market_result: str | None


@dataclass
class MirrorFill:
    trade_id: str
    order_id: str
    count: Decimal
    yes_price: Decimal
    fee: Decimal


@dataclass
class Books:
    legs: list[Leg]
    trades: list[Trade]
    fills: list[MirrorFill]
    positions: dict[str, Decimal]  # rec-account-sync's mirror: ticker -> signed contracts
    settlements: dict[str, tuple[str, int]]  # ticker -> (result, revenue cents)
    balance_cents: int | None
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def leg_index(self) -> tuple[dict[str, Leg], dict[str, Leg]]:
        """The legs by client_order_id and by the exchange order id they name."""
        return ({leg.client_order_id: leg for leg in self.legs},
                {leg.exchange_order_id: leg for leg in self.legs if leg.exchange_order_id})


def fill_key(f) -> tuple:
    return (f.fill_id or f.trade_id, f.order_id)


async def read_exchange(rest) -> ExchangeRecord:
    """Every order, fill, position, settlement of the account and its balance. Orders that
    ended and fills made before the exchange's history cutoff (about two weeks) are served
    only by ``/historical/orders`` and ``/historical/fills``: both sections are read, and a
    record that moved between the two reads is counted once (the live copy wins)."""
    orders = [o async for o in rest.iter_orders(limit=1000)]
    live = {o.order_id for o in orders}
    orders += [o async for o in rest.iter_historical_orders(limit=1000)
               if o.order_id not in live]
    fills = [f async for f in rest.iter_fills(limit=1000)]
    seen = {fill_key(f) for f in fills}
    fills += [f async for f in rest.iter_historical_fills(limit=1000) if fill_key(f) not in seen]
    positions = [p async for p in rest.iter_market_positions(limit=1000)]
    settlements = [s async for s in rest.iter_settlements(limit=1000)]
    balance = await rest.get_balance()
    return ExchangeRecord(orders, fills, positions, settlements, balance.balance)


LEGS_SQL = ("SELECT client_order_id, trade_id, leg, ticker, side, action, count, state, "
            "exchange_order_id FROM trade_orders ORDER BY trade_id, created_at")
TRADES_SQL = ("SELECT id, ticker, side, status, quantity, entry_cost, exit_proceeds, fees, "
              "pnl_cents, market_result FROM trades ORDER BY id")
FILLS_SQL = "SELECT trade_id, order_id, count, yes_price, coalesce(fee, 0) FROM account_fills"


async def read_books(conn) -> Books:
    """rec's books from one consistent snapshot (a repeatable-read transaction)."""
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")

        async def rows(sql: str) -> list[tuple]:
            return await (await conn.execute(sql)).fetchall()

        legs = [Leg(*r) for r in await rows(LEGS_SQL)]
        trades = [Trade(*r) for r in await rows(TRADES_SQL)]
        fills = [MirrorFill(*r) for r in await rows(FILLS_SQL)]
        positions = dict(await rows("SELECT ticker, position FROM account_positions"))
        settlements = {t: (res, rev) for t, res, rev in await rows(
            "SELECT ticker, market_result, revenue_cents FROM account_settlements")}
        balance = await rows("SELECT balance_cents FROM account_balance")
    return Books(legs, trades, fills, positions, settlements,
                 balance[0][0] if balance else None)
