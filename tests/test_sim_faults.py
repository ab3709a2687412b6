"""Fault injection and rate limits: injected 5xx/429, latency, a hung path, halted
trading, dropped WebSockets, skipped seq numbers; token buckets answering 429."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

from app.sim.app import _loopback
from app.sim.ratelimit import RateLimiter
from tests import test_sim_fixtures as fx
from tests.test_sim_fixtures import ORDERS, drain, order_body, recv_json

sim = fx.sim


async def test_next_n_requests_get_the_injected_status(sim):
    c = sim.client()
    await sim.control("http_error", status=503, count=2)
    codes = [(await c.get("/portfolio/balance")).status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    await sim.control("http_error", status=429, count=1, path_prefix="/trade-api/v2/markets")
    assert (await c.get("/portfolio/balance")).status_code == 200  # other path untouched
    r = await c.get("/markets")
    assert r.status_code == 429 and r.json()["code"] == "too_many_requests"
    assert (await c.get("/markets")).status_code == 200
    bad = httpx.AsyncClient(base_url=sim.base)
    assert (await bad.post("/_sim/http_error", json={"status": 404})).status_code == 400
    await bad.aclose()


async def test_latency_and_hung_path(sim):
    c = sim.client()
    await sim.control("latency", ms=300)
    t0 = time.monotonic()
    assert (await c.get("/exchange/status")).status_code == 200
    assert time.monotonic() - t0 >= 0.3
    await sim.control("latency", ms=0)
    await sim.control("hang", path="/trade-api/v2/portfolio/orders")
    with pytest.raises(httpx.ReadTimeout):
        await c.get("/portfolio/orders", timeout=0.5)
    assert (await c.get("/portfolio/balance")).status_code == 200  # only that path hangs
    pending = asyncio.create_task(c.get("/portfolio/orders"))
    await asyncio.sleep(0.2)
    assert not pending.done()
    await sim.control("release", path="/trade-api/v2/portfolio/orders")
    assert (await asyncio.wait_for(pending, 5)).status_code == 200


async def test_halt_trading(sim):
    c = sim.client()
    t = sim.open_tickers()[5]
    await sim.control("halt", on=True)
    assert (await c.get("/exchange/status")).json()["trading_active"] is False
    r = await c.post(ORDERS, json=order_body(t, count=1, price=10))
    assert r.status_code == 400 and r.json()["code"] == "trading_is_paused"
    await sim.control("halt", on=False)
    assert (await c.get("/exchange/status")).json()["trading_active"] is True
    assert (await c.post(ORDERS, json=order_body(t, count=1, price=10))).status_code == 201


async def test_drop_ws_and_skip_seq(sim):
    t = sim.open_tickers()[5]
    ws = await sim.ws()
    await ws.send(json.dumps({"id": 1, "cmd": "subscribe",
                              "params": {"channels": ["orderbook_delta"], "market_ticker": t}}))
    await recv_json(ws)
    assert (await recv_json(ws))["seq"] == 1
    await sim.control("skip_seq")
    await sim.control("advance", seconds=120)
    seqs = [m["seq"] for m in await drain(ws)]
    assert seqs and seqs[0] == 3  # seq 2 was skipped
    assert seqs[1:] == list(range(4, 3 + len(seqs)))
    res = await sim.control("drop_ws")
    assert res["dropped"] == 1
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    # reconnecting works and starts a fresh subscription at seq 1
    ws2 = await sim.ws()
    await ws2.send(json.dumps({"id": 1, "cmd": "subscribe",
                               "params": {"channels": ["orderbook_delta"], "market_ticker": t}}))
    await recv_json(ws2)
    assert (await recv_json(ws2))["seq"] == 1
    # a handshake can be refused with an injected status too
    await sim.control("http_error", status=503, count=1, path_prefix="/trade-api/ws")
    with pytest.raises(websockets.InvalidStatus) as exc:
        await sim.ws()
    assert exc.value.response.status_code == 503
    await ws2.close()


async def test_control_api_is_off_unless_enabled(tmp_path):
    handle, server = await fx.start_sim(tmp_path, faults_enabled=False)
    try:
        async with httpx.AsyncClient(base_url=handle.base) as c:
            assert (await c.post("/_sim/halt", json={"on": True})).status_code == 404
            assert (await c.get("/_sim/state")).status_code == 404
            assert (await c.get("/healthz")).status_code == 200
    finally:
        await fx.stop_sim(handle, server)


def test_control_api_only_answers_loopback_clients():
    class Req:
        def __init__(self, host):
            self.client = type("C", (), {"host": host})()

    assert _loopback(Req("127.0.0.1")) and _loopback(Req("::1"))
    assert not _loopback(Req("10.0.0.5"))  # portability: allow private-ip
    assert not _loopback(Req("192.168.1.2"))  # portability: allow private-ip


class FrozenClock:
    """A monotonic clock the test moves: token refills without racing the wall clock."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_rate_limit_answers_429_per_key_reads_and_writes_apart(tmp_path):
    handle, server = await fx.start_sim(tmp_path, rate_tier="basic")
    clock = handle.sim.limiter.clock = FrozenClock()
    try:
        a, b = handle.client(), handle.client(fx.signer("other-key"))
        # basic: 200 read tokens, 10 per request -> exactly 20 reads, then 429
        codes = [(await a.get("/portfolio/balance")).status_code for _ in range(21)]
        assert codes == [200] * 20 + [429]
        r = await a.get("/portfolio/balance")
        assert r.status_code == 429 and r.json()["code"] == "too_many_requests"
        assert (await b.get("/portfolio/balance")).status_code == 200  # per key
        t = handle.open_tickers()[0]
        # writes have their own bucket (100 tokens on basic)
        r = await a.post(ORDERS, json=order_body(t, count=1, price=5))
        assert r.status_code == 201
        limits = (await b.get("/account/limits")).json()
        assert limits == {"usage_tier": "basic",
                          "read": {"refill_rate": 200, "bucket_capacity": 200},
                          "write": {"refill_rate": 100, "bucket_capacity": 100},
                          "grants": []}
        clock.t += 0.05  # 10 read tokens refilled: one more read
        assert (await a.get("/portfolio/balance")).status_code == 200
        assert (await a.get("/portfolio/balance")).status_code == 429
    finally:
        await fx.stop_sim(handle, server)


