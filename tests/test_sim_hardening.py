"""Hostile and malformed input: each case once made the simulator stall, answer a 500 or
accept what the spec refuses. Every answer must be quick, JSON and a 4xx."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from app.kalshi.signing import HEADER_TIMESTAMP
from tests import test_sim_fixtures as fx
from tests.test_sim_fixtures import ORDERS, PREFIX, drain, order_body, place, recv_json

sim = fx.sim
quiet_sim = fx.quiet_sim


async def _ws_handshake_status(sim, headers: dict[str, str]) -> bytes:
    """The status line the simulator answers a WebSocket upgrade with (raw bytes sent)."""
    port = int(sim.base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = ("GET /trade-api/ws/v2 HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\n"
            "connection: Upgrade\r\nsec-websocket-version: 13\r\n"
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write((head + extra + "\r\n").encode("utf-8"))
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()


def _json_4xx(r: httpx.Response, status: int = 400) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


COUNTS = ["1e1000000", "1e3", "1E3", "-1", "+1", " 1", "1.005", "0x10", "1_000", "١٢",
          "9" * 30, "NaN", "Infinity", "", 10, None, 1.5, [], {}]
PRICES = ["1e30", "1e-2", "5e-1", "-0.5", "0.5.0", "0,50", "0." + "5" * 40, "Infinity", "NaN",
          "²", "0", "1", "1.0000", 0.5, None]


async def test_counts_and_prices_are_parsed_strictly(quiet_sim):
    a = quiet_sim.client()
    t = quiet_sim.open_tickers()[0]
    o = await place(a, t, count=1, price=5)
    amend = f"{ORDERS}/{o['order_id']}/amend"
    for count in COUNTS:
        t0 = time.monotonic()
        r = await a.post(ORDERS, json={**order_body(t), "count": count})
        assert time.monotonic() - t0 < 1.0, count
        assert _json_4xx(r)["code"] in ("invalid_parameters", "missing_parameters"), count
        r = await a.post(amend, json={"ticker": t, "side": "bid", "price": "0.05",
                                      "count": count})
        _json_4xx(r)
        r = await a.post(f"{ORDERS}/{o['order_id']}/decrease", json={"reduce_by": count})
        _json_4xx(r)
    for price in PRICES:
        _json_4xx(await a.post(ORDERS, json={**order_body(t), "price": price}))
        _json_4xx(await a.post(amend, json={"ticker": t, "side": "bid", "price": price,
                                            "count": "1"}))
    got = (await a.get(f"/portfolio/orders/{o['order_id']}")).json()["order"]
    assert (got["status"], got["remaining_count_fp"]) == ("resting", "1.00")


async def test_bad_timestamps_are_401_everywhere(sim):
    s = fx.signer()
    raw = httpx.AsyncClient(base_url=sim.base, timeout=5)
    try:
        for ts in ("9" * 5000, "1²", "١٧٦٤٠٨٦٤٠٠٠٠٠", "-5", "1e12", "1.5"):
            for path in (PREFIX + "/markets", PREFIX + "/portfolio/balance"):
                h = {**s.headers("GET", path), HEADER_TIMESTAMP: ts.encode()}
                r = await raw.get(path, headers=h)
                assert _json_4xx(r, 401)["code"] == "authentication_error", ts
            h = {**s.headers("GET", "/trade-api/ws/v2"), HEADER_TIMESTAMP: ts}
            assert (await _ws_handshake_status(sim, h)).startswith(b"HTTP/1.1 401"), ts
    finally:
        await raw.aclose()


async def test_batch_create_refuses_a_non_string_client_order_id(quiet_sim):
    a = quiet_sim.client()
    t = quiet_sim.open_tickers()[0]
    for bad in ({}, [], 5, True):
        r = await a.post(f"{ORDERS}/batched",
                         json={"orders": [order_body(t), {**order_body(t),
                                                          "client_order_id": bad}]})
        _json_4xx(r)
    r = await a.post(ORDERS, json={**order_body(t), "client_order_id": {}})
    _json_4xx(r)
    # nothing was placed by the refused batches
    assert (await a.get("/portfolio/orders")).json()["orders"] == []


async def test_binary_ws_frames_get_an_error_and_the_socket_stays_usable(sim):
    ws = await sim.ws()
    await ws.send(b"\x00\x01binary")
    msg = await recv_json(ws)
    assert msg["type"] == "error" and msg["msg"]["code"] == 1
    await ws.send(json.dumps({"id": 2, "cmd": "list_subscriptions"}))
    assert (await recv_json(ws))["type"] == "ok"
    await ws.close()


async def test_identical_subscriptions_merge_and_subscriptions_are_capped(sim):
    ws = await sim.ws()
    for i in range(1, 301):
        await ws.send(json.dumps({"id": i, "cmd": "subscribe",
                                  "params": {"channels": ["ticker"]}}))
    replies = await fx.recv_until(ws, lambda m: m.get("id") == 300, timeout=10)
    sids = {m["msg"]["sid"] for m in replies if m["type"] == "subscribed"}
    assert len(sids) == 1  # 300 identical subscribes, one subscription
    await ws.send(json.dumps({"id": 999, "cmd": "list_subscriptions"}))
    got = await fx.recv_until(ws, lambda m: m.get("id") == 999)
    assert len(got[-1]["msg"]) == 1
    # distinct subscriptions stop at the per-connection cap with Kalshi's code 27
    tickers = list(sim.sim.exchange.markets)
    errors = []
    for i, t in enumerate(tickers[:40]):
        for j, ch in enumerate(("trade", "fill", "user_orders", "market_positions")):
            await ws.send(json.dumps({"id": 1000 + 10 * i + j, "cmd": "subscribe",
                                      "params": {"channels": [ch], "market_ticker": t}}))
    msgs = await drain(ws)
    errors = [m for m in msgs if m["type"] == "error"]
    subscribed = [m for m in msgs if m["type"] == "subscribed"]
    assert len(subscribed) == 127 and errors and errors[0]["msg"]["code"] == 27
    await ws.close()


async def test_request_size_limits(sim):
    c = sim.client()
    big = {"ticker": "x" * (2 << 20)}
    r = await c.post(ORDERS, json=big)
    assert _json_4xx(r, 413)["code"] == "payload_too_large"
    # a 1 MB header: refused with 431 before it is parsed, connection closed
    port = int(sim.base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * (1 << 20)
                 + b"\r\n\r\n")
    try:
        await writer.drain()
    except (OSError, ConnectionError):
        pass
    head = await asyncio.wait_for(reader.read(200), 5)
    assert head.startswith(b"HTTP/1.1 431")
    writer.close()
    # ordinary requests still work
    assert (await c.get("/exchange/status")).status_code == 200


async def test_signatures_cover_the_path_as_sent(sim):
    s = fx.signer()
    raw = httpx.AsyncClient(base_url=sim.base, timeout=5)
    try:
        sent = PREFIX + "/portfolio/orders/abc%20def"
        r = await raw.get(sent, headers=s.headers("GET", sent))
        assert _json_4xx(r, 404)["code"] == "not_found"  # authenticated, then not found
        decoded = PREFIX + "/portfolio/orders/abc def"
        r = await raw.get(sent, headers=s.headers("GET", decoded))
        assert _json_4xx(r, 401)["code"] == "authentication_error"
        # the query is not signed
        path = PREFIX + "/portfolio/orders"
        r = await raw.get(path + "?limit=1", headers=s.headers("GET", path))
        assert r.status_code == 200
    finally:
        await raw.aclose()
