"""Kalshi API after v3.31.0 (3.32-3.36), simulator side (issue 20): positions by settlement
status, fills for up to 100 tickers, historical orders behind a cutoff, and the send time
on every WebSocket message. Real simulator on loopback; two accounts trade each other."""

from __future__ import annotations

import base64
import json

import pytest

from app.sim.wire import iso
from app.sim.world import WorldParams
from tests import test_sim_fixtures as fx
from tests.test_sim_fixtures import ORDERS, order_body, signer

HISTORY_MS = 60_000
FILL_HISTORY_MS = 120_000


@pytest.fixture
async def quiet_sim(tmp_path):
    """No simulated liquidity, and orders archived one simulated minute after they end."""
    quiet = WorldParams(mm_levels=0, flow_rate_per_s=0.0)
    handle, server = await fx.start_sim(tmp_path, world=quiet, order_history_ms=HISTORY_MS,
                                          fill_history_ms=FILL_HISTORY_MS)
    yield handle
    await fx.stop_sim(handle, server)


async def _trade(sim, ticker: str, count: int = 1) -> None:
    """Account a buys YES from account b at $0.50: both hold a position in `ticker`."""
    a, b = sim.client(), sim.client(signer("other-key"))
    r = await a.post(ORDERS, json=order_body(ticker, count=count, price=50))
    assert r.status_code == 201, r.text
    r = await b.post(ORDERS, json=order_body(ticker, side="no", count=count, price=50))
    assert r.status_code == 201 and r.json()["fill_count"] == f"{count}.00", r.text


async def _pages(c, params: dict) -> list[dict]:
    out, cursor = [], None
    while True:
        r = await c.get("/portfolio/positions", params={**params, **({"cursor": cursor}
                                                                    if cursor else {})})
        assert r.status_code == 200, r.text
        out.append(r.json())
        cursor = r.json()["cursor"]
        if not cursor:
            return out


async def test_positions_by_settlement_status_page_by_event(quiet_sim):
    sim = quiet_sim
    a = sim.client()
    above, ranges = sim.open_tickers("KXBTCD"), sim.open_tickers("KXBTC")
    traded = (above[0], above[1], ranges[0])  # two events: KXBTCD (2 markets), KXBTC
    event_of = {t: sim.sim.exchange.markets[t].event_ticker for t in traded}
    for t in traded:
        await _trade(sim, t)
    await sim.control("advance", seconds=3700)  # the hour settles
    later = sim.open_tickers("KXBTCD")[0]
    await _trade(sim, later)
    unsettled = (await a.get("/portfolio/positions")).json()
    assert [p["ticker"] for p in unsettled["market_positions"]] == [later]  # the default
    assert unsettled == (await a.get("/portfolio/positions",
                                     params={"settlement_status": "unsettled"})).json()
    pages = await _pages(a, {"settlement_status": "settled", "limit": 1})
    assert len(pages) == 2  # one event per page, each with all its markets
    events = [[e["event_ticker"] for e in p["event_positions"]] for p in pages]
    assert [len(e) for e in events] == [1, 1] and events[0] < events[1]  # by event ticker
    settled = sorted(p["ticker"] for pg in pages for p in pg["market_positions"])
    assert settled == sorted(traded)
    for pg in pages:
        assert {event_of[p["ticker"]] for p in pg["market_positions"]} == {
            e["event_ticker"] for e in pg["event_positions"]}
    everything = await _pages(a, {"settlement_status": "all", "limit": 1})
    assert sorted(p["ticker"] for pg in everything for p in pg["market_positions"]) == sorted(
        [*settled, later])
    # a cursor belongs to its status
    cursor = pages[0]["cursor"]
    for other in ("unsettled", "all"):
        r = await a.get("/portfolio/positions",
                        params={"settlement_status": other, "cursor": cursor})
        assert r.status_code == 400 and r.json()["code"] == "invalid_parameters", other
    forged = base64.urlsafe_b64encode(b"t:" + above[0].encode()).decode().rstrip("=")
    r = await a.get("/portfolio/positions", params={"settlement_status": "settled",
                                                    "cursor": forged})
    assert r.status_code == 400
    r = await a.get("/portfolio/positions", params={"settlement_status": "closed"})
    assert r.status_code == 400


