"""rec-trade-supervisor: each exit rule fires and holds; a real process closes a real trade
through the manager with close_method auto and the rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.trading.exits import View, close_limit, exit_rule
from tests import data_in_fixtures as di
from tests import test_sim_fixtures as fx
from tests import trading_fixtures as tf

sim = fx.sim
D = Decimal

SETTINGS = {"auto_stop": True, "exit_probability_enabled": True,
            "exit_probability_threshold": 0.40, "exit_probability_min_ttc_sec": 60,
            "exit_momentum_enabled": True, "exit_momentum_threshold": 36,
            "stop_loss_enabled": True, "stop_loss_cents": 30,
            "take_profit_enabled": True, "take_profit_cents": 20}


def view(**kw) -> View:
    base = dict(trade_id=1, ticker="T", side="yes", quantity=D(2), entry_price=D("0.60"),
                time_in_trade_sec=10, probability=D("0.70"), momentum=D(0),
                time_to_close_sec=600, close_price=D("0.60"))
    base.update(kw)
    return View(**base)


@pytest.mark.parametrize("close_price, limit", [
    (None, None), (D(0), None),  # no bid: a close could not fill, it waits
    (D("0.03"), D("0.01")), (D("0.60"), D("0.55"))])
def test_no_close_without_a_bid(close_price, limit):
    assert close_limit(view(close_price=close_price), D("0.05")) == limit


@pytest.mark.parametrize("kw, rule", [
    (dict(probability=D("0.39")), "probability"),
    (dict(probability=D("0.39"), time_to_close_sec=59), None),  # too near the close: hold
    (dict(probability=D("0.40")), None),
    (dict(momentum=D(-36)), "momentum_spike"),  # against a YES position
    (dict(momentum=D(36)), None),  # with it
    (dict(side="no", momentum=D(36)), "momentum_spike"),
    (dict(side="no", momentum=D(-50)), None),
    (dict(close_price=D("0.30")), "stop_loss"),
    (dict(close_price=D("0.31")), None),
    (dict(close_price=D("0.80")), "take_profit"),
    (dict(close_price=D("0.79")), None),
])
def test_each_exit_rule_fires_and_holds(kw, rule):
    got = exit_rule(view(**kw), SETTINGS)
    assert (got[0] if got else None) == rule


@pytest.mark.parametrize("off, kw", [
    ("exit_probability_enabled", dict(probability=D("0.1"))),
    ("exit_momentum_enabled", dict(momentum=D(-99))),
    ("stop_loss_enabled", dict(close_price=D("0.01"))),
    ("take_profit_enabled", dict(close_price=D("0.99"))),
    ("auto_stop", dict(probability=D("0.1"), momentum=D(-99), close_price=D("0.01"))),
])
def test_a_rule_switched_off_never_fires(off, kw):
    assert exit_rule(view(**kw), {**SETTINGS, off: False}) is None


async def test_supervisor_watches_open_trades_and_closes_through_the_manager(
        rec_home_db, start_service, sim):
    procs = await tf.start_trading(rec_home_db, sim, start_service)
    ticker = sim.open_tickers("KXBTCD")[5]
    r = await tf.post_trade(rec_home_db, {"intent": "open", "idempotency_key": "s1",
                                          "market": ticker, "side": "yes", "count": 2,
                                          "limit_price": "0.99"})
    trade_id = r.json()["trade"]["id"]
    await tf.until_status(rec_home_db, trade_id, "open", svc=procs["manager"])
    conn = await di.connect(rec_home_db)
    no_ask = 1 - tf.best_yes_bid(sim, ticker)  # what the coordinator would see in the book
    await tf.put_strike(conn, ticker, probability="0.80", yes_ask=tf.best_yes_ask(sim, ticker),
                        no_ask=no_ask)
    sup = start_service(rec_home_db, tf.SUPERVISOR)
    await di.wait_notify(sup, "READY", "1")

    async def watched():
        got = await di.rows(conn, "SELECT probability, close_price, unrealised_pnl_cents, "
                                  "time_to_close_sec FROM trade_monitor WHERE trade_id = %s",
                            trade_id)
        return got and got[0][0] == D("0.80") and got[0][1] is not None

    await di.until(watched, 10, "the trade in trade_monitor", sup)
    assert await tf.trade_status(rec_home_db, trade_id) == "open"  # every rule holds
    await tf.put_strike(conn, ticker, probability="0.20", yes_ask=tf.best_yes_ask(sim, ticker),
                        no_ask=no_ask)
    got = await tf.until_status(rec_home_db, trade_id, "closed", within=15, svc=sup)
    t = got["trade"]
    assert t["close_method"] == "auto" and t["close_rule"] == "probability"
    # the rule's numbers go with the close (rec-web's trade history says them)
    [asked] = [e["detail"] for e in got["events"] if e["kind"] == "close requested"]
    assert D(asked["close_detail"]["probability"]) == D("0.20")
    assert D(asked["close_detail"]["threshold"]) == D("0.40")
    assert "exit rule probability fired" in sup.output
    await conn.close()
