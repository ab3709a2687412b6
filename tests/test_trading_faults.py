"""The books equal the exchange after faults (issue #20): rec-account-sync, rec-trade-executor
and rec-trade-manager as real processes against the in-test simulator and a real PostgreSQL.
A leg's fate comes from the exchange's record of its client_order_id, never from an error
code; a close of a trade that is not open is a 409; closes are paced; every trading setting
has a range."""

from __future__ import annotations

import asyncio
import signal
from decimal import Decimal

import httpx

from app.trading.money import cents
from tests import data_in_fixtures as di
from tests import test_sim_fixtures as fx
from tests import trading_fixtures as tf
from tests.test_trading import open_body

sim = fx.sim
ORDERS = "/trade-api/v2/portfolio/events/orders"


async def lost_answer(h: fx.SimHandle, home, key: str) -> tuple[int, str]:
    """An open whose order the exchange executes while its answer is held, then lost: returns
    (trade id, ticker) with the order at the exchange and the answer still held."""
    ticker = h.open_tickers("KXBTCD")[5]
    await h.control("hold", path=ORDERS)
    await h.control("lose_response", status=502, count=1, path_prefix=ORDERS)
    r = await tf.post_trade(home, open_body(ticker, key))
    assert r.status_code == 201, r.text
    acct = h.sim.account(h.signer.key_id)
    await di.until(lambda: len(acct.orders) == 1, 10, "the order at the exchange")
    return r.json()["trade"]["id"], ticker


async def assert_booked(h: fx.SimHandle, home, trade_id: int, svc) -> dict:
    """The trade open with its leg accepted as the one exchange order, its fills booked."""
    got = await tf.until_status(home, trade_id, ("open", "rejected", "expired"), within=30,
                                svc=svc)
    (order,) = tf.sim_orders(h)
    (leg,) = got["orders"]
    assert (leg["state"], leg["exchange_order_id"]) == ("accepted", order.order_id), got
    assert got["trade"]["status"] == "open", got["trade"]
    assert Decimal(got["trade"]["quantity"]) == 2  # the fill count of the exchange's order
    assert Decimal(got["trade"]["fees"]) == tf.sim_fees(h)  # its fills, booked
    return got


async def test_a_lost_answer_then_market_closed_books_the_fill(rec_home_db, start_service, sim):
    """The order executed, its answer was lost, the client's retry met market_closed (the
    exchange checks the market before the duplicate): the leg is settled from the exchange's
    record of its client_order_id, so the fill is booked, not lost behind a rejection."""
    procs = await tf.start_trading(rec_home_db, sim, start_service)
    trade_id, ticker = await lost_answer(sim, rec_home_db, "lost-closed")
    sim.sim.exchange.close_market(sim.sim.exchange.markets[ticker])
    await sim.control("release", path=ORDERS)
    await assert_booked(sim, rec_home_db, trade_id, procs["executor"])
    assert "answered market_closed but the exchange holds it" in procs["executor"].output


async def test_a_lost_answer_then_a_pause_books_the_fill_not_an_expiry(
        rec_home_db, start_service, sim):
    """The retry after the lost answer meets the trading pause and the leg outwaits
    intent_max_wait_sec: before it expires, the exchange's record is read, so the order it
    holds is booked (during the pause still)."""
    procs = await tf.start_trading(rec_home_db, sim, start_service)
    assert (await tf.put(rec_home_db, "/settings", {"intent_max_wait_sec": 1})).status_code == 200
    trade_id, _ = await lost_answer(sim, rec_home_db, "lost-paused")
    await sim.control("halt", on=True)
    await sim.control("release", path=ORDERS)
    await assert_booked(sim, rec_home_db, trade_id, procs["executor"])
    assert "answered trading_is_paused but the exchange holds it" in procs["executor"].output
    await sim.control("halt", on=False)


async def test_a_409_met_after_the_client_gave_up_is_looked_up_not_rejected(
        rec_home_db, start_service, sim):
    """The client gives up after a lost answer and five 503s; the executor sends the leg
    again and meets a 409 for its client_order_id: the order is looked up, the leg accepted
    and the trade opens. Meanwhile a close of the trade (still pending) is a 409 naming the
    state."""
    procs = await tf.start_trading(rec_home_db, sim, start_service)
    trade_id, _ = await lost_answer(sim, rec_home_db, "lost-409")
    close = {"intent": "close", "idempotency_key": "early-close", "trade_id": trade_id}
    r = await tf.post_trade(rec_home_db, close)
    assert r.status_code == 409, r.text
    assert (r.json()["code"], r.json()["status"]) == ("not_open", "pending")
    assert "is pending, not open" in r.json()["message"]
    await sim.control("http_error", status=503, count=5, path_prefix=ORDERS)
    await sim.control("release", path=ORDERS)
    await assert_booked(sim, rec_home_db, trade_id, procs["executor"])
    out = procs["executor"].output
    assert "answered order_already_exists but the exchange holds it" in out, out[-3000:]


