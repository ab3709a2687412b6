"""Order lifecycle on the simulator over loopback through the V2 order endpoints: rest,
partial fill, fill, cancel, amend, decrease, batches, cancel-all, the legacy 410s, and
the balance/position/fee accounting that follows (integer cents)."""

from __future__ import annotations

from tests import test_sim_fixtures as fx
from tests.test_sim_fixtures import ORDERS, order_body, place, signer

quiet_sim = fx.quiet_sim

START = 1_000_000


async def _two(h):
    a = h.client()
    b = h.client(signer("other-key"))
    return a, b, h.open_tickers()[0]


def _locked_consistent(h) -> None:
    for acct in h.sim.exchange.accounts.values():
        assert acct.locked == sum(o.remaining * o.price for o in acct.resting.values())


async def _balance(c) -> int:
    r = await c.get("/portfolio/balance")
    assert r.status_code == 200
    return r.json()["balance"]


async def _position(c, ticker) -> dict | None:
    r = await c.get("/portfolio/positions", params={"ticker": ticker, "settlement_status": "all"})
    ps = r.json()["market_positions"]
    return ps[0] if ps else None


async def test_resting_order_partial_fill_then_full_fill_with_exact_accounting(quiet_sim):
    a, b, t = await _two(quiet_sim)
    r = await a.post(ORDERS, json=order_body(t, count=10, price=40, client_order_id="a-1"))
    assert r.status_code == 201, r.text
    assert {k: r.json()[k] for k in ("client_order_id", "fill_count", "remaining_count")} == {
        "client_order_id": "a-1", "fill_count": "0.00", "remaining_count": "10.00"}
    assert "average_fill_price" not in r.json()
    oid = r.json()["order_id"]
    o = (await a.get(f"/portfolio/orders/{oid}")).json()["order"]
    assert (o["status"], o["remaining_count_fp"], o["yes_price_dollars"]) == (
        "resting", "10.00", "0.4000")
    assert (o["outcome_side"], o["book_side"], o["exchange_index"]) == ("yes", "bid", 0)
    assert await _balance(a) == START - 400  # collateral of the resting bid
    book = (await a.get(f"/markets/{t}/orderbook")).json()["orderbook_fp"]
    assert book == {"yes_dollars": [["0.4000", "10.00"]], "no_dollars": []}

    # B asks 4 at 0.40 (sells YES = buys NO at 0.60): partial fill at the maker's price
    r = await b.post(ORDERS, json=order_body(t, action="sell", count=4, price=40))
    assert (r.json()["fill_count"], r.json()["remaining_count"]) == ("4.00", "0.00")
    assert r.json()["average_fill_price"] == "0.4000"  # YES terms
    assert r.json()["average_fee_paid"] == "0.0175"  # $0.07 over 4 contracts
    ob = (await b.get(f"/portfolio/orders/{r.json()['order_id']}")).json()["order"]
    assert ob["status"] == "executed" and ob["fill_count_fp"] == "4.00"
    assert (ob["outcome_side"], ob["book_side"]) == ("no", "ask")
    # Kalshi's taker fee: 0.07 * 4 * 0.40 * 0.60 = $0.0672 -> $0.07
    assert ob["taker_fees_dollars"] == "0.0700"
    got = (await a.get(f"/portfolio/orders/{oid}")).json()["order"]
    assert (got["status"], got["fill_count_fp"], got["remaining_count_fp"]) == (
        "resting", "4.00", "6.00")
    assert got["maker_fill_cost_dollars"] == "1.6000" and got["maker_fees_dollars"] == "0.0000"
    assert await _balance(a) == START - 160 - 6 * 40
    assert await _balance(b) == START - 4 * 60 - 7
    pa, pb = await _position(a, t), await _position(b, t)
    assert (pa["position_fp"], pa["market_exposure_dollars"]) == ("4.00", "1.6000")
    assert (pb["position_fp"], pb["market_exposure_dollars"], pb["fees_paid_dollars"]) == (
        "-4.00", "2.4000", "0.0700")
    fills_a = (await a.get("/portfolio/fills")).json()["fills"]
    assert len(fills_a) == 1 and fills_a[0]["is_taker"] is False
    assert fills_a[0]["yes_price_dollars"] == "0.4000" and fills_a[0]["count_fp"] == "4.00"
    assert (fills_a[0]["outcome_side"], fills_a[0]["book_side"]) == ("yes", "bid")
    fills_b = (await b.get("/portfolio/fills")).json()["fills"]
    assert (fills_b[0]["outcome_side"], fills_b[0]["book_side"]) == ("no", "ask")
    assert fills_b[0]["fee_cost"] == "0.0700"

    # the rest fills (B buys NO at 0.60 = asks YES at 0.40); A's order is executed
    r = await b.post(ORDERS, json=order_body(t, side="no", count=6, price=60))
    assert r.json()["fill_count"] == "6.00"
    got = (await a.get(f"/portfolio/orders/{oid}")).json()["order"]
    assert (got["status"], got["remaining_count_fp"]) == ("executed", "0.00")
    assert (await _position(a, t))["position_fp"] == "10.00"
    _locked_consistent(quiet_sim)
    trades = (await a.get("/markets/trades", params={"ticker": t})).json()["trades"]
    assert [x["count_fp"] for x in trades] == ["6.00", "4.00"]  # newest first
    assert all(x["taker_outcome_side"] == "no" and x["taker_book_side"] == "ask"
               and x["yes_price_dollars"] == "0.4000" for x in trades)


