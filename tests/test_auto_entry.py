"""rec-auto-entry: each entry filter fires and holds; off by default; dry run enters nothing;
on, it enters through the manager once per strike and side."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from app.services.auto_entry import Candidate, Spike, decide, entry_size
from tests import data_in_fixtures as di
from tests import test_sim_fixtures as fx
from tests import trading_fixtures as tf

sim = fx.sim
D = Decimal

S = {"auto_entry_min_probability": 0.95, "auto_entry_min_diff_cents": 1,
     "auto_entry_min_ttc_sec": 120, "auto_entry_max_ttc_sec": 900,
     "auto_entry_strike_cooldown_sec": 900, "auto_entry_spike_enabled": True,
     "auto_entry_spike_threshold": 36, "auto_entry_spike_cooldown_sec": 60,
     "auto_entry_spike_cooldown_threshold": 30, "auto_entry_position_size": 2,
     "auto_entry_multiplier": 3}


def cand(**kw) -> Candidate:
    base = dict(ticker="T", side="yes", probability=D("0.97"), ask=D("0.94"),
                diff_cents=D(3), time_to_close_sec=600)
    base.update(kw)
    return Candidate(**base)


@pytest.mark.parametrize("kw, spiking, reason", [
    ({}, False, "all rules pass"),
    ({}, True, "spike_cooldown"),
    (dict(time_to_close_sec=119), False, "time_to_close"),
    (dict(time_to_close_sec=120), False, "all rules pass"),
    (dict(time_to_close_sec=901), False, "time_to_close"),
    (dict(active_trade=True), False, "duplicate_active_trade"),
    (dict(since_last_entry_sec=899.0), False, "strike_cooldown"),
    (dict(since_last_entry_sec=900.0), False, "all rules pass"),
    (dict(probability=D("0.949")), False, "probability"),
    (dict(probability=D("0.95")), False, "all rules pass"),
    (dict(diff_cents=D("0.9")), False, "diff"),
    (dict(diff_cents=D(1)), False, "all rules pass"),
])
def test_each_entry_filter_fires_and_holds(kw, spiking, reason):
    assert decide(cand(**kw), S, spiking)[1] == reason


def test_size_is_position_size_times_multiplier():
    assert entry_size(S) == 6


def test_a_spike_pauses_entries_while_momentum_stays_high_then_for_the_cooldown():
    sp = Spike()
    assert sp.update(D(10), S, 0) is False
    assert sp.update(D(-36), S, 1) is True  # a spike
    assert sp.update(D(31), S, 100) is True  # still above the cooldown threshold
    assert sp.update(D(20), S, 150) is True  # fell back at 100: paused until 160
    assert sp.update(D(20), S, 161) is False
    assert sp.update(D(35), S, 170) is False  # under the spike threshold: no pause


async def test_auto_entry_off_dry_run_and_on(rec_home_db, start_service, sim):
    await tf.start_trading(rec_home_db, sim, start_service)
    ticker = sim.open_tickers("KXBTCD")[5]
    ask = tf.best_yes_ask(sim, ticker)
    conn = await di.connect(rec_home_db)
    await tf.put_strike(conn, ticker, probability="0.99", time_to_close_sec=600)
    await tf.put_watch(conn, ticker, "yes", "0.99", ask, (D("0.99") - ask) * 100)
    await tf.put(rec_home_db, "/settings", {"auto_entry_min_diff_cents": -100})
    await conn.execute("INSERT INTO auto_entry_decisions (ts, decision, reason) VALUES "
                       "(now() - interval '31 days', 'skip', 'older than the retention')")
    ae = start_service(rec_home_db, tf.AUTO_ENTRY)
    await di.wait_notify(ae, "READY", "1")
    url = f"http://127.0.0.1:{rec_home_db.env['REC_AUTO_ENTRY_PORT']}/status"

    async def status():
        async with httpx.AsyncClient() as c:
            return (await c.get(url)).json()

    await di.until(lambda: _cycles(status, 2), 10, "two cycles while off", ae)
    assert (await status())["mode"] == "off"
    # off: nothing evaluated; the 31-day-old decision went at start (retention, 30 days)
    assert await di.count(conn, "auto_entry_decisions") == 0
    assert "retention: deleted 1 entry decisions older than 30 days" in ae.output

    await tf.put(rec_home_db, "/settings", {"auto_entry_dry_run": True})
    await di.until(lambda: _rows(conn, "decision = 'dry_run'"), 10, "a dry-run decision", ae)
    assert await di.count(conn, "trades") == 0
    assert "auto entry dry_run" in ae.output

    await tf.put(rec_home_db, "/settings", {"auto_entry_dry_run": False,
                                            "auto_entry_enabled": True})
    await di.until(lambda: _rows(conn, "decision = 'enter'"), 10, "an entry", ae)
    trades = await di.rows(conn, "SELECT id, entry_method, strategy, quantity FROM trades")
    assert len(trades) == 1 and trades[0][1:] == ("auto", "auto_entry", D(1))
    await tf.until_status(rec_home_db, trades[0][0], "open")
    await di.until(lambda: _rows(conn, "reason = 'duplicate_active_trade'"), 10,
                   "the next cycle skips the strike", ae)
    assert await di.count(conn, "trades") == 1
    fields = (await di.rows(conn, "SELECT fields FROM auto_entry_decisions "
                                  "WHERE decision = 'enter'"))[0][0]
    assert fields["ticker"] == ticker
    assert D(fields["probability"]) == D("0.99") and "time_to_close_sec" in fields
    await conn.close()


async def _cycles(status, n: int) -> bool:
    return (await status())["cycles"] >= n


async def _rows(conn, where: str) -> bool:
    return bool(await di.rows(conn, f"SELECT 1 FROM auto_entry_decisions WHERE {where}"))