async def test_token_costs_follow_endpoint_costs(tmp_path):
    handle, server = await fx.start_sim(tmp_path, rate_tier="basic")
    handle.sim.limiter.clock = FrozenClock()
    try:
        a = handle.client()
        costs = (await a.get("/account/endpoint_costs")).json()
        assert costs["default_cost"] == 10
        table = {(c["method"], c["path"]): c["cost"] for c in costs["endpoint_costs"]}
        assert table[("DELETE", "/trade-api/v2/portfolio/events/orders/{order_id}")] == 2
        assert table[("DELETE", "/trade-api/v2/portfolio/events/orders/batched")] == 2
        assert table[("GET", "/trade-api/v2/portfolio/orders/{order_id}")] == 2
        t = handle.open_tickers()[0]
        # a batch of 5 creates costs 50 of the 100 write tokens ...
        r = await a.post(f"{ORDERS}/batched",
                         json={"orders": [order_body(t, count=1, price=5)] * 5})
        assert r.status_code == 201
        ids = [o["order_id"] for o in r.json()["orders"]]
        # ... 4 single creates take 40 more, leaving 10: 5 cancels at 2 tokens each fit
        for _ in range(4):
            assert (await a.post(ORDERS, json=order_body(t, count=1, price=5))).status_code \
                == 201
        for oid in ids:
            assert (await a.delete(f"{ORDERS}/{oid}")).status_code == 200
        r = await a.delete(f"{ORDERS}/{ids[0]}")
        assert r.status_code == 429
        # a batch above the tier's write budget is refused outright
        r = await a.post(f"{ORDERS}/batched",
                         json={"orders": [order_body(t, count=1, price=5)] * 11})
        assert r.status_code == 400 and "at most 10" in r.json()["message"]
    finally:
        await fx.stop_sim(handle, server)


def test_token_bucket_refills():
    clock = FrozenClock()
    lim = RateLimiter("basic", clock=clock)
    assert sum(lim.allow("k", "write") for _ in range(15)) == 10
    assert lim.allow("k", "read")
    clock.t += 0.1  # 10 write tokens
    assert lim.allow("k", "write")
    assert not lim.allow("k", "write")
    assert RateLimiter("advanced").limits()["write"] == {"refill_rate": 300,
                                                         "bucket_capacity": 600}
    with pytest.raises(ValueError):
        RateLimiter("platinum")


async def test_lost_answer_on_v2_create_then_the_retry_is_a_duplicate(sim):
    c = sim.client()
    t = sim.open_tickers()[5]
    await sim.control("lose_response", status=502, count=1,
                      path_prefix="/trade-api/v2/portfolio/events/orders")
    body = order_body(t, count=1, price=5, client_order_id="lost-1")
    r = await c.post(ORDERS, json=body)
    assert r.status_code == 502  # served, but the answer was lost
    orders = (await c.get("/portfolio/orders", params={"ticker": t})).json()["orders"]
    assert [o["client_order_id"] for o in orders] == ["lost-1"]
    r = await c.post(ORDERS, json=body)  # the client's retry with the same id
    assert r.status_code == 409 and r.json()["code"] == "order_already_exists"


async def test_lose_response_loses_any_answer_a_retry_gets_too(sim):
    """Two lost answers are two: the retry's 409 is lost as well (it used to get through,
    so a "lose 2" fault lost one). only_success keeps the narrower fault."""
    c = sim.client()
    t = sim.open_tickers()[6]
    body = order_body(t, count=1, price=5, client_order_id="lost-2")
    await sim.control("lose_response", status=502, count=2,
                      path_prefix="/trade-api/v2/portfolio/events/orders")
    assert (await c.post(ORDERS, json=body)).status_code == 502  # placed, answer lost
    assert (await c.post(ORDERS, json=body)).status_code == 502  # 409, answer lost
    assert sim.sim.faults.lost_count == 0
    r = await c.post(ORDERS, json=body)
    assert r.status_code == 409 and r.json()["code"] == "order_already_exists"
    await sim.control("lose_response", status=504, count=1, only_success=True,
                      path_prefix="/trade-api/v2/portfolio/events/orders")
    assert (await c.post(ORDERS, json=body)).status_code == 409  # a refusal: kept
    assert sim.sim.faults.lost_count == 1
    orders = (await c.get("/portfolio/orders", params={"ticker": t})).json()["orders"]
    assert [o["client_order_id"] for o in orders] == ["lost-2"]
