"""WebSocket on the simulator: commands and their replies, per-subscription seq,
snapshots, update_subscription, private channels, lifecycle, the heartbeat ping."""

from __future__ import annotations

import asyncio
import base64
import json
import os

from tests import test_sim_fixtures as fx
from tests.test_sim_fixtures import ORDERS, drain, order_body, recv_json, recv_until, signer

sim = fx.sim
quiet_sim = fx.quiet_sim


def _cmd(ws, id_: int, cmd: str, **params):
    body = {"id": id_, "cmd": cmd}
    if params:
        body["params"] = params
    return ws.send(json.dumps(body))


def _apply(book: dict, msg: dict) -> None:
    m = msg["msg"]
    if msg["type"] == "orderbook_snapshot":
        book.clear()
        for side in ("yes", "no"):
            for p, q in m.get(f"{side}_dollars_fp", []):
                book[(side, p)] = float(q)
    else:
        k = (m["side"], m["price_dollars"])
        book[k] = book.get(k, 0) + float(m["delta_fp"])
        if abs(book[k]) < 1e-9:
            del book[k]


async def test_orderbook_snapshot_then_deltas_rebuild_the_book_with_contiguous_seq(sim):
    t = sim.open_tickers()[5]
    ws = await sim.ws()
    await _cmd(ws, 1, "subscribe", channels=["orderbook_delta"], market_ticker=t)
    ack = await recv_json(ws)
    assert isinstance(ack.pop("sending_ts_ms"), int)  # on every message since Kalshi v3.32
    assert ack == {"id": 1, "type": "subscribed", "msg": {"channel": "orderbook_delta",
                                                          "sid": ack["msg"]["sid"]}}
    snap = await recv_json(ws)
    assert snap["type"] == "orderbook_snapshot" and snap["seq"] == 1
    assert snap["msg"]["market_ticker"] == t and "market_id" in snap["msg"]
    book: dict = {}
    _apply(book, snap)
    await sim.control("advance", seconds=300)
    msgs = await drain(ws)
    assert msgs and all(m["type"] == "orderbook_delta" for m in msgs)
    assert [m["seq"] for m in msgs] == list(range(2, 2 + len(msgs)))
    for m in msgs:
        _apply(book, m)
    rest = (await sim.client().get(f"/markets/{t}/orderbook")).json()["orderbook_fp"]
    expect = {(side, p): float(q) for side in ("yes", "no")
              for p, q in rest[f"{side}_dollars"]}
    assert book == expect
    await ws.close()


async def test_update_subscription_add_delete_get_snapshot_and_list(sim):
    t1, t2, t3 = sim.open_tickers()[4:7]
    ws = await sim.ws()
    await _cmd(ws, 1, "subscribe", channels=["orderbook_delta", "ticker"], market_tickers=[t1])
    first = await recv_until(ws, lambda m: m.get("msg", {}).get("channel") == "ticker")
    ob_sid = first[0]["msg"]["sid"]
    tk_sid = first[-1]["msg"]["sid"]
    assert [m["type"] for m in first] == ["subscribed", "orderbook_snapshot", "subscribed"]

    await _cmd(ws, 2, "update_subscription", sids=[ob_sid], market_tickers=[t2, t3],
               action="add_markets")
    got = await recv_until(ws, lambda m: m["type"] == "ok")
    snaps = [m for m in got if m["type"] == "orderbook_snapshot"]
    assert [s["msg"]["market_ticker"] for s in snaps] == [t2, t3]
    assert [s["seq"] for s in snaps] == [2, 3]
    ok = got[-1]
    assert (ok["id"], ok["sid"], ok["seq"]) == (2, ob_sid, 3)
    assert ok["msg"]["market_tickers"] == sorted([t1, t2, t3])

    await _cmd(ws, 3, "update_subscription", sid=ob_sid, market_ticker=t1,
               action="delete_markets")
    ok = (await recv_until(ws, lambda m: m["type"] == "ok"))[-1]
    assert ok["msg"]["market_tickers"] == sorted([t2, t3])

    await _cmd(ws, 4, "update_subscription", sids=[ob_sid], market_tickers=[t2],
               action="get_snapshot")
    snap = (await recv_until(ws, lambda m: m["type"] == "orderbook_snapshot"))[-1]
    assert (snap["id"], snap["seq"], snap["msg"]["market_ticker"]) == (4, 4, t2)

    await _cmd(ws, 5, "list_subscriptions")
    lst = (await recv_until(ws, lambda m: m.get("id") == 5))[-1]
    assert isinstance(lst.pop("sending_ts_ms"), int)
    assert lst == {"id": 5, "type": "ok", "msg": [{"channel": "orderbook_delta", "sid": ob_sid},
                                                  {"channel": "ticker", "sid": tk_sid}]}
    await _cmd(ws, 6, "unsubscribe", sids=[tk_sid])
    un = (await recv_until(ws, lambda m: m.get("id") == 6))[-1]
    assert (un["type"], un["sid"]) == ("unsubscribed", tk_sid) and un["seq"] >= 1
    await _cmd(ws, 7, "list_subscriptions")
    lst = (await recv_until(ws, lambda m: m.get("id") == 7))[-1]
    assert [s["sid"] for s in lst["msg"]] == [ob_sid]
    await ws.close()


