"""`rec ledger check` end to end: the simulator, a real PostgreSQL, rec-account-sync,
rec-trade-executor and rec-trade-manager as real processes. After real trades the books
equal the exchange (exit 0); damaged on purpose, the check exits 1 naming the difference."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from tests import data_in_fixtures as di
from tests import test_sim_fixtures as fx
from tests import trading_fixtures as tf
from tests.conftest import REC, REPO

sim = fx.sim


async def ledger_check(home) -> tuple[int, dict, str]:
    """`rec ledger check --json` as a process (the simulator keeps serving meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        *REC, "ledger", "check", "--json", env=home.env, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode in (0, 1), err.decode()
    return proc.returncode, json.loads(out), err.decode()


async def open_trade(home, ticker: str, key: str, side: str, procs) -> int:
    body = {"intent": "open", "idempotency_key": key, "market": ticker, "side": side,
            "count": 2, "limit_price": "0.99", "strategy": "manual"}
    r = await tf.post_trade(home, body, wait=10)
    assert r.status_code == 201, r.text
    trade_id = r.json()["trade"]["id"]
    await tf.until_status(home, trade_id, "open", svc=procs["manager"])
    return trade_id


async def test_ledger_check_equal_after_trades_and_names_each_damage(
        rec_home_db, start_service, sim):
    home = rec_home_db
    procs = await tf.start_trading(home, sim, start_service)
    tickers = sim.open_tickers("KXBTCD")
    kept = await open_trade(home, tickers[5], "ledger-1", "yes", procs)
    closed = await open_trade(home, tickers[6], "ledger-2", "no", procs)
    r = await tf.post_trade(home, {"intent": "close", "idempotency_key": "ledger-3",
                                   "trade_id": closed, "close_method": "manual"})
    assert r.status_code == 201, r.text
    await tf.until_status(home, closed, "closed", svc=procs["manager"])

    last: list = []

    async def equal() -> bool:
        last[:] = await ledger_check(home)
        return last[0] == 0

    await di.until(equal, 30, f"the books equal to the exchange ({last})", procs["sync"])
    figures = last[1]["figures"]
    assert figures["orders"] == {"books": 3, "exchange": 3}
    assert figures["positions"] == {"books": 1, "exchange": 1}
    assert figures["fees ($)"]["books"] == figures["fees ($)"]["exchange"]
    # the ended orders and the fills moved behind /historical/orders and /historical/fills
    # (Kalshi: after about two weeks): the check still finds every one of them
    sim.sim.config.order_history_ms = sim.sim.config.fill_history_ms = 0
    sim.sim.world.advance(1)
    code, got, _ = await ledger_check(home)
    assert code == 0 and got["figures"]["orders"] == {"books": 3, "exchange": 3}, got
    assert got["figures"]["fills"] == figures["fills"], got

    conn = await di.connect(home)
    # a trade's P&L changed: the check names the trade and the cents
    await conn.execute("UPDATE trades SET pnl_cents = pnl_cents + 7 WHERE id = %s", (closed,))
    code, got, _ = await ledger_check(home)
    assert code == 1
    kinds = {(d["kind"], d["ids"].get("trade_id"), d["cents"]) for d in got["differences"]}
    assert ("trade_pnl", closed, 7) in kinds and ("cash", None, 7) in kinds, got
    await conn.execute("UPDATE trades SET pnl_cents = pnl_cents - 7 WHERE id = %s", (closed,))
    assert (await ledger_check(home))[0] == 0

    # a fill row deleted from the books: the check names the fill and its trade
    fill_id, order_id = (await di.rows(
        conn, "SELECT f.trade_id, f.order_id FROM account_fills f JOIN trade_orders o "
              "ON o.exchange_order_id = f.order_id WHERE o.trade_id = %s LIMIT 1", kept))[0]
    await conn.execute("DELETE FROM account_fills WHERE trade_id = %s AND order_id = %s",
                       (fill_id, order_id))
    await conn.close()
    code, got, _ = await ledger_check(home)
    assert code == 1
    missing = [d for d in got["differences"] if d["kind"] == "fill_missing"]
    assert [(d["ids"]["fill"], d["ids"]["trade_id"]) for d in missing] == [(fill_id, kept)], got
    assert got["figures"]["fills"]["books"] == got["figures"]["fills"]["exchange"] - 1
    for p in procs.values():
        assert p.terminate() == 0


async def test_a_fill_made_at_the_exchange_directly_is_adopted_into_an_unowned_trade(
        rec_home_db, start_service, sim):
    """An order placed with the simulator's client (not through rec) fills: the manager's
    standing reconciliation names the difference in the journal, adopts the order into an
    ``unowned`` trade (visible in /status), books it from its fills, stores each run in
    ledger_checks, says once that the books are equal again, and `rec ledger check` exits 0."""
    home = rec_home_db
    procs = await tf.start_trading(home, sim, start_service,
                                   REC_LEDGER_RECONCILE_INTERVAL_SEC="1")
    manager = procs["manager"]
    ticker = sim.open_tickers("KXBTCD")[5]
    order = await fx.place(sim.client(), ticker, side="yes", count=2, price=99)
    assert order["fill_count_fp"] == "2.00", order

    unowned: list = []

    async def adopted_and_open() -> bool:
        unowned[:] = (await tf.get(home, "/status")).json()["unowned"]
        return [t["status"] for t in unowned] == ["open"]

    await di.until(adopted_and_open, 30, f"an open unowned trade ({unowned})", manager)
    (trade,) = unowned
    assert (trade["ticker"], trade["side"], Decimal(trade["quantity"])) == (
        ticker, "yes", 2), trade
    assert Decimal(trade["fees"]) == tf.sim_fees(sim)
    got = (await tf.get(home, f"/trades/{trade['id']}")).json()
    (leg,) = got["orders"]
    assert (leg["exchange_order_id"], leg["strategy"]) == (order["order_id"], "unowned")
    assert "adopted" in [e["kind"] for e in got["events"]]

    async def journal_says_equal() -> bool:
        return "ledger: the books equal the exchange again" in manager.output

    await di.until(journal_says_equal, 30, "the clean result after the adoption", manager)
    out = manager.output
    assert f"exchange order {order['order_id']}" in out and "adopted as trade" in out, out
    assert out.count("ledger: the books equal the exchange again") == 1, out
    code, result, _ = await ledger_check(home)
    assert code == 0, result
    conn = await di.connect(home)
    rows = await di.rows(conn, "SELECT ok, difference_count, adopted "
                               "FROM ledger_checks ORDER BY id")
    await conn.close()
    assert rows[-1][:2] == (True, 0), rows[-1]  # the newest run: equal
    assert sum(r[2] for r in rows) == 1, rows  # adopted once, by one run
    status = (await tf.get(home, "/status")).json()
    assert status["ledger"]["ok"] is True and status["ledger"]["differences"] == 0, status
    for p in procs.values():
        assert p.terminate() == 0
