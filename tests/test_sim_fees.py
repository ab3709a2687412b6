"""Fees as Kalshi computes them: the fee model, rounding up to $0.0001, the rounding fee of
a non-direct member ($0.01 balances), rebates of rounding overpayment and the per-order
accumulator. Every expected number is fixed here from Kalshi's published formula and
examples (taker 0.07 * C * P * (1 - P), maker 0.0175 * C * P * (1 - P)), never computed
with the code under test."""

from __future__ import annotations

from app.sim.fees import FeeAccumulator, fee_cents, trade_fee_units
from tests import test_sim_fixtures as fx
from tests.test_sim_fixtures import ORDERS, order_body, place, signer

quiet_sim = fx.quiet_sim
START = 1_000_000


def test_fee_model_numbers():
    # 1 contract at $0.50: 0.07 * 0.25 = $0.0175 (trade fee), $0.02 charged
    assert trade_fee_units(1, 50) == 175
    assert fee_cents(1, 50) == 2
    # 100 contracts at $0.50: $1.75 exactly
    assert trade_fee_units(100, 50) == 17_500 and fee_cents(100, 50) == 175
    # 10 at $0.56: 0.07 * 10 * 0.56 * 0.44 = $0.17248 -> $0.1725 -> $0.18
    assert trade_fee_units(10, 56) == 1725 and fee_cents(10, 56) == 18
    # maker rate: 100 at $0.50 = $0.4375 -> $0.44
    assert trade_fee_units(100, 50, 175) == 4375 and fee_cents(100, 50, 175) == 44
    assert fee_cents(0, 50) == 0


def test_split_fills_cost_what_one_fill_would():
    acc = FeeAccumulator()
    charges = [acc.charge(1, 50, 700) for _ in range(4)]
    # each fill: trade fee $0.0175 + rounding $0.0025; the 4th gets $0.01 back
    assert [(c.trade_fee, c.rounding_fee, c.rebate) for c in charges] == [
        (175, 25, 0), (175, 25, 0), (175, 25, 0), (175, 25, 100)]
    assert [c.net_cents for c in charges] == [2, 2, 2, 1]  # $0.07 = one fill of 4 at $0.50
    # the exact fee carries over between fills: 3 + 7 at $0.56 = 10 at $0.56 ($0.18)
    acc = FeeAccumulator()
    a, b = acc.charge(3, 56, 700), acc.charge(7, 56, 700)
    # 3 at 0.56: $0.051744 -> $0.0518 -> $0.06; 10 in all: $0.1725 -> $0.18
    assert (a.trade_fee, a.net_cents) == (518, 6)
    assert a.net_cents + b.net_cents == 18


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
