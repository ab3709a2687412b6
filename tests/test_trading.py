"""rec-trade-manager + rec-trade-executor (+ rec-account-sync) as real processes against the
simulator and a real PostgreSQL: the state machine, fills, fees and P&L equal to the
exchange's ledger, refusals before the exchange, risk limits, the kill switch, exactly once
under kill -9 and fault storms."""

from __future__ import annotations

import asyncio
import signal
from decimal import Decimal

import httpx

from testkit.net import free_port
from tests import data_in_fixtures as di
from tests import test_sim_fixtures as fx
from tests import trading_fixtures as tf

sim = fx.sim


def open_body(ticker: str, key: str, side: str = "yes", count: int = 2,
              price: str = "0.99", **extra) -> dict:
    return {"intent": "open", "idempotency_key": key, "market": ticker, "side": side,
            "count": count, "limit_price": price, "strategy": "manual", **extra}


async def events(home, trade_id: int) -> list[dict]:
    return (await tf.get(home, f"/trades/{trade_id}")).json()["events"]


async def test_open_and_close_book_fees_and_pnl_equal_to_the_exchange_ledger(
        rec_home_db, start_service, sim):
    procs = await tf.start_trading(rec_home_db, sim, start_service)
    ticker = sim.open_tickers("KXBTCD")[5]
    balance0 = tf.sim_balance_cents(sim)
    r = await tf.post_trade(rec_home_db, open_body(ticker, "k-open-1"), wait=10)
    assert r.status_code == 201, r.text
    trade = r.json()["trade"]
    assert trade["status"] in ("submitted", "open"), trade
    # the same intent again: the same trade, no second order
    again = await tf.post_trade(rec_home_db, open_body(ticker, "k-open-1"))
    assert again.status_code == 200 and again.json()["trade"]["id"] == trade["id"]
    got = await tf.until_status(rec_home_db, trade["id"], "open", svc=procs["manager"])
    t = got["trade"]
    assert Decimal(t["quantity"]) == 2 and Decimal(t["entry_price"]) <= Decimal("0.99")
    kinds = [(e["kind"], e["from_status"], e["to_status"]) for e in got["events"]]
    assert kinds[0][0] == "created"
    assert ("order accepted", "pending", "submitted") in kinds
    assert ("open confirmed by fills", "submitted", "open") in kinds
    created = got["events"][0]["detail"]
    assert created["cancel_order_on_pause"] is True and created["time_in_force"] == "fill_or_kill"
    coid = got["orders"][0]["client_order_id"]
    assert coid.endswith(f"-{trade['id']}-open")

    close = {"intent": "close", "idempotency_key": "k-close-1", "trade_id": trade["id"],
             "close_method": "manual"}
    r = await tf.post_trade(rec_home_db, close)
    assert r.status_code == 201, r.text
    got = await tf.until_status(rec_home_db, trade["id"], "closed", svc=procs["manager"])
    t = got["trade"]
    ledger_pnl = tf.sim_balance_cents(sim) - balance0
    assert t["pnl_cents"] == ledger_pnl, (t, ledger_pnl)
    assert Decimal(t["fees"]) == tf.sim_fees(sim)
    assert t["win"] == (ledger_pnl > 0)
    orders = tf.sim_orders(sim)
    assert sorted(o.client_order_id for o in orders) == sorted(
        o["client_order_id"] for o in got["orders"])
    conn = await di.connect(rec_home_db)
    group = (await di.rows(conn, "SELECT order_group_id FROM order_groups "
                                 "WHERE strategy = 'manual'"))[0][0]
    await conn.close()
    assert orders[0].order_group_id == group  # the exchange's own limit holds it too