async def test_command_errors_carry_the_spec_codes(sim):
    t = sim.open_tickers()[0]
    ws = await sim.ws()
    cases = [
        ({"id": 1, "cmd": "subscribe"}, 2),
        ({"id": 2, "cmd": "subscribe", "params": {}}, 3),
        ({"id": 3, "cmd": "subscribe", "params": {"channels": ["nope"]}}, 8),
        ({"id": 4, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"]}}, 14),
        ({"id": 5, "cmd": "unsubscribe", "params": {}}, 4),
        ({"id": 6, "cmd": "unsubscribe", "params": {"sids": [999]}}, 7),
        ({"id": 7, "cmd": "frobnicate", "params": {}}, 5),
        ({"id": 8, "cmd": "update_subscription",
          "params": {"sids": [1, 2], "action": "add_markets"}}, 12),
        ({"id": 9, "cmd": "update_subscription",
          "params": {"sid": 999, "action": "add_markets"}}, 7),
        ({"id": 10, "cmd": "subscribe",
          "params": {"channels": ["ticker"], "market_tickers": ["NOPE-X"]}}, 11),
    ]
    for body, code in cases:
        await ws.send(json.dumps(body))
        err = await recv_json(ws)
        assert err["type"] == "error" and err["id"] == body["id"], err
        assert err["msg"]["code"] == code, (body, err)
        assert err["msg"]["msg"]
    await ws.send("not json")
    assert (await recv_json(ws))["msg"]["code"] == 1
    await _cmd(ws, 20, "subscribe", channels=["trade"], market_ticker=t)
    sid = (await recv_json(ws))["msg"]["sid"]
    await _cmd(ws, 21, "update_subscription", sid=sid, market_ticker=t)
    assert (await recv_json(ws))["msg"]["code"] == 15
    await _cmd(ws, 22, "update_subscription", sid=sid, market_ticker=t, action="explode")
    assert (await recv_json(ws))["msg"]["code"] == 13
    await _cmd(ws, 23, "update_subscription", sid=sid, action="add_markets")
    assert (await recv_json(ws))["msg"]["code"] == 14
    await _cmd(ws, 24, "update_subscription", sid=sid, market_ticker=t, action="get_snapshot")
    assert (await recv_json(ws))["msg"]["code"] == 13
    await ws.close()


async def test_private_channels_follow_a_trade(quiet_sim):
    h = quiet_sim
    t = h.open_tickers()[0]
    a, b = h.client(), h.client(signer("other-key"))
    ws = await h.ws()
    other_ws = await h.ws(signer("other-key"))
    await _cmd(ws, 1, "subscribe", channels=["fill", "user_orders", "market_positions",
                                             "trade", "ticker"])
    await _cmd(other_ws, 1, "subscribe", channels=["fill"])
    await drain(ws)
    await drain(other_ws)
    r = await a.post(ORDERS, json=order_body(t, count=3, price=45, client_order_id="ws-1"))
    oid = r.json()["order_id"]
    created = await drain(ws)
    uo = [m for m in created if m["type"] == "user_order"]
    assert uo and uo[0]["msg"]["status"] == "resting" and uo[0]["msg"]["order_id"] == oid
    assert uo[0]["msg"]["client_order_id"] == "ws-1"
    await b.post(ORDERS, json=order_body(t, side="no", count=2, price=55))
    msgs = await drain(ws)
    kinds = [m["type"] for m in msgs]
    for kind in ("trade", "fill", "market_position", "user_order", "ticker"):
        assert kind in kinds, kinds
    fill = next(m for m in msgs if m["type"] == "fill")["msg"]
    assert (fill["order_id"], fill["count_fp"], fill["yes_price_dollars"]) == (oid, "2.00",
                                                                             "0.4500")
    assert fill["is_taker"] is False and fill["post_position_fp"] == "2.00"
    assert fill["client_order_id"] == "ws-1"
    pos = next(m for m in msgs if m["type"] == "market_position")["msg"]
    assert (pos["market_ticker"], pos["position_fp"], pos["position_cost_dollars"]) == (
        t, "2.00", "0.9000")
    trade = next(m for m in msgs if m["type"] == "trade")
    assert trade["msg"]["taker_outcome_side"] == "no" and trade["seq"] == 1
    # the other account sees only its own fill
    theirs = [m for m in await drain(other_ws) if m["type"] == "fill"]
    assert len(theirs) == 1 and theirs[0]["msg"]["is_taker"] is True
    await ws.close()
    await other_ws.close()


async def test_lifecycle_events_on_schedule(quiet_sim):
    h = quiet_sim
    ws = await h.ws()
    await _cmd(ws, 1, "subscribe", channels=["market_lifecycle_v2"])
    await recv_json(ws)
    await h.control("advance", seconds=3600 + 61)
    msgs = await drain(ws)
    kinds = {(m["type"], m["msg"].get("event_type")) for m in msgs}
    for k in (("event_lifecycle", None), ("market_lifecycle_v2", "created"),
              ("market_lifecycle_v2", "activated"), ("market_lifecycle_v2", "determined"),
              ("market_lifecycle_v2", "settled")):
        assert k in kinds, k
    assert [m["seq"] for m in msgs] == list(range(1, len(msgs) + 1))
    det = next(m for m in msgs if m["msg"].get("event_type") == "determined")["msg"]
    assert det["result"] in ("yes", "no") and det["settlement_value"] in ("1.0000", "0.0000")
    await ws.close()


async def test_ticker_initial_snapshot(sim):
    t = sim.open_tickers()[3]
    ws = await sim.ws()
    await _cmd(ws, 1, "subscribe", channels=["ticker"], market_tickers=[t],
               send_initial_snapshot=True)
    got = await recv_until(ws, lambda m: m["type"] == "ticker")
    tk = got[-1]["msg"]
    assert tk["market_ticker"] == t and float(tk["yes_bid_dollars"]) > 0
    await ws.close()


async def test_server_pings_with_heartbeat_payload(tmp_path):
    handle, server = await fx.start_sim(tmp_path, ws_ping_interval=0.3)
    try:
        port = int(handle.base.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        hdrs = signer().headers("GET", "/trade-api/ws/v2")
        lines = ["GET /trade-api/ws/v2 HTTP/1.1", f"Host: 127.0.0.1:{port}",
                 "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13", *[f"{k}: {v}" for k, v in hdrs.items()]]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101")
        frame = await asyncio.wait_for(reader.readexactly(2), 5)
        opcode, length = frame[0] & 0x0F, frame[1] & 0x7F
        payload = await reader.readexactly(length)
        assert (opcode, payload) == (0x9, b"heartbeat")
        writer.close()
    finally:
        await fx.stop_sim(handle, server)