async def test_fills_take_up_to_100_comma_separated_tickers(quiet_sim):
    sim = quiet_sim
    a = sim.client()
    ts = sim.open_tickers("KXBTCD")[:3]
    for t in ts:
        await _trade(sim, t)
    r = await a.get("/portfolio/fills", params={"ticker": f"{ts[0]},{ts[2]}"})
    assert r.status_code == 200, r.text
    assert sorted(f["ticker"] for f in r.json()["fills"]) == sorted([ts[0], ts[2]])
    one = (await a.get("/portfolio/fills", params={"ticker": ts[1]})).json()["fills"]
    assert [f["ticker"] for f in one] == [ts[1]]
    many = ",".join([ts[1]] + [f"NOPE-{i}" for i in range(99)])
    assert [f["ticker"] for f in (await a.get("/portfolio/fills", params={
        "ticker": many})).json()["fills"]] == [ts[1]]
    r = await a.get("/portfolio/fills", params={"ticker": many + ",NOPE-100"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_parameters"


async def test_orders_older_than_the_cutoff_move_to_historical(quiet_sim):
    sim = quiet_sim
    a = sim.client()
    t = sim.open_tickers()[0]
    old = await fx.place(a, t, count=1, price=5)
    assert (await a.delete(f"{ORDERS}/{old['order_id']}")).status_code == 200
    resting = await fx.place(a, t, count=1, price=6)
    await sim.control("advance", seconds=HISTORY_MS // 1000 + 5)
    recent = await fx.place(a, t, count=1, price=7)
    assert (await a.delete(f"{ORDERS}/{recent['order_id']}")).status_code == 200
    live = [o["order_id"] for o in (await a.get("/portfolio/orders")).json()["orders"]]
    assert live == [recent["order_id"], resting["order_id"]]  # resting ones are always live
    r = await a.get("/historical/orders")
    assert r.status_code == 200, r.text
    assert [o["order_id"] for o in r.json()["orders"]] == [old["order_id"]]
    assert (await a.get("/historical/orders", params={"ticker": "OTHER"})).json()[
        "orders"] == []
    assert (await a.get("/historical/orders", params={"status": "resting"})).status_code == 400
    anon = sim.client(auth=False)
    assert (await anon.get("/historical/orders")).status_code == 401
    cut = (await anon.get("/historical/cutoff")).json()
    assert cut["orders_updated_ts"] == iso(sim.sim.exchange.clock() - HISTORY_MS)
    assert cut["trades_created_ts"] == iso(sim.sim.exchange.clock() - FILL_HISTORY_MS)
    assert cut["market_settled_ts"] == iso(0)


async def test_fills_older_than_the_cutoff_move_to_historical(quiet_sim):
    sim = quiet_sim
    a = sim.client()
    t, other = sim.open_tickers()[:2]
    await _trade(sim, t, count=2)
    await sim.control("advance", seconds=FILL_HISTORY_MS // 1000 + 5)
    await _trade(sim, other)
    live = (await a.get("/portfolio/fills")).json()["fills"]
    assert [f["ticker"] for f in live] == [other], live
    r = await a.get("/historical/fills")
    assert r.status_code == 200, r.text
    assert [(f["ticker"], f["count_fp"]) for f in r.json()["fills"]] == [(t, "2.00")]
    assert (await a.get("/historical/fills", params={"ticker": other})).json()["fills"] == []
    assert (await sim.client(auth=False).get("/historical/fills")).status_code == 401


async def test_every_ws_message_carries_the_send_time(quiet_sim):
    sim = quiet_sim
    ws = await sim.ws()
    t = sim.open_tickers()[0]
    await ws.send(json.dumps({"id": 1, "cmd": "subscribe", "params": {
        "channels": ["orderbook_delta", "ticker", "user_orders"], "market_tickers": [t]}}))
    await ws.send("not json")
    await _trade(sim, t)
    msgs = await fx.drain(ws)
    assert {m["type"] for m in msgs} >= {"subscribed", "orderbook_snapshot", "error",
                                         "orderbook_delta", "user_order"}
    now = sim.sim.exchange.clock()
    assert all(m["sending_ts_ms"] == now for m in msgs), msgs
    await ws.close()