async def test_closes_are_paced_per_trade(rec_home_db, start_service, sim):
    """A close that cannot fill (a sell limit over the bid, fill or kill) returns the trade to
    open; the next close of that trade waits (429, the reason and retry_after_sec) instead of
    sending another order that cannot fill."""
    procs = await tf.start_trading(rec_home_db, sim, start_service)
    ticker = sim.open_tickers("KXBTCD")[5]
    r = await tf.post_trade(rec_home_db, open_body(ticker, "pace-open"))
    trade_id = r.json()["trade"]["id"]
    await tf.until_status(rec_home_db, trade_id, "open", svc=procs["manager"])
    assert tf.best_yes_bid(sim, ticker) < Decimal("0.99")
    close = {"intent": "close", "trade_id": trade_id, "limit_price": "0.99"}
    r = await tf.post_trade(rec_home_db, {**close, "idempotency_key": "pace-1"})
    assert r.status_code == 201, r.text
    got = await tf.until_status(rec_home_db, trade_id, "open", svc=procs["manager"])
    await di.until(lambda: len(tf.sim_orders(sim)) == 2, 10, "the close order")
    assert [e["kind"] for e in got["events"]][-1] == "close failed"
    r = await tf.post_trade(rec_home_db, {**close, "idempotency_key": "pace-2"})
    assert r.status_code == 429 and r.json()["code"] == "close_backoff", r.text
    assert r.json()["retry_after_sec"] > 0
    assert len(tf.sim_orders(sim)) == 2  # nothing more was sent
    assert await tf.trade_status(rec_home_db, trade_id) == "open"


async def test_every_trading_setting_is_held_to_its_range(rec_home_db, start_service, sim):
    await tf.start_trading(rec_home_db, sim, start_service, sync=False)
    cases = [("auto_entry_position_size", -5), ("auto_entry_position_size", 10**30),
             ("max_contracts_per_trade", 100_000_000), ("max_daily_loss_dollars", -1),
             ("max_open_exposure_dollars", -100), ("intent_max_wait_sec", -1),
             ("max_contracts_per_market", 0), ("close_orders_per_minute", 1000)]
    for key, value in cases:
        r = await tf.put(rec_home_db, "/settings", {key: value})
        assert r.status_code == 422, (key, value, r.text)
        assert r.json()["field"] == key and " from " in r.json()["message"], r.text
    async with httpx.AsyncClient(base_url=tf.manager_url(rec_home_db)) as c:
        for raw in (b'{"max_open_exposure_dollars": NaN}',
                    b'{"max_open_exposure_dollars": Infinity}',
                    b'{"max_open_exposure_dollars": -Infinity}'):
            r = await c.put("/settings", content=raw,
                            headers={"content-type": "application/json"})
            assert r.status_code == 422, (raw, r.text)
            assert r.json()["field"] == "max_open_exposure_dollars"
        got = (await c.get("/settings")).json()["settings"]
    assert got["max_contracts_per_trade"]["value"] == 25  # nothing was written
    assert got["max_contracts_per_trade"]["range"]["high"] == "100000"
    r = await tf.put(rec_home_db, "/settings", {"max_contracts_per_trade": 30,
                                                "auto_entry_position_size": 2})
    assert r.status_code == 200 and sorted(r.json()["changed"]) == [
        "auto_entry_position_size", "max_contracts_per_trade"], r.text


async def test_a_resting_leg_whose_order_ended_unseen_is_resolved_at_start(
        rec_home_db, start_service, sim):
    """In-doubt resolution covers every leg not final, not only new ones: an entry resting at
    the exchange is canceled there while rec-trade-executor is down (and no account-sync sees
    it); the restarted executor reads the order and the trade ends canceled, not submitted for
    good."""
    procs = await tf.start_trading(rec_home_db, sim, start_service, sync=False)
    r = await tf.put(rec_home_db, "/settings", {"open_time_in_force": "good_till_canceled"})
    assert r.status_code == 200, r.text
    r = await tf.post_trade(rec_home_db, open_body(sim.open_tickers("KXBTCD")[5], "rest-1",
                                                   count=1, price="0.02"), wait=5)
    trade = r.json()["trade"]
    assert trade["status"] == "submitted", r.text
    procs["executor"].proc.send_signal(signal.SIGKILL)
    procs["executor"].proc.wait(10)
    (order,) = tf.sim_orders(sim)
    sim.sim.exchange.cancel(sim.sim.account(sim.signer.key_id), order.order_id)
    again = start_service(rec_home_db, tf.EXECUTOR)
    await di.wait_notify(again, "READY", "1")
    got = await tf.until_status(rec_home_db, trade["id"], "canceled", svc=procs["manager"])
    assert got["orders"][0]["remaining_count"] == "0.00", got["orders"]
    assert "ended at the exchange (canceled)" in again.output


