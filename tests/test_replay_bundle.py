"""The unchanged trading bundle on a replay: every service a real process (the feeds,
account sync, the executor, the manager, the coordinator, the supervisor, auto entry)
against the simulator playing the checked-in recording's first hour, its fills made by
the replay's fill model. The trades' fees and P&L in rec's database equal the
simulator's ledger to the cent, every market settles on its recorded result."""

from __future__ import annotations

import duckdb
import pytest

from app.backtest import report
from tests import data_in_fixtures as di
from tests import trading_fixtures as tf
from tests.test_replay import FIXTURE, START_MS
from tests.test_sim_fixtures import start_sim, stop_sim
from tests.test_trading_hour import SETTINGS

SPEED = 120.0  # simulated seconds per wall second
CLOSE_MS = START_MS + tf.HOUR_MS


@pytest.fixture
async def replay_sim(tmp_path):
    handle, server = await start_sim(tmp_path, replay_file=FIXTURE, replay_latency_ms=50)
    yield handle
    await stop_sim(handle, server)


async def test_the_bundle_trades_a_recorded_hour_and_its_books_match_the_ledger(
        replay_sim, rec_home_db, start_service):
    sim = replay_sim
    acct = sim.sim.account(sim.signer.key_id)
    balance0 = acct.balance
    procs = await tf.start_all(rec_home_db, sim, start_service, SETTINGS)
    conn = await di.connect(rec_home_db)
    clock = tf.SimClock(sim, SPEED, step_s=1)
    await tf.until_settled(conn, sim, CLOSE_MS, 240, procs["trade-manager"])
    clock.stop()
    trades = await di.rows(conn, "SELECT id, status, quantity, fees, pnl_cents, close_method, "
                                 "close_rule, entry_method, ticker, market_result "
                                 "FROM trades ORDER BY id")
    rows = await di.rows(conn, report.TRADES_SQL)
    await conn.close()
    assert any(t[4] is not None for t in trades), trades  # it traded: the check below bites
    ledger_cents, fees = tf.assert_ledger(acct, balance0, trades)
    r = report.build([report.trade(row) for row in rows], *report.exchange_record(acct))
    assert r.pnl_cents == ledger_cents and r.fees == fees
    recorded = dict(duckdb.execute(f"select ticker, result from '{FIXTURE}' where "
                                   "kind = 'market'").fetchall())
    for t in trades:
        if t[9] is not None:  # held to the close: settled on the recorded result
            assert t[9] == recorded[t[8]], t
    print(f"\nreplayed hour: {len(acct.fills)} fills\n{r.text()}")
    for p in procs.values():
        assert p.terminate() == 0
