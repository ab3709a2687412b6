"""The trade state machine without HTTP (app/trading/machine.py), driven on a real, migrated
PostgreSQL with the rows rec-trade-executor and rec-account-sync would write: fills held back,
a rejected close, a settlement that arrives while the market still reads active."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from psycopg_pool import AsyncConnectionPool

from app.trading.machine import TradeMachine
from tests import data_in_fixtures as di


@pytest.fixture
async def machine(rec_home_db):
    assert rec_home_db.rec("db", "migrate").returncode == 0
    conn = await di.connect(rec_home_db)
    await conn.execute(
        "INSERT INTO markets (ticker, event_ticker, series_ticker, title, status, raw, "
        "followed) VALUES ('KXT-1', 'KXT', 'KXT', 't', 'active', %s, true)",
        (json.dumps({}),))
    async with AsyncConnectionPool(rec_home_db.db.dsn, min_size=1, max_size=2,
                                   kwargs={"autocommit": True}) as pool:
        yield TradeMachine(pool), conn
    await conn.close()


async def held_trade(conn, status: str, qty: int = 2, cost: str = "1.00",
                     fees: str = "0.02") -> int:
    """A trade holding ``qty`` YES contracts of KXT-1 bought for ``cost``."""
    cur = await conn.execute(
        "INSERT INTO trades (ticker, side, status, quantity, requested_count, limit_price, "
        "strategy, entry_method, entry_price, entry_cost, fees, fees_cents, opened_at, "
        "close_attempts) VALUES ('KXT-1', 'yes', %s, %s, %s, 0.5, 'manual', 'manual', 0.5, "
        "%s, %s, 2, now(), 1) RETURNING id", (status, qty, qty, cost, fees))
    return (await cur.fetchone())[0]


async def close_leg(conn, trade_id: int, state: str, oid: str | None = None,
                    fill_count: int | None = None, remaining: int | None = None,
                    error_code: str | None = None) -> None:
    await conn.execute(
        "INSERT INTO trade_orders (client_order_id, trade_id, leg, ticker, side, action, count, "
        "price, time_in_force, strategy, state, exchange_order_id, fill_count, remaining_count, "
        "error_code, error_text) VALUES (%s, %s, 'close1', 'KXT-1', 'yes', 'sell', 2, 0.6, "
        "'fill_or_kill', 'supervisor', %s, %s, %s, %s, %s, %s)",
        (f"rec-x-{trade_id}-close1", trade_id, state, oid, fill_count, remaining, error_code,
         error_code and f"{error_code} said the exchange"))


async def fill(conn, oid: str, n: int, yes_price: str, fee: str, tid: str) -> None:
    await conn.execute(
        "INSERT INTO account_fills (trade_id, order_id, ticker, outcome_side, book_side, count, "
        "yes_price, no_price, fee, created_time, source) VALUES (%s, %s, 'KXT-1', 'yes', 'bid', "
        "%s, %s, 1 - %s::numeric, %s, %s, 'rest')",
        (tid, oid, n, yes_price, yes_price, fee, datetime.now(UTC)))


async def drive(m: TradeMachine) -> None:
    """One sweep of the manager: every leg result, then expiry and settlement."""
    for r in await m.results():
        await m.apply(r)
    await m.expire_and_settle()


async def trade(conn, trade_id: int) -> dict:
    cur = await conn.execute("SELECT * FROM trades WHERE id = %s", (trade_id,))
    names = [d.name for d in cur.description]
    return dict(zip(names, await cur.fetchone(), strict=True))


async def event_kinds(conn, trade_id: int) -> list[tuple]:
    return await di.rows(conn, "SELECT kind, from_status, to_status, detail FROM trade_events "
                               "WHERE trade_id = %s ORDER BY id", trade_id)


async def test_a_trade_stays_closing_until_its_close_fills_sum_to_the_count(machine):
    m, conn = machine
    tid = await held_trade(conn, "closing")
    await close_leg(conn, tid, "accepted", oid="o-close", fill_count=2, remaining=0)
    await fill(conn, "o-close", 1, "0.60", "0.0168", "f1")  # one fill held back
    await drive(m)
    assert (await trade(conn, tid))["status"] == "closing"
    await fill(conn, "o-close", 1, "0.60", "0.0168", "f2")
    await drive(m)
    t = await trade(conn, tid)
    # proceeds 1.20 - cost 1.00 - fees (0.02 + 0.0336) = 0.1464 -> 15 cents
    assert (t["status"], t["quantity"], t["pnl_cents"]) == ("closed", 2, 15), t
    assert t["exit_proceeds"] == Decimal("1.20") and t["fees"] == Decimal("0.0536")


async def test_a_rejected_close_returns_the_trade_to_open_with_its_reason(machine):
    m, conn = machine
    tid = await held_trade(conn, "closing")
    await close_leg(conn, tid, "rejected", error_code="market_closed")
    await drive(m)
    assert (await trade(conn, tid))["status"] == "open"
    kind, old, new, detail = (await event_kinds(conn, tid))[-1]
    assert (kind, old, new) == ("close rejected", "closing", "open")
    assert detail["reason"].startswith("market_closed") and detail["state"] == "rejected"


async def test_a_settlement_record_settles_a_trade_while_the_market_still_reads_active(machine):
    m, conn = machine
    won = await held_trade(conn, "open")
    closing = await held_trade(conn, "closing", qty=3, cost="1.50", fees="0.03")
    await close_leg(conn, closing, "accepted", oid="o-rest", fill_count=0, remaining=2)
    await drive(m)
    assert (await trade(conn, won))["status"] == "open"  # nothing says the market ended
    # rec-account-sync books the exchange's settlement; rec-market-feed saw nothing
    await conn.execute("INSERT INTO account_settlements (ticker, event_ticker, market_result, "
                       "yes_count, revenue_cents, settled_time) "
                       "VALUES ('KXT-1', 'KXT', 'yes', 5, 500, now())")
    await drive(m)
    assert (await di.rows(conn, "SELECT status FROM markets"))[0][0] == "active"
    # the close still rests as far as rec knows: it may have filled as the market ended, so
    # the trade waits for the order's end (the exchange cancels it at the close)
    assert (await trade(conn, closing))["status"] == "closing"
    await conn.execute("INSERT INTO account_orders (order_id, ticker, status, fill_count, "
                       "remaining_count) VALUES ('o-rest', 'KXT-1', 'canceled', 0, 0)")
    await drive(m)  # the close failed: back to open
    await drive(m)  # then expired from open and settled
    for tid, pnl in ((won, 200 - 100 - 2), (closing, 300 - 150 - 3)):
        t = await trade(conn, tid)
        assert (t["status"], t["market_result"], t["pnl_cents"]) == ("expired", "yes", pnl), t
        assert "settled yes" in t["reason"]
        assert [k for k, *_ in await event_kinds(conn, tid)][-2:] == ["market closed",
                                                                      "settled"]
    assert "close failed" in [k for k, *_ in await event_kinds(conn, closing)]