async def test_a_database_restart_answers_503_not_500_and_the_intent_goes_through_after(
        rec_home_db, start_service, sim):
    """While PostgreSQL is down an intent is answered 503 ``database_unavailable`` (send it
    again), never a bare 500; the manager stays up and the same intent, sent again with its
    key after the restart, opens exactly one trade with one exchange order."""
    procs = await tf.start_trading(rec_home_db, sim, start_service)
    ticker = sim.open_tickers("KXBTCD")[5]
    server = rec_home_db.db.server
    server.stop()
    try:
        r = await tf.post_trade(rec_home_db, open_body(ticker, "k-db-down"))
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "database_unavailable" and r.headers["retry-after"] == "1"
    finally:
        server.restart()
    for _ in range(60):  # the pool reconnects by itself
        r = await tf.post_trade(rec_home_db, open_body(ticker, "k-db-down"), wait=10)
        if r.status_code != 503:
            break
        await asyncio.sleep(0.5)
    assert r.status_code in (200, 201), r.text
    await tf.until_status(rec_home_db, r.json()["trade"]["id"], "open", within=30,
                          svc=procs["manager"])
    assert len(tf.sim_orders(sim)) == 1
    assert procs["manager"].proc.poll() is None, procs["manager"].output[-3000:]
    assert "database unavailable" in procs["manager"].output


async def test_an_order_in_doubt_blocks_opens_on_its_market_until_resolved(
        rec_home_db, start_service, sim):
    """NautilusTrader's rule: the answer of an open is lost and every retry meets a 503 (the
    lookups too), so its outcome stays unknown: the leg is marked in doubt and another open on
    that market is refused (409 market_in_doubt, naming the leg) while an open on another
    market is taken. Once the exchange answers again, the in-doubt leg is settled from its
    record (the order it holds booked) and the same market takes opens again."""
    home = rec_home_db
    procs = await tf.start_trading(home, sim, start_service)
    trade_id, ticker = await lost_answer(sim, home, "doubt-1")
    await sim.control("http_error", status=503, count=100_000,
                      path_prefix="/trade-api/v2/portfolio")
    await sim.control("release", path=ORDERS)
    conn = await di.connect(home)

    async def in_doubt() -> bool:
        return (await di.rows(conn, "SELECT count(*) FROM trade_orders WHERE trade_id = %s "
                                    "AND state = 'new' AND in_doubt_since IS NOT NULL",
                              trade_id))[0][0] == 1

    await di.until(in_doubt, 30, "the open leg in doubt", procs["executor"])
    coid = (await di.rows(conn, "SELECT client_order_id FROM trade_orders WHERE trade_id = %s",
                          trade_id))[0][0]
    r = await tf.post_trade(home, open_body(ticker, "doubt-2"))
    assert r.status_code == 409, r.text
    assert (r.json()["code"], r.json()["in_doubt"]) == ("market_in_doubt", coid), r.json()
    assert await tf.trade_status(home, trade_id) == "pending"
    other = sim.open_tickers("KXBTCD")[6]
    r = await tf.post_trade(home, open_body(other, "doubt-3"))
    assert r.status_code == 201, r.text  # another market is not held up
    assert f"order {coid} on {ticker}: outcome unknown" in procs["executor"].output

    await sim.control("clear")
    await assert_booked_ticker(sim, home, trade_id, ticker, procs["executor"])
    r = await tf.post_trade(home, open_body(ticker, "doubt-2"), wait=10)
    assert r.status_code == 201, r.text
    await tf.until_status(home, r.json()["trade"]["id"], "open", within=30,
                          svc=procs["manager"])
    await conn.close()


async def assert_booked_ticker(h: fx.SimHandle, home, trade_id: int, ticker: str, svc) -> None:
    """The trade open with its leg accepted as the exchange's one order of its client_order_id."""
    got = await tf.until_status(home, trade_id, "open", within=30, svc=svc)
    (leg,) = got["orders"]
    orders = [o for o in tf.sim_orders(h) if o.client_order_id == leg["client_order_id"]]
    assert len(orders) == 1 and leg["exchange_order_id"] == orders[0].order_id, (leg, orders)


# --- a leg whose fills the exchange made while its market settles (chaos seeds 14 and 16) -------

