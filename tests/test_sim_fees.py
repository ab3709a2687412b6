"""Fees as Kalshi computes them: the fee model, rounding up to $0.0001, the rounding fee of
a non-direct member ($0.01 balances), rebates of rounding overpayment and the per-order
accumulator. Every expected number is fixed here from Kalshi's published formula and
examples (taker 0.07 * C * P * (1 - P), maker 0.0175 * C * P * (1 - P)), never computed
with the code under test."""

from __future__ import annotations

from app.sim.fees import FeeAccumulator, fee_estimate, trade_fee
from tests import test_sim_fixtures as fx
from tests.test_sim_fixtures import ORDERS, order_body, place, signer

quiet_sim = fx.quiet_sim
START = 1_000_000


# amounts in $0.0001: 5000 = $0.50, 175 = $0.0175


def test_fee_model_numbers():
    # 1 contract at $0.50: 0.07 * 0.25 = $0.0175 (trade fee), $0.02 charged
    assert trade_fee(1, 5000) == 175
    assert fee_estimate(1, 5000) == 200
    # 100 contracts at $0.50: $1.75 exactly
    assert trade_fee(100, 5000) == 17_500 and fee_estimate(100, 5000) == 17_500
    # 10 at $0.56: 0.07 * 10 * 0.56 * 0.44 = $0.17248 -> $0.1725 -> $0.18
    assert trade_fee(10, 5600) == 1725 and fee_estimate(10, 5600) == 1800
    # maker rate: 100 at $0.50 = $0.4375 -> $0.44
    assert trade_fee(100, 5000, 175) == 4375 and fee_estimate(100, 5000, 175) == 4400
    assert trade_fee(0, 5000) == 0


def test_split_fills_cost_what_one_fill_would():
    acc = FeeAccumulator()
    charges = [acc.charge(1, 5000, 700, -5000) for _ in range(4)]
    # each fill: trade fee $0.0175 + rounding $0.0025; the 4th gets $0.01 back
    assert [(c.trade_fee, c.rounding_fee, c.rebate) for c in charges] == [
        (175, 25, 0), (175, 25, 0), (175, 25, 0), (175, 25, 100)]
    assert [c.net for c in charges] == [200, 200, 200, 100]  # $0.07: one fill of 4
    # the exact fee carries over between fills: 3 + 7 at $0.56 = 10 at $0.56 ($0.18)
    acc = FeeAccumulator()
    a, b = acc.charge(3, 5600, 700), acc.charge(7, 5600, 700)
    # 3 at 0.56: $0.051744 -> $0.0518 -> $0.06; 10 in all: $0.1725 -> $0.18
    assert (a.trade_fee, a.net) == (518, 600)
    assert a.net + b.net == 1800


def test_sub_cent_prices_round_the_balance_to_the_cent():
    # 1 contract bought at $0.005: costs $0.005, trade fee 0.07 * 0.005 * 0.995
    # = $0.00034825 -> $0.0004; the cash change -$0.0054 is rounded to -$0.01
    acc = FeeAccumulator()
    c = acc.charge(1, 50, 700, -50)
    assert (c.trade_fee, c.rounding_fee, c.rebate) == (4, 46, 0)


async def test_a_taker_split_over_four_makers_pays_one_fills_fee(quiet_sim):
    h = quiet_sim
    a, b = h.client(), h.client(signer("other-key"))
    t = h.open_tickers()[0]  # KXBTCD: takers pay, makers do not
    for _ in range(4):
        await place(b, t, count=1, price=50)
    o = await place(a, t, action="sell", count=4, price=50)
    assert o["fill_count_fp"] == "4.00"
    fills = (await a.get("/portfolio/fills", params={"order_id": o["order_id"]})).json()
    assert sorted(f["fee_cost"] for f in fills["fills"]) == [
        "0.0100", "0.0200", "0.0200", "0.0200"]
    assert o["taker_fees_dollars"] == "0.0700"  # not 4 x $0.02
    assert (await a.get("/portfolio/balance")).json()["balance"] == START - 4 * 50 - 7
    # makers on a series without maker fees pay nothing
    assert (await b.get("/portfolio/balance")).json()["balance"] == START - 4 * 50