async def test_bad_input_and_limits_are_refused_before_the_exchange(
        rec_home_db, start_service, sim):
    procs = await tf.start_trading(rec_home_db, sim, start_service, sync=False)
    ticker = sim.open_tickers("KXBTCD")[5]
    cases = [
        ({"intent": "open"}, "idempotency_key"),
        (open_body(ticker, "b1", side="maybe"), "side"),
        (open_body(ticker, "b2", count=0), "count"),
        (open_body(ticker, "b3", count="1.5"), "count"),
        (open_body(ticker, "b4", price="1.20"), "limit_price"),
        (open_body(ticker, "b5", price="0.555"), "limit_price"),  # off the cent grid there
        (open_body("KXNOPE-1", "b6"), "market"),
        (open_body(ticker, "b7", colour="red"), "colour"),
        ({**open_body(ticker, "b8"), "intent": "hold"}, "intent"),
    ]
    for body, field in cases:
        r = await tf.post_trade(rec_home_db, body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["field"] == field, (body, r.json())
        assert field in r.json()["message"]
    r = await tf.post_trade(rec_home_db, open_body(ticker, "b9", count=26))
    assert r.status_code == 403 and r.json()["limit"] == "max_contracts_per_trade", r.text
    assert (await tf.put(rec_home_db, "/settings", {"max_open_exposure_dollars": 1})
            ).status_code == 200
    r = await tf.post_trade(rec_home_db, open_body(ticker, "b10", count=2))
    assert r.status_code == 403 and r.json()["limit"] == "max_open_exposure_dollars", r.text
    r = await tf.put(rec_home_db, "/settings", {"max_open_exposure_dollars": "lots"})
    assert r.status_code == 422 and r.json()["field"] == "max_open_exposure_dollars"
    async with httpx.AsyncClient(base_url=tf.manager_url(rec_home_db)) as c:
        r = await c.post("/kill-switch", json={"on": True})
        assert r.status_code == 200, r.text
    r = await tf.post_trade(rec_home_db, open_body(ticker, "b11", count=1))
    assert r.status_code == 403 and r.json()["limit"] == "kill_switch", r.text
    groups = sim.sim.exchange.order_groups.groups.values()  # one per strategy
    assert len(groups) == 3
    await di.until(lambda: sum(g.triggered for g in groups) == 2, 10,
                   "the kill switch triggering the entry order groups", procs["executor"])
    assert tf.sim_orders(sim) == []  # nothing reached the exchange
    out = procs["manager"].output
    assert "refused by risk limit kill_switch" in out
    assert "refused by risk limit max_contracts_per_trade" in out
    conn = await di.connect(rec_home_db)
    audit = await di.rows(conn, "SELECT key, old_value, new_value FROM trading_settings_audit "
                                "ORDER BY id")
    await conn.close()
    assert ("max_open_exposure_dollars", 250, 1) in audit
    assert ("kill_switch", False, True) in audit
    # per market and daily loss limits
    await tf.put(rec_home_db, "/settings", {"kill_switch": False,
                                            "max_open_exposure_dollars": 1000,
                                            "max_contracts_per_market": 3})
    r = await tf.post_trade(rec_home_db, open_body(ticker, "b12", count=2, price="0.01"))
    assert r.status_code == 201, r.text
    r = await tf.post_trade(rec_home_db, open_body(ticker, "b13", count=2, price="0.01"))
    assert r.status_code == 403 and r.json()["limit"] == "max_contracts_per_market", r.text
    conn = await di.connect(rec_home_db)
    await conn.execute("INSERT INTO trades (ticker, side, status, quantity, pnl_cents, "
                       "closed_at) VALUES ('X', 'yes', 'closed', 1, -10000, now())")
    await conn.close()
    r = await tf.post_trade(rec_home_db, open_body(sim.open_tickers("KXBTCD")[4], "b14",
                                                   count=1))
    assert r.status_code == 403 and r.json()["limit"] == "max_daily_loss_dollars", r.text


async def test_an_open_is_checked_against_the_database_not_a_stale_copy(
        rec_home_db, start_service, sim):
    """The manager writes an open in one statement, guarded by its last copies of the trading
    settings and the market: a change made in the database behind its back (not through its
    API) is seen by the very next intent, in either direction."""
    await tf.start_trading(rec_home_db, sim, start_service, sync=False)
    ticker = sim.open_tickers("KXBTCD")[5]
    conn = await di.connect(rec_home_db)

    async def sql(stmt: str, *args) -> None:
        await conn.execute(stmt, args)

    async def open_(key: str, count: int = 1) -> httpx.Response:
        return await tf.post_trade(rec_home_db, open_body(ticker, key, count=count,
                                                          price="0.01"))

    assert (await open_("c1")).status_code == 201  # the copies are taken
    await sql("UPDATE trading_settings SET value = '1' WHERE key = 'max_contracts_per_trade'")
    r = await open_("c2", count=2)
    assert r.status_code == 403 and r.json()["limit"] == "max_contracts_per_trade", r.text
    await sql("UPDATE trading_settings SET value = '25' WHERE key = 'max_contracts_per_trade'")
    assert (await open_("c3", count=2)).status_code == 201, "a refusal was remembered"
    await sql("UPDATE markets SET status = 'closed' WHERE ticker = %s", ticker)
    r = await open_("c4")
    assert r.status_code == 422 and r.json()["field"] == "market", r.text
    assert "closed, not open for trading" in r.json()["message"]
    await sql("UPDATE markets SET status = 'active' WHERE ticker = %s", ticker)
    assert (await open_("c5")).status_code == 201
    await sql("UPDATE trading_settings SET value = 'true' WHERE key = 'kill_switch'")
    r = await open_("c6")
    assert r.status_code == 403 and r.json()["limit"] == "kill_switch", r.text
    await sql("UPDATE trading_settings SET value = 'false' WHERE key = 'kill_switch'")
    rows = await di.rows(conn, "SELECT open_key FROM trades ORDER BY id")
    await conn.close()
    assert [r[0] for r in rows] == ["c1", "c3", "c5"]
    await di.until(lambda: len(tf.sim_orders(sim)) == 3, 10, "three orders at the exchange")
    assert sorted(o.client_order_id.rsplit("-", 2)[1] for o in tf.sim_orders(sim)) == sorted(
        str(i) for i in range(1, 4))


async def executor_status(home) -> dict:
    async with httpx.AsyncClient() as c:
        port = home.env["REC_TRADE_EXECUTOR_PORT"]
        return (await c.get(f"http://127.0.0.1:{port}/status")).json()


async def test_an_accepted_open_is_reported_straight_to_the_manager(
        rec_home_db, start_service, sim):
    """The executor reports an acknowledged open to the manager, which writes the leg and the
    trade's pending -> submitted in one statement; a report it cannot take is refused."""
    await tf.start_trading(rec_home_db, sim, start_service, sync=False)
    ticker = sim.open_tickers("KXBTCD")[5]
    r = await tf.post_trade(rec_home_db, open_body(ticker, "rep-1", count=1, price="0.01"),
                            wait=10)
    assert r.status_code == 201 and r.json()["trade"]["status"] == "submitted", r.text
    trade_id = r.json()["trade"]["id"]
    assert (await executor_status(rec_home_db))["reported"] == 1
    assert (await tf.get(rec_home_db, "/status")).json()["reported_acks"] == 1
    got = (await tf.get(rec_home_db, f"/trades/{trade_id}")).json()
    (leg,) = got["orders"]
    (order,) = tf.sim_orders(sim)
    assert (leg["state"], leg["exchange_order_id"]) == ("accepted", order.order_id)
    assert leg["ack_ms"] is not None and leg["acked_at"] is not None
    accepted = [e for e in got["events"] if e["kind"] == "order accepted"]
    assert [(e["from_status"], e["to_status"]) for e in accepted] == [("pending", "submitted")]
    assert accepted[0]["detail"]["exchange_order_id"] == order.order_id
    async with httpx.AsyncClient(base_url=tf.manager_url(rec_home_db)) as c:
        url = f"/legs/{leg['client_order_id']}/accepted"
        report = {"order_id": "x", "fill_count": "0", "remaining_count": "1", "ack_ms": "1"}
        r = await c.post(url, json=report)  # written already: nothing is written twice
        assert r.status_code == 409 and r.json()["code"] == "not_new", r.text
        r = await c.post(url, json={**report, "fill_count": "-1"})
        assert r.status_code == 422 and r.json()["field"] == "fill_count", r.text
    got = (await tf.get(rec_home_db, f"/trades/{trade_id}")).json()
    assert got["orders"][0]["exchange_order_id"] == order.order_id
    assert len([e for e in got["events"] if e["kind"] == "order accepted"]) == 1
    # after longer than the manager's keep-alive timeout (uvicorn: 5 s) the executor's idle
    # connection is closed: the next report goes on a new one, not to the fallback
    await asyncio.sleep(5.5)
    r = await tf.post_trade(rec_home_db, open_body(ticker, "rep-2", count=1, price="0.01"),
                            wait=10)
    assert r.json()["trade"]["status"] == "submitted", r.text
    assert (await executor_status(rec_home_db))["reported"] == 2


async def test_without_the_manager_the_executor_writes_the_leg_itself(
        rec_home_db, start_service, sim):
    """A report that cannot be delivered (here: the executor is given a port where no manager
    listens) is not lost: the executor writes the leg and announces it, the manager applies
    it from the announcement."""
    tf.prepare(rec_home_db, sim)
    conn = await di.connect(rec_home_db)
    await tf.store_markets(conn, sim)
    await conn.close()
    executor = start_service(rec_home_db, tf.EXECUTOR,
                             extra_env={"REC_TRADE_MANAGER_PORT": str(free_port())})
    manager = start_service(rec_home_db, tf.MANAGER)
    await di.wait_notify(executor, "READY", "1")
    await di.wait_notify(manager, "READY", "1")
    ticker = sim.open_tickers("KXBTCD")[5]
    r = await tf.post_trade(rec_home_db, open_body(ticker, "fb-1", count=1, price="0.01"),
                            wait=10)
    assert r.status_code == 201 and r.json()["trade"]["status"] == "submitted", r.text
    st = await executor_status(rec_home_db)
    assert (st["reported"], st["accepted"]) == (0, 1), st
    assert (await tf.get(rec_home_db, "/status")).json()["reported_acks"] == 0
    assert "rec-trade-manager not reached" in executor.output
    got = (await tf.get(rec_home_db, f"/trades/{r.json()['trade']['id']}")).json()
    assert got["orders"][0]["state"] == "accepted" and len(tf.sim_orders(sim)) == 1


async def test_exactly_one_order_per_intent_through_kill_9_lost_answers_429_and_5xx(
        rec_home_db, start_service, sim):
    procs = await tf.start_trading(rec_home_db, sim, start_service)
    tickers = sim.open_tickers("KXBTCD")
    orders_path = "/trade-api/v2/portfolio/events/orders"
    # 1. kill -9 between send and acknowledgement: the exchange has the order, rec never
    #    heard the answer
    await sim.control("hold", path=orders_path)
    r = await tf.post_trade(rec_home_db, open_body(tickers[5], "x-kill"))
    trade_id = r.json()["trade"]["id"]
    acct = sim.sim.account(sim.signer.key_id)
    await di.until(lambda: len(acct.orders) == 1, 10, "the order at the exchange")
    procs["executor"].proc.send_signal(signal.SIGKILL)
    procs["executor"].proc.wait(10)
    await sim.control("release", path=orders_path)
    assert await tf.trade_status(rec_home_db, trade_id) == "pending"
    again = start_service(rec_home_db, tf.EXECUTOR)
    await di.wait_notify(again, "READY", "1")
    assert "in-doubt order" in again.output and "found at the exchange" in again.output
    await tf.until_status(rec_home_db, trade_id, "open", svc=again)
    assert len(acct.orders) == 1

    # 2. storms: lost answers, 429s and 5xx on the order endpoint
    ids = []
    for n, (action, status) in enumerate([("lose_response", 502), ("http_error", 429),
                                          ("http_error", 503), ("lose_response", 504)]):
        await sim.control(action, status=status, count=2, path_prefix=orders_path)
        r = await tf.post_trade(rec_home_db, open_body(tickers[4 + n % 3], f"x-storm-{n}",
                                                       count=1))
        assert r.status_code == 201, r.text
        ids.append(r.json()["trade"]["id"])
    for trade_id in ids:
        await tf.until_status(rec_home_db, trade_id, "open", within=20, svc=again)
    coids = [o.client_order_id for o in acct.orders.values()]
    assert len(coids) == len(set(coids)) == 5
    assert "found by client_order_id after a lost answer" in again.output


async def test_trading_pause_holds_orders_until_it_ends(rec_home_db, start_service, sim):
    await tf.start_trading(rec_home_db, sim, start_service)
    ticker = sim.open_tickers("KXBTCD")[5]
    await sim.control("halt", on=True)
    r = await tf.post_trade(rec_home_db, open_body(ticker, "p1", count=1))
    trade_id = r.json()["trade"]["id"]
    executor = f"http://127.0.0.1:{rec_home_db.env['REC_TRADE_EXECUTOR_PORT']}/status"

    async def holding() -> bool:  # the executor learned of the pause and holds the order
        async with httpx.AsyncClient() as c:
            st = (await c.get(executor)).json()
        return st["trading_active"] is False and st["paused_waits"] >= 1

    await di.until(holding, 10, "the executor holding the order")
    assert await tf.trade_status(rec_home_db, trade_id) == "pending"
    assert tf.sim_orders(sim) == []
    await sim.control("halt", on=False)
    await tf.until_status(rec_home_db, trade_id, "open", within=20)


async def test_kill_switch_with_close_open_closes_what_is_open(rec_home_db, start_service, sim):
    procs = await tf.start_trading(rec_home_db, sim, start_service)
    ticker = sim.open_tickers("KXBTCD")[5]
    r = await tf.post_trade(rec_home_db, open_body(ticker, "ks-1"))
    trade_id = r.json()["trade"]["id"]
    await tf.until_status(rec_home_db, trade_id, "open", svc=procs["manager"])
    async with httpx.AsyncClient(base_url=tf.manager_url(rec_home_db)) as c:
        r = await c.post("/kill-switch", json={"on": True, "close_open": True})
    assert r.status_code == 200, r.text
    got = await tf.until_status(rec_home_db, trade_id, "closed", svc=procs["manager"])
    assert got["trade"]["close_method"] == "kill_switch"
    r = await tf.post_trade(rec_home_db, open_body(ticker, "ks-2"))
    assert r.status_code == 403 and r.json()["limit"] == "kill_switch"


async def test_a_pause_sends_no_order_intents_expire_by_rule_and_cancels_go_through(
        rec_home_db, start_service, sim):
    procs = await tf.start_trading(rec_home_db, sim, start_service)
    r = await tf.put(rec_home_db, "/settings", {
        "open_time_in_force": "good_till_canceled", "intent_max_wait_sec": 3,
        "strategies": {"manual": {"contracts_limit": 100, "cancel_order_on_pause": False},
                       "supervisor": {"contracts_limit": 200, "cancel_order_on_pause": False}}})
    assert r.status_code == 200, r.text
    tickers = sim.open_tickers("KXBTCD")
    # an entry below the ask rests at the exchange (and is kept there through a pause)
    r = await tf.post_trade(rec_home_db, open_body(tickers[5], "pc-rest", count=1,
                                                   price="0.02"), wait=5)
    resting = r.json()["trade"]
    assert resting["status"] == "submitted", r.text
    [order] = tf.sim_orders(sim)
    assert order.status == "resting" and not order.cancel_on_pause

    await sim.control("halt", on=True)
    executor = f"http://127.0.0.1:{rec_home_db.env['REC_TRADE_EXECUTOR_PORT']}/status"

    async def executor_status() -> dict:
        async with httpx.AsyncClient() as c:
            return (await c.get(executor)).json()

    async def paused() -> bool:
        return (await executor_status())["trading_active"] is False

    await di.until(paused, 10, "the executor seeing the pause", procs["executor"])
    # during the pause: a new intent waits (no order is sent) and expires by rule ...
    r = await tf.post_trade(rec_home_db, open_body(tickers[4], "pc-new", count=1))
    waiting = r.json()["trade"]["id"]
    # ... and the resting entry, given up by rule, is canceled at the exchange
    r = await tf.put(rec_home_db, "/settings", {"open_order_max_rest_sec": 1})
    assert r.status_code == 200, r.text
    got = await tf.until_status(rec_home_db, resting["id"], "canceled", svc=procs["manager"])
    assert order.status == "canceled" and not sim.sim.exchange.trading_active
    kinds = {e["kind"]: e for e in got["events"]}
    assert kinds["cancel requested"]["detail"]["rule"] == "open_order_max_rest_sec"
    assert got["orders"][0]["state"] == "canceled"
    assert "during a trading pause" in got["orders"][0]["error_text"]
    got = await tf.until_status(rec_home_db, waiting, "expired", svc=procs["manager"])
    assert "trading_is_paused" in got["trade"]["reason"]
    assert len(tf.sim_orders(sim)) == 1  # nothing was sent during the pause
    st = await executor_status()
    assert st["canceled"] == 1 and st["paused_waits"] >= 1 and st["expired"] == 1
    await sim.control("halt", on=False)


async def test_a_second_manager_on_the_same_database_does_not_start(
        rec_home_db, start_service, sim):
    procs = await tf.start_trading(rec_home_db, sim, start_service, sync=False,
                                   REC_DB_CONNECT_TIMEOUT_SEC="3")
    second = start_service(rec_home_db, tf.MANAGER)
    assert await asyncio.to_thread(second.wait, 30) != 0
    assert "another rec-trade-manager holds the" in second.output, second.output[-2000:]
    r = await tf.post_trade(rec_home_db, open_body(sim.open_tickers("KXBTCD")[5], "w1",
                                                   count=1), wait=5)
    assert r.status_code == 201 and r.json()["trade"]["status"] == "submitted", r.text
    assert procs["manager"].proc.poll() is None


def test_json_answers_are_as_before_and_fall_back_for_what_orjson_refuses():
    import json
    from datetime import UTC, datetime, timedelta, timezone

    from app.services.trade_common import Json

    t = datetime(2026, 11, 26, 15, 0, tzinfo=timezone(timedelta(hours=1)))
    assert Json({"d": Decimal("0.1000"), "t": t, 3: None}).body == (
        b'{"d":"0.1000","t":"2026-11-26T14:00:00+00:00","3":null}')
    assert json.loads(Json({"x\ud800": 2**70}).body) == {"x\ud800": 2**70}
    assert datetime.fromisoformat(json.loads(Json({"t": t}).body)["t"]).tzinfo == UTC


async def test_a_trader_cancels_a_resting_entry_through_the_manager(
        rec_home_db, start_service, sim):
    """Issue 22 (rec-web's resting orders): ``POST /trades/{id}/cancel`` gives up what rests
    of an entry; rec-trade-executor cancels it at the exchange and the trade, with nothing
    filled, ends canceled; the event names the rule ("manual") and who asked."""
    procs = await tf.start_trading(rec_home_db, sim, start_service)
    r = await tf.put(rec_home_db, "/settings", {"open_time_in_force": "good_till_canceled"})
    assert r.status_code == 200, r.text
    ticker = sim.open_tickers("KXBTCD")[5]
    r = await tf.post_trade(rec_home_db, open_body(ticker, "cx-rest", count=1, price="0.02"),
                            wait=5)
    resting = r.json()["trade"]
    assert resting["status"] == "submitted", r.text
    [order] = tf.sim_orders(sim)
    assert order.status == "resting"
    async with httpx.AsyncClient(base_url=tf.manager_url(rec_home_db)) as c:
        r = await c.post(f"/trades/{resting['id']}/cancel", params={"by": "web:admin"})
        assert r.status_code == 202, r.text
        assert r.json()["cancel"] == "requested"
        got = await tf.until_status(rec_home_db, resting["id"], "canceled",
                                    svc=procs["manager"])
        assert order.status == "canceled"
        kinds = {e["kind"]: e for e in got["events"]}
        assert kinds["cancel requested"]["detail"]["rule"] == "manual"
        assert kinds["cancel requested"]["detail"]["by"] == "web:admin"
        r = await c.post(f"/trades/{resting['id']}/cancel")  # nothing rests any more
        assert r.status_code == 409 and r.json()["code"] == "not_resting", r.text
        assert r.json()["status"] == "canceled"
        r = await c.post("/trades/999999/cancel")
        assert r.status_code == 404 and r.json()["code"] == "unknown_trade", r.text
