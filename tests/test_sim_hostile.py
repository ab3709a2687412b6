"""Hostile input, second pass (issue 24): each case once made the simulator answer a 500,
stall its loop, echo a header or deviate from Kalshi. Real simulator on loopback."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx

from tests import test_sim_fixtures as fx
from tests.test_sim_fixtures import ORDERS, PREFIX, order_body

sim = fx.sim
quiet_sim = fx.quiet_sim

PAST_9999 = 10**12  # seconds: year ~33658, past what RFC 3339 can write


async def test_an_expiration_past_year_9999_is_refused_with_the_error_shape(quiet_sim):
    a = quiet_sim.client()
    ws = await quiet_sim.ws()
    await ws.send(json.dumps({"id": 1, "cmd": "subscribe",
                              "params": {"channels": ["user_orders"]}}))
    assert (await fx.recv_json(ws))["type"] == "subscribed"
    t = quiet_sim.open_tickers()[0]
    for exp in (PAST_9999, 2**63, 253_402_300_800):
        r = await a.post(ORDERS, json=order_body(t, count=1, price=5, expiration_time=exp))
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["code"] == "invalid_parameters" and "expiration_time" in body["message"]
    # the last second of year 9999 is a valid expiry: resting, listed, sent to the subscriber
    r = await a.post(ORDERS, json=order_body(t, count=1, price=5, expiration_time=253_402_300_799))
    assert r.status_code == 201, r.text
    got = (await a.get("/portfolio/orders")).json()["orders"]
    assert [o["expiration_time"] for o in got] == ["9999-12-31T23:59:59.000Z"]
    msgs = await fx.drain(ws)
    assert any(m["type"] == "user_order" for m in msgs)
    await ws.close()


async def test_no_stored_time_can_break_an_order_view(quiet_sim):
    """The views are total: an order whose stored expiry is beyond any calendar (as one
    accepted before the bound was) still renders in every read and on the channel."""
    a = quiet_sim.client()
    t = quiet_sim.open_tickers()[0]
    ws = await quiet_sim.ws()
    await ws.send(json.dumps({"id": 1, "cmd": "subscribe",
                              "params": {"channels": ["user_orders"]}}))
    assert (await fx.recv_json(ws))["type"] == "subscribed"
    placed = await fx.place(a, t, count=2, price=5)
    acct = quiet_sim.sim.exchange.accounts[quiet_sim.signer.key_id]
    order = acct.orders[placed["order_id"]]
    order.expiration_ms = PAST_9999 * 1000
    order.updated_ms = -5
    for path in ("/portfolio/orders", f"/portfolio/orders/{order.order_id}"):
        r = await a.get(path)
        assert r.status_code == 200, (path, r.text)
    listed = (await a.get("/portfolio/orders")).json()["orders"][0]
    assert listed["expiration_time"] == "9999-12-31T23:59:59.999Z"
    assert listed["last_update_time"] == "1970-01-01T00:00:00.000Z"
    # a change to the order publishes it on user_orders: that render must not fail either
    r = await a.post(f"{ORDERS}/{order.order_id}/decrease", json={"reduce_by": "1.00"})
    assert r.status_code == 200, r.text
    last = [m["msg"] for m in await fx.drain(ws) if m["type"] == "user_order"][-1]
    assert (last["order_id"], last["remaining_count_fp"]) == (order.order_id, "1.00")
    assert last["expiration_time"] == "9999-12-31T23:59:59.999Z"
    await ws.close()


async def test_a_chunked_body_over_the_cap_is_a_logged_413(sim, caplog):
    async def chunks():  # no Content-Length: httpx sends it chunked
        for _ in range(40):
            yield b"x" * 65_536

    c = sim.client()
    with caplog.at_level(logging.WARNING, logger="rec.sim"):
        r = await c.post(ORDERS, content=chunks())
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["code"] == "payload_too_large"
    assert any("413" in rec.getMessage() for rec in caplog.records)
    assert (await c.get("/exchange/status")).status_code == 200


async def test_no_redirect_echoes_the_host_header(sim):
    async with httpx.AsyncClient(base_url=sim.base, timeout=5) as raw:
        for path in ("/healthz/", "/_sim/state/", PREFIX + "/markets/"):
            r = await raw.get(path, headers={"host": "evil.example"})
            assert "evil.example" not in r.headers.get("location", ""), path
            assert r.status_code == 404 or not r.is_redirect, (path, r.status_code)


async def test_a_repeated_channel_is_rendered_once_and_a_huge_command_refused(sim):
    """One 381 KB subscribe (a channel named 20,000 times) once rendered the snapshots
    20,000 times and stalled the loop for seconds. Now: refused with code 11 before any
    work, a repeat within the cap rendered once, and /healthz answered meanwhile."""
    tickers = list(sim.sim.exchange.markets)
    ws = await sim.ws()
    sent = sim.sim.hub.sent
    hostile = json.dumps({"id": 1, "cmd": "subscribe", "params": {
        "channels": ["orderbook_delta"] * 20_000, "market_tickers": tickers}})
    assert len(hostile) > 380_000
    await ws.send(hostile)
    async with httpx.AsyncClient(base_url=sim.base, timeout=10) as raw:
        assert (await raw.get("/healthz")).status_code == 200
    msgs = await fx.drain(ws)
    assert [(m["id"], m["type"], m["msg"]["code"]) for m in msgs] == [(1, "error", 11)]
    assert sim.sim.hub.sent - sent == 2  # the error and the marker's reply: nothing rendered
    repeated = ["orderbook_delta"] * 7 + ["ticker"] * 6  # 13 names, two channels
    await ws.send(json.dumps({"id": 2, "cmd": "subscribe", "params": {
        "channels": repeated, "market_tickers": tickers}}))
    msgs = await fx.drain(ws)
    kinds = [m["type"] for m in msgs]
    assert kinds.count("subscribed") == 2
    assert kinds.count("orderbook_snapshot") == len(tickers)  # once per market, not 7x
    assert len({m["msg"]["market_ticker"] for m in msgs
                if m["type"] == "orderbook_snapshot"}) == len(tickers)
    await ws.send(json.dumps({"id": 3, "cmd": "unsubscribe",
                              "params": {"sids": list(range(100_000))}}))
    assert [(m["id"], m["msg"]["code"]) for m in await fx.drain(ws)] == [(3, 11)]
    await ws.close()


async def test_a_queue_overflow_sends_error_25_then_closes(tmp_path):
    """The overflow happens inside a command (64 snapshots for a queue of 20): the client
    gets error 25 and a close, where the connection used to go silent."""
    h, server = await fx.start_sim(tmp_path, ws_max_queue=20)
    try:
        ws = await h.ws()
        await ws.send(json.dumps({"id": 1, "cmd": "subscribe", "params": {
            "channels": ["orderbook_delta"], "market_tickers": list(h.sim.exchange.markets)}}))
        msgs = await fx.recv_until(ws, lambda m: m.get("type") == "error", timeout=10)
        assert msgs[-1]["msg"] == {"code": 25, "msg": "Subscription buffer overflow"}
        await asyncio.wait_for(ws.wait_closed(), 5)
    finally:
        await fx.stop_sim(h, server)
