"""A full simulated hour, every service a real process: the simulator (at its speed factor)
-> rec-market-feed + rec-price-feed -> rec-coordinator -> rec-auto-entry -> rec-trade-manager
-> rec-trade-executor -> fills (rec-account-sync) -> rec-trade-supervisor exits or the
settlement. The trades' fees and P&L in the database equal the simulator's ledger to the
cent."""

from __future__ import annotations

import pytest

from testkit.sim import START_MS
from tests import data_in_fixtures as di
from tests import trading_fixtures as tf
from tests.test_sim_fixtures import start_sim, stop_sim

SPEED = 150.0  # simulated seconds per wall second
CLOSE_MS = START_MS + tf.HOUR_MS
SETTINGS = {
    "auto_entry_enabled": True, "auto_entry_min_probability": 0.6,
    "auto_entry_min_diff_cents": 1, "auto_entry_min_ttc_sec": 120,
    "auto_entry_max_ttc_sec": 3300, "auto_entry_strike_cooldown_sec": 2,
    "auto_entry_position_size": 1, "auto_entry_multiplier": 2,
    "auto_entry_max_slippage_cents": 3, "exit_probability_threshold": 0.45,
    "exit_probability_min_ttc_sec": 120, "max_contracts_per_market": 4}


@pytest.fixture
async def fast_sim(tmp_path):
    """The simulator holds its clock while the services start, then runs at a speed."""
    handle, server = await start_sim(tmp_path, start_ms=START_MS + 60_000)
    yield handle
    await stop_sim(handle, server)


async def test_a_simulated_hour_trades_on_its_own_and_matches_the_ledger(
        fast_sim, rec_home_db, start_service):
    sim = fast_sim
    acct = sim.sim.account(sim.signer.key_id)
    balance0 = acct.balance
    procs = await tf.start_all(rec_home_db, sim, start_service, SETTINGS)
    conn = await di.connect(rec_home_db)
    clock = tf.SimClock(sim, SPEED)
    await tf.until_settled(conn, sim, CLOSE_MS, 90, procs["trade-manager"])
    clock.stop()
    trades = await di.rows(conn, "SELECT id, status, quantity, fees, pnl_cents, close_method, "
                                 "close_rule, entry_method FROM trades ORDER BY id")
    await conn.close()
    opened = [t for t in trades if t[4] is not None]
    assert len(opened) >= 1, trades  # it traded (FOK entries the book outran are canceled)
    assert all(t[7] == "auto" for t in trades)
    ledger_cents, fees = tf.assert_ledger(acct, balance0, trades)
    ways = {(t[1], t[5], t[6]) for t in opened}
    print(f"\nhour: {len(trades)} trades, {len(opened)} with P&L, ledger {ledger_cents} cents, "
          f"fees ${fees}; outcomes {sorted(ways, key=str)}")
    for p in procs.values():
        assert p.terminate() == 0
