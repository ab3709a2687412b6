"""A full simulated hour, every service a real process: the simulator (at its speed factor)
-> rec-market-feed + rec-price-feed -> rec-coordinator -> rec-auto-entry -> rec-trade-manager
-> rec-trade-executor -> fills (rec-account-sync) -> rec-trade-supervisor exits or the
settlement. The trades' fees and P&L in the database equal the simulator's ledger to the
cent."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests import data_in_fixtures as di
from tests import trading_fixtures as tf
from tests.test_sim_fixtures import START_MS, start_sim, stop_sim

SPEED = 150.0  # simulated seconds per wall second
CLOSE_MS = START_MS + 3_600_000


@pytest.fixture
async def fast_sim(tmp_path):
    """The simulator holds its clock while the services start, then runs at SPEED."""
    handle, server = await start_sim(tmp_path, start_ms=START_MS + 60_000)
    yield handle
    await stop_sim(handle, server)


def run_clock(sim, speed: float, step_s: int = 3) -> asyncio.Task:
    async def tick() -> None:
        while True:
            sim.sim.world.advance(step_s)
            await asyncio.sleep(step_s / speed)
    return asyncio.create_task(tick())


async def test_a_simulated_hour_trades_on_its_own_and_matches_the_ledger(
        fast_sim, rec_home_db, start_service):
    sim = fast_sim
    tf.prepare(rec_home_db, sim, REC_MARKET_FEED_SERIES="KXBTCD", REC_PRICE_FEED_INDICES="BRTI",
               REC_COORDINATOR_SERIES="KXBTCD:BRTI", REC_COORDINATOR_INTERVAL_SEC="0.2",
               REC_COORDINATOR_MIN_VOL_SAMPLES="30", REC_COORDINATOR_MAX_INDEX_AGE_SEC="5",
               REC_WATCHLIST_MIN_DIFF_CENTS="1", REC_TRADE_SUPERVISOR_INTERVAL_SEC="0.2",
               REC_AUTO_ENTRY_INTERVAL_SEC="0.2", REC_LOG_LEVEL="info")
    acct = sim.sim.account(sim.signer.key_id)
    balance0 = acct.balance
    procs = {}
    for name in ("market-feed", "price-feed", "account-sync", "trade-executor",
                 "trade-manager"):
        procs[name] = start_service(rec_home_db, name)
        await di.wait_notify(procs[name], "READY", "1")
    r = await tf.put(rec_home_db, "/settings", {
        "auto_entry_enabled": True, "auto_entry_min_probability": 0.6,
        "auto_entry_min_diff_cents": 1, "auto_entry_min_ttc_sec": 120,
        "auto_entry_max_ttc_sec": 3300, "auto_entry_strike_cooldown_sec": 2,
        "auto_entry_position_size": 1, "auto_entry_multiplier": 2,
        "auto_entry_max_slippage_cents": 3, "exit_probability_threshold": 0.45,
        "exit_probability_min_ttc_sec": 120, "max_contracts_per_market": 4})
    assert r.status_code == 200, r.text
    for name in ("coordinator", "trade-supervisor", "auto-entry"):
        procs[name] = start_service(rec_home_db, name)
        await di.wait_notify(procs[name], "READY", "1")
    conn = await di.connect(rec_home_db)
    clock = run_clock(sim, SPEED)

    async def settled_and_final():
        if sim.sim.world.now_ms < CLOSE_MS + 120_000:
            return False
        left = await di.rows(conn, "SELECT count(*) FROM trades WHERE status IN "
                                   "('pending', 'submitted', 'open', 'closing') OR "
                                   "(status = 'expired' AND entry_cost IS NOT NULL "
                                   "AND market_result IS NULL)")
        return left[0][0] == 0

    await di.until(settled_and_final, 90, "the hour traded, closed and settled",
                   procs["trade-manager"])
    clock.cancel()
    trades = await di.rows(conn, "SELECT id, status, quantity, fees, pnl_cents, close_method, "
                                 "close_rule, entry_method FROM trades ORDER BY id")
    await conn.close()
    opened = [t for t in trades if t[4] is not None]
    assert len(opened) >= 1, trades  # it traded (FOK entries the book outran are canceled)
    assert all(t[7] == "auto" for t in trades)
    # every order at the exchange belongs to one trade leg, each leg at most one order
    coids = [o.client_order_id for o in acct.orders.values()]
    assert len(coids) == len(set(coids)) and all(c.startswith("rec-") for c in coids)
    ledger_cents = (acct.balance - balance0) // 100
    assert sum(t[4] for t in opened) == ledger_cents, (trades, ledger_cents)
    fees = sum((Decimal(f.fee) / tf.UNIT for f in acct.fills), Decimal(0))
    assert sum(t[3] for t in trades) == fees
    ways = {(t[1], t[5], t[6]) for t in opened}
    print(f"\nhour: {len(trades)} trades, {len(opened)} with P&L, ledger {ledger_cents} cents, "
          f"fees ${fees}; outcomes {sorted(ways, key=str)}")
    for p in procs.values():
        assert p.terminate() == 0