async def test_maker_fees_on_the_maker_fee_series(quiet_sim):
    h = quiet_sim
    a, b = h.client(), h.client(signer("other-key"))
    series = (await a.get("/series/KXBTC")).json()["series"]
    assert series["fee_type"] == "quadratic_with_maker_fees"
    t = h.open_tickers("KXBTC")[0]
    maker = await place(a, t, count=100, price=50)
    r = await b.post(ORDERS, json=order_body(t, action="sell", count=100, price=50))
    assert r.json()["fill_count"] == "100.00"
    got = (await a.get(f"/portfolio/orders/{maker['order_id']}")).json()["order"]
    # maker: 0.0175 * 100 * 0.25 = $0.4375 -> $0.44 (the taker rate would be $1.75)
    assert got["maker_fees_dollars"] == "0.4400"
    assert (await a.get("/portfolio/balance")).json()["balance"] == START - 5000 - 44
    taker = (await b.get(f"/portfolio/orders/{r.json()['order_id']}")).json()["order"]
    assert taker["taker_fees_dollars"] == "1.7500"
    fills = (await a.get("/portfolio/fills")).json()["fills"]
    assert [f["fee_cost"] for f in fills] == ["0.4400"]


async def test_sub_cent_orders_trade_end_to_end(quiet_sim):
    h = quiet_sim
    a, b = h.client(), h.client(signer("other-key"))
    t = h.open_tickers("KXBTCD")[0]
    m = (await a.get(f"/markets/{t}")).json()["market"]
    assert m["price_level_structure"] == "tapered_deci_cent"
    assert m["price_ranges"] == [
        {"start": "0.0000", "end": "0.1000", "step": "0.0010"},
        {"start": "0.1000", "end": "0.9000", "step": "0.0100"},
        {"start": "0.9000", "end": "1.0000", "step": "0.0010"}]
    bid = {**order_body(t, count=10), "price": "0.005"}
    r = await a.post(ORDERS, json=bid)
    assert r.status_code == 201, r.text
    book = (await a.get(f"/markets/{t}/orderbook")).json()["orderbook_fp"]
    assert book["yes_dollars"] == [["0.0050", "10.00"]]
    r = await b.post(ORDERS, json={**order_body(t, action="sell", count=10), "price": "0.005"})
    assert (r.json()["fill_count"], r.json()["average_fill_price"]) == ("10.00", "0.0050")
    trade = (await a.get("/markets/trades", params={"ticker": t})).json()["trades"][0]
    assert (trade["yes_price_dollars"], trade["no_price_dollars"]) == ("0.0050", "0.9950")
    # A (maker, no maker fee on KXBTCD) paid 10 x $0.005 = $0.05
    assert (await a.get("/portfolio/balance")).json()["balance"] == START - 5
    # B (taker) paid 10 x $0.995 = $9.95 plus 0.07 * 10 * 0.005 * 0.995 = $0.0034825
    # -> $0.0035; -$9.9535 rounds to -$9.96 for a cent-precision balance
    assert (await b.get("/portfolio/balance")).json()["balance"] == START - 996
    fill = (await b.get("/portfolio/fills")).json()["fills"][0]
    assert (fill["yes_price_dollars"], fill["fee_cost"]) == ("0.0050", "0.0100")
    # in the middle band the tick is a cent; the tails take tenths of a cent
    r = await a.post(ORDERS, json={**order_body(t, count=1), "price": "0.505"})
    assert r.status_code == 400 and "0.0100" in r.json()["message"]
    r = await a.post(ORDERS, json={**order_body(t, count=1), "price": "0.995"})
    assert r.status_code == 201
    # a linear_cent market refuses the same sub-cent price
    t2 = h.open_tickers("KXBTC")[0]
    r = await a.post(ORDERS, json={**order_body(t2, count=1), "price": "0.005"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_price"