async def test_closing_a_position_realises_pnl_and_releases_cash(quiet_sim):
    a, b, t = await _two(quiet_sim)
    await place(a, t, count=5, price=40)
    await place(b, t, side="no", count=5, price=60)
    # B bids 55 for YES; A sells its 5 YES into it (A is taker)
    await place(b, t, count=5, price=55)
    o = await place(a, t, action="sell", count=5, price=50, reduce_only=True,
                    time_in_force="immediate_or_cancel")
    assert o["fill_count_fp"] == "5.00" and o["taker_fill_cost_dollars"] == "2.7500"
    pa = await _position(a, t)
    assert pa["position_fp"] == "0.00"
    assert pa["realized_pnl_dollars"] == "0.7500"  # 5 * (55 - 40)
    # taker fee 0.07 * 5 * 0.45 * 0.55 = $0.086625 -> $0.0867 -> $0.09 charged
    assert await _balance(a) == START - 200 + 275 - 9


async def test_cancel_amend_and_decrease(quiet_sim):
    a, b, t = await _two(quiet_sim)
    r = await a.post(ORDERS, json=order_body(t, count=10, price=30, client_order_id="c-1"))
    oid = r.json()["order_id"]

    r = await a.post(f"{ORDERS}/{oid}/decrease", json={"reduce_by": "3"})
    assert r.status_code == 200, r.text
    assert (r.json()["remaining_count"], r.json()["client_order_id"]) == ("7.00", "c-1")
    r = await a.post(f"{ORDERS}/{oid}/decrease", json={"reduce_to": "5.00"})
    assert r.json()["remaining_count"] == "5.00"
    r = await a.post(f"{ORDERS}/{oid}/decrease", json={"reduce_by": "1", "reduce_to": "1"})
    assert r.status_code == 400

    r = await a.post(f"{ORDERS}/{oid}/amend", json={
        "ticker": t, "side": "bid", "price": "0.35", "count": "8",
        "updated_client_order_id": "c-2"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["order_id"], body["client_order_id"]) == (oid, "c-2")
    assert (body["remaining_count"], body["fill_count"]) == ("8.00", "0.00")
    o = (await a.get(f"/portfolio/orders/{oid}")).json()["order"]
    assert (o["yes_price_dollars"], o["remaining_count_fp"]) == ("0.3500", "8.00")
    book = (await a.get(f"/markets/{t}/orderbook")).json()["orderbook_fp"]
    assert book["yes_dollars"] == [["0.3500", "8.00"]]
    # the side must match the order's
    r = await a.post(f"{ORDERS}/{oid}/amend", json={
        "ticker": t, "side": "ask", "price": "0.35", "count": "8"})
    assert r.status_code == 400

    # an amend that crosses trades at once
    await place(b, t, side="no", count=3, price=62)
    r = await a.post(f"{ORDERS}/{oid}/amend", json={
        "ticker": t, "side": "bid", "price": "0.3800", "count": "8.00"})
    body = r.json()
    assert (body["fill_count"], body["remaining_count"]) == ("3.00", "5.00")
    assert body["average_fill_price"] == "0.3800"
    o = (await a.get(f"/portfolio/orders/{oid}")).json()["order"]
    assert o["taker_fill_cost_dollars"] == "1.1400"

    r = await a.delete(f"{ORDERS}/{oid}")
    assert r.status_code == 200
    assert (r.json()["reduced_by"], r.json()["order_id"]) == ("5.00", oid)
    assert isinstance(r.json()["ts_ms"], int)
    assert (await a.delete(f"{ORDERS}/{oid}")).status_code == 404
    assert (await a.get("/portfolio/orders/nope")).status_code == 404
    # B cannot see or cancel A's order
    assert (await b.delete(f"{ORDERS}/{oid}")).status_code == 404
    _locked_consistent(quiet_sim)
    canceled = (await a.get("/portfolio/orders", params={"status": "canceled"})).json()
    assert [x["order_id"] for x in canceled["orders"]] == [oid]


async def test_batched_create_and_cancel_report_each_item(quiet_sim):
    a, _, t = await _two(quiet_sim)
    r = await a.post(f"{ORDERS}/batched", json={"orders": [
        order_body(t, count=1, price=10, client_order_id="b-1"),
        order_body(t, count=2, price=11, client_order_id="b-2"),
        order_body(t, count=1, price=150, client_order_id="b-bad"),
        order_body("NO-SUCH-MARKET", count=1, price=10, client_order_id="b-nomkt"),
    ]})
    assert r.status_code == 201
    items = r.json()["orders"]
    assert [i["client_order_id"] for i in items] == ["b-1", "b-2", "b-bad", "b-nomkt"]
    assert items[0]["remaining_count"] == "1.00" and items[0]["error"] is None
    assert "order_id" not in items[2] and items[2]["error"]["code"] == "invalid_parameters"
    assert items[3]["error"]["code"] == "not_found"
    ids = [items[0]["order_id"], items[1]["order_id"], "missing-id"]
    r = await a.request("DELETE", f"{ORDERS}/batched",
                        json={"orders": [{"order_id": i} for i in ids]})
    assert r.status_code == 200
    res = r.json()["orders"]
    assert [x["reduced_by"] for x in res] == ["1.00", "2.00", "0.00"]
    assert res[2]["error"]["code"] == "not_found"
    too_many = [order_body(t, count=1, price=5) for _ in range(21)]
    r = await a.post(f"{ORDERS}/batched", json={"orders": too_many})
    assert r.status_code == 400


async def test_cancel_all_cancels_every_resting_order(quiet_sim):
    a, b, t = await _two(quiet_sim)
    for p in (5, 6, 7):
        await place(a, t, count=1, price=p)
    keep = await place(b, t, count=1, price=8)
    r = await a.delete(ORDERS)
    assert r.status_code == 204 and r.content == b""
    assert (await a.get("/portfolio/orders", params={"status": "resting"})).json()[
        "orders"] == []
    got = (await b.get(f"/portfolio/orders/{keep['order_id']}")).json()["order"]
    assert got["status"] == "resting"
    _locked_consistent(quiet_sim)


async def test_queue_positions(quiet_sim):
    a, b, t = await _two(quiet_sim)
    await place(b, t, count=4, price=20)
    o = await place(a, t, count=3, price=20)
    r = await a.get(f"/portfolio/orders/{o['order_id']}/queue_position")
    assert r.json() == {"queue_position_fp": "4.00"}
    r = await a.get("/portfolio/orders/queue_positions", params={"market_tickers": t})
    assert r.json()["queue_positions"] == [
        {"order_id": o["order_id"], "market_ticker": t, "queue_position_fp": "4.00"}]


async def test_legacy_order_writes_answer_410(quiet_sim):
    a, _, t = await _two(quiet_sim)
    o = await place(a, t, count=1, price=5)
    oid = o["order_id"]
    legacy = {"ticker": t, "side": "yes", "action": "buy", "count": 1, "yes_price": 5}
    for method, path, body in (
            ("POST", "/portfolio/orders", legacy),
            ("POST", "/portfolio/orders/batched", {"orders": [legacy]}),
            ("DELETE", "/portfolio/orders/batched", {"ids": [oid]}),
            ("DELETE", f"/portfolio/orders/{oid}", None),
            ("POST", f"/portfolio/orders/{oid}/amend", legacy),
            ("POST", f"/portfolio/orders/{oid}/decrease", {"reduce_by": 1})):
        r = await a.request(method, path, json=body)
        assert r.status_code == 410, (method, path)
        assert r.json()["code"] == "deprecated_v1_order_endpoint"
    # nothing happened to the order; the legacy reads still answer
    assert (await a.get(f"/portfolio/orders/{oid}")).json()["order"]["status"] == "resting"
    assert (await a.get("/portfolio/orders")).status_code == 200


async def test_order_flags_and_rejections(quiet_sim):
    h = quiet_sim
    a, b, t = await _two(h)
    await place(b, t, side="no", count=5, price=45)
    # post_only that would cross is not placed
    o = await place(a, t, count=1, price=60, post_only=True)
    assert (o["status"], o["fill_count_fp"]) == ("canceled", "0.00")
    # fill_or_kill larger than the book: nothing trades
    fok = await place(a, t, count=6, price=60, time_in_force="fill_or_kill")
    assert (fok["status"], fok["fill_count_fp"]) == ("canceled", "0.00")
    # immediate_or_cancel takes what is there, cancels the rest
    r = await a.post(ORDERS, json=order_body(t, count=8, price=60,
                                             time_in_force="immediate_or_cancel"))
    assert (r.json()["fill_count"], r.json()["remaining_count"]) == ("5.00", "0.00")
    o = (await a.get(f"/portfolio/orders/{r.json()['order_id']}")).json()["order"]
    assert (o["status"], o["fill_count_fp"], o["remaining_count_fp"]) == ("canceled", "5.00",
                                                                          "0.00")
    assert o["taker_fill_cost_dollars"] == "2.7500"  # 5 at the maker's 0.55 YES
    # reduce_only that would add to the position (A holds 5 YES) does nothing
    o = await place(a, t, count=1, price=10, reduce_only=True,
                    time_in_force="immediate_or_cancel")
    assert o["status"] == "canceled"
    # duplicate client_order_id -> 409
    body = order_body(t, count=1, price=5, client_order_id="dup")
    assert (await a.post(ORDERS, json=body)).status_code == 201
    r = await a.post(ORDERS, json=body)
    assert r.status_code == 409 and r.json()["code"] == "order_already_exists"
    # validation errors are 400 with Kalshi's error body
    base = order_body(t, count=1, price=5)
    for bad in ({"ticker": t, "side": "bid", "count": "1"},
                order_body(t, count=0, price=5),
                {**base, "side": "yes"},
                {**base, "price": "0.555"},  # between 0.10 and 0.90 the tick is a cent
                {**base, "price": "0.0555"},  # finer than the deci-cent tail tick
                {**base, "price": "1e-2"},
                {**base, "price": 0.05},
                {**base, "count": 1},
                {**base, "time_in_force": "gtc"},
                {k: v for k, v in base.items() if k != "time_in_force"},
                {k: v for k, v in base.items() if k != "self_trade_prevention_type"},
                {**base, "reduce_only": True},
                {**base, "count": "1.50"}):
        r = await a.post(ORDERS, json=bad)
        assert r.status_code == 400, bad
        assert set(r.json()) >= {"code", "message"}
    r = await a.post(ORDERS, json={**base, "price": "0.555"})
    assert r.json()["code"] == "invalid_price"
    assert "tick 0.0100" in r.json()["message"]  # names the tick
    # CreateOrderV2 lists 400, not 404, for an unknown market
    assert (await a.post(ORDERS, json=order_body("NOPE", count=1))).status_code == 400
    # insufficient balance
    await h.control("set_balance", key_id="test-key", cents=100)
    r = await a.post(ORDERS, json=order_body(t, count=10, price=20))
    assert r.status_code == 400 and r.json()["code"] == "insufficient_balance"


async def test_settlement_pays_winners_and_records_settlements(quiet_sim):
    h = quiet_sim
    a, b, _ = await _two(h)
    # the strike just below spot wins if the spot stays well above it
    spot = h.sim.world.spot
    ticker = next(m.ticker for m in h.sim.exchange.markets.values()
                  if m.status == "active" and m.strike_type == "greater"
                  and m.floor_strike < spot - 400)
    await place(a, ticker, count=10, price=70)
    await place(b, ticker, side="no", count=10, price=30)
    fee_b = 15  # taker 0.07 * 10 * 0.30 * 0.70 = $0.147 -> $0.15
    await h.control("set_spot", spot=spot + 5000)
    await h.control("advance", seconds=3600 + 61)
    m = (await a.get(f"/markets/{ticker}")).json()["market"]
    assert (m["status"], m["result"], m["settlement_value_dollars"]) == ("finalized", "yes",
                                                                        "1.0000")
    sa = (await a.get("/portfolio/settlements")).json()["settlements"]
    assert len(sa) == 1
    s = sa[0]
    assert (s["ticker"], s["market_result"], s["yes_count_fp"], s["revenue"], s["value"]) == (
        ticker, "yes", "10.00", 1000, 100)
    assert s["yes_total_cost_dollars"] == "7.0000"
    assert await _balance(a) == START - 700 + 1000
    assert await _balance(b) == START - 300 - fee_b
    sb = (await b.get("/portfolio/settlements")).json()["settlements"][0]
    assert (sb["no_count_fp"], sb["revenue"], sb["fee_cost"]) == ("10.00", 0, f"0.{fee_b:02d}00")
    pa = await _position(a, ticker)
    assert (pa["position_fp"], pa["realized_pnl_dollars"]) == ("0.00", "3.0000")
    # orders on a closed market are refused
    r = await a.post(ORDERS, json=order_body(ticker, count=1, price=50))
    assert r.status_code == 400 and r.json()["code"] == "market_closed"