async def settle_with_a_leg_in_flight(h: fx.SimHandle, home, svc, ticker: str, send) -> int:
    """A witness trade holds a contract of ``ticker``; ``send()`` makes a leg (returning its
    trade id) whose order the exchange executes while its answer is held; the market then
    closes and settles (rec-account-sync books the settlement) and rec-trade-manager has
    expired the witness, so it has seen the market end; then the answer is released. Returns
    the trade of the leg."""
    r = await tf.post_trade(home, open_body(ticker, "witness", count=1))
    witness = r.json()["trade"]["id"]
    await tf.until_status(home, witness, "open", svc=svc)
    acct = h.sim.account(h.signer.key_id)
    before = len(acct.orders)
    await h.control("hold", path=ORDERS)
    trade_id = await send()
    await di.until(lambda: len(acct.orders) > before
                   and not any(o.remaining for o in acct.orders.values()), 10,
                   "the leg's order executed at the exchange")
    m = h.sim.exchange.markets[ticker]
    h.sim.exchange.close_market(m)
    h.sim.exchange.settle_market(m, "no", "0.00")
    got = await tf.until_status(home, witness, "expired", within=30, svc=svc)
    assert got["trade"]["market_result"] == "no", got["trade"]
    await h.control("release", path=ORDERS)
    return trade_id


def exchange_money(h: fx.SimHandle, trade_id: int) -> dict[str, Decimal]:
    """What the exchange's fills of a trade's legs bought, sold and charged (YES side)."""
    acct = h.sim.account(h.signer.key_id)
    orders = {o.order_id: o for o in acct.orders.values()
              if o.client_order_id.split("-")[-2] == str(trade_id)}
    out = {"cost": Decimal(0), "proceeds": Decimal(0), "fees": Decimal(0)}
    for f in acct.fills:
        if f.order_id in orders:
            value = f.count * Decimal(f.yes_price) / tf.UNIT
            out["cost" if f.action == "buy" else "proceeds"] += value
            out["fees"] += Decimal(f.fee) / tf.UNIT
    return out


async def test_a_close_filled_as_its_market_settles_is_booked_not_expired(
        rec_home_db, start_service, sim):
    """Chaos seed 16: a close's order executed, its answer not yet in, while the market
    closed and settled. The trade stays closing until the close's fills are booked, then
    closes with their proceeds and fees; it is not expired and settled as if it still held
    the contracts (one fill's fee and the close's proceeds lost)."""
    procs = await tf.start_trading(rec_home_db, sim, start_service)
    ticker = sim.open_tickers("KXBTCD")[5]
    r = await tf.post_trade(rec_home_db, open_body(ticker, "held"))
    trade_id = r.json()["trade"]["id"]
    await tf.until_status(rec_home_db, trade_id, "open", svc=procs["manager"])

    async def close() -> int:
        r = await tf.post_trade(rec_home_db, {"intent": "close", "idempotency_key": "c",
                                              "trade_id": trade_id, "close_method": "manual"})
        assert r.status_code == 201, r.text
        return trade_id

    await settle_with_a_leg_in_flight(sim, rec_home_db, procs["manager"], ticker, close)
    got = await tf.until_status(rec_home_db, trade_id, ("closed", "expired"), within=30,
                                svc=procs["manager"])
    t, ex = got["trade"], exchange_money(sim, trade_id)
    assert t["status"] == "closed", got
    assert (Decimal(t["fees"]), Decimal(t["exit_proceeds"])) == (ex["fees"], ex["proceeds"]), \
        (t, ex)
    assert t["pnl_cents"] == cents(ex["proceeds"] - ex["cost"] - ex["fees"]), (t, ex)


async def test_an_open_filled_as_its_market_settles_is_booked_and_settled(
        rec_home_db, start_service, sim):
    """Chaos seed 14: an open's order executed, its answer not yet in, while the market
    closed and settled. The trade stays pending until its leg is known, books the fill, then
    expires and is settled from it; it is not expired as pending with the fill unbooked."""
    procs = await tf.start_trading(rec_home_db, sim, start_service)
    ticker = sim.open_tickers("KXBTCD")[5]

    async def open_() -> int:
        r = await tf.post_trade(rec_home_db, open_body(ticker, "in-flight"))
        assert r.status_code == 201, r.text
        return r.json()["trade"]["id"]

    trade_id = await settle_with_a_leg_in_flight(sim, rec_home_db, procs["manager"], ticker,
                                                 open_)

    async def settled() -> bool:
        got = (await tf.get(rec_home_db, f"/trades/{trade_id}")).json()["trade"]
        return got["pnl_cents"] is not None or got["status"] not in ("pending", "submitted",
                                                                    "open", "expired")

    await di.until(settled, 30, f"trade {trade_id} settled", procs["manager"])
    got = (await tf.get(rec_home_db, f"/trades/{trade_id}")).json()
    t, ex = got["trade"], exchange_money(sim, trade_id)
    assert (t["status"], t["market_result"]) == ("expired", "no"), got
    assert (Decimal(t["entry_cost"]), Decimal(t["fees"])) == (ex["cost"], ex["fees"]), (t, ex)
    assert t["pnl_cents"] == cents(-ex["cost"] - ex["fees"]), (t, ex)
