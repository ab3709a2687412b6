"""WebSocket client against a small real websockets server on loopback.

The server verifies the signed handshake, answers subscribe / unsubscribe /
update_subscription / list_subscriptions with command ids, keeps its own order
books and sends orderbook_snapshot + orderbook_delta with a per-subscription
seq. Tests make it skip a seq, drop every connection or go silent, and assert
what a consumer would notice: the local book equals the server's book again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from app.kalshi import signing
from app.kalshi.errors import KalshiAuthError
from app.kalshi.ws import DELTA_RUN, KalshiWS, WsCommandError, WsMessage, WsNotConnected
from app.kalshi.ws_types import RUN_MAX, MessageQueue
from testkit.ws import ws_frame

WS_PATH = "/trade-api/ws/v2"
_KEY = signing.generate_private_key()
T1 = "KXBTCD-25NOV2517-T97499.99"
T2 = "KXBTCD-25NOV2517-T97749.99"


def _fmt(d: Decimal, places: int) -> str:
    return f"{d:.{places}f}"


class FakeWsExchange:
    def __init__(self, *, ping_interval: float | None = 20, get_snapshot: bool = True) -> None:
        self.key_id = "ws-key"
        self.public = {self.key_id: _KEY.public_key()}
        self.ping_interval = ping_interval
        self.get_snapshot_supported = get_snapshot
        self.books: dict[str, dict[str, dict[Decimal, Decimal]]] = {
            T1: {"yes": {Decimal("0.55"): Decimal(10)}, "no": {Decimal("0.40"): Decimal(5)}},
            T2: {"yes": {Decimal("0.20"): Decimal(3)}, "no": {}},
        }
        self.conns: set[ServerConnection] = set()
        self.subs: dict[ServerConnection, dict[int, dict[str, Any]]] = {}
        self.next_sid = 1
        self.commands: list[dict[str, Any]] = []
        self.handshakes = 0
        self.rejected = 0
        self.silent = False
        self.sending_ts = False  # stamp every message with sending_ts_ms (API 3.32+)
        self.held: dict[ServerConnection, list[bytes]] | None = None  # see together()

    # ------------------------------------------------------------------ handshake

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        h = request.headers
        pub = self.public.get(h.get(signing.HEADER_KEY, ""))
        ts = h.get(signing.HEADER_TIMESTAMP, "")
        sig = h.get(signing.HEADER_SIGNATURE, "")
        ok = (
            pub is not None
            and ts.isdigit()
            and abs(int(ts) - time.time() * 1000) < 5000
            and signing.verify(pub, sig, ts, "GET", request.path)
            and signing.signing_path(request.path) == WS_PATH
        )
        if not ok:
            self.rejected += 1
            body = json.dumps({"error": {"code": "authentication_error"}}).encode()
            return Response(
                401, "Unauthorized", Headers({"Content-Type": "application/json"}), body
            )
        self.handshakes += 1
        return None

    # ------------------------------------------------------------------ session

    async def handler(self, conn: ServerConnection) -> None:
        self.conns.add(conn)
        self.subs[conn] = {}
        try:
            async for raw in conn:
                cmd = json.loads(raw)
                self.commands.append(cmd)
                if not self.silent:
                    await self.on_command(conn, cmd)
        except Exception:
            pass
        finally:
            self.conns.discard(conn)
            self.subs.pop(conn, None)

    async def on_command(self, conn: ServerConnection, cmd: dict[str, Any]) -> None:
        cid, name, params = cmd.get("id"), cmd.get("cmd"), cmd.get("params") or {}
        handler = self._COMMANDS.get(name)
        if handler is None:
            await self.error(conn, cid, 5, "Unknown command")
            return
        await handler(self, conn, cid, params)

    async def error(self, conn: ServerConnection, cid: Any, code: int, text: str) -> None:
        await self.send(conn, {"id": cid, "type": "error", "msg": {"code": code, "msg": text}})

    async def on_subscribe(self, conn: ServerConnection, cid: Any, params: dict) -> None:
        channel = params["channels"][0]
        if channel not in ("orderbook_delta", "fill", "ticker", "trade", "market_lifecycle_v2"):
            await self.error(conn, cid, 8, "Unknown channel name")
            return
        sid = self.next_sid
        self.next_sid += 1
        tickers = params.get("market_tickers") or (
            [params["market_ticker"]] if "market_ticker" in params else []
        )
        self.subs[conn][sid] = {"channel": channel, "tickers": list(tickers), "seq": 0}
        await self.send(
            conn, {"id": cid, "type": "subscribed", "msg": {"channel": channel, "sid": sid}}
        )
        if channel == "orderbook_delta":
            for t in tickers:
                await self.snapshot(conn, sid, t)

    async def on_unsubscribe(self, conn: ServerConnection, cid: Any, params: dict) -> None:
        for sid in params.get("sids", []):
            sub = self.subs[conn].pop(sid, None)
            await self.send(
                conn,
                {"id": cid, "type": "unsubscribed", "sid": sid,
                 "seq": (sub or {}).get("seq", 0) + 1},
            )

    async def on_update(self, conn: ServerConnection, cid: Any, params: dict) -> None:
        sid = (params.get("sids") or [params.get("sid")])[0]
        if params.get("action") != "get_snapshot":
            return
        if not self.get_snapshot_supported:
            await self.error(conn, cid, 13, "Unsupported action")
            return
        for t in params.get("market_tickers") or self.subs[conn][sid]["tickers"]:
            await self.snapshot(conn, sid, t, cid=cid)

    async def on_list(self, conn: ServerConnection, cid: Any, params: dict) -> None:
        subs = [{"channel": s["channel"], "sid": sid} for sid, s in self.subs[conn].items()]
        await self.send(conn, {"id": cid, "type": "ok", "msg": subs})

    _COMMANDS: ClassVar[dict[str, Any]] = {
        "subscribe": on_subscribe,
        "unsubscribe": on_unsubscribe,
        "update_subscription": on_update,
        "list_subscriptions": on_list,
    }

    async def send(self, conn: ServerConnection, payload: dict[str, Any]) -> None:
        if self.sending_ts:
            payload = {**payload, "sending_ts_ms": int(time.time() * 1000)}
        if self.held is not None:
            self.held.setdefault(conn, []).append(ws_frame(json.dumps(payload).encode()))
            return
        await conn.send(json.dumps(payload))

    @contextlib.asynccontextmanager
    async def together(self):
        """What is sent inside goes out as one write per connection: the client reads it
        all at once (frames framed here, as the server would)."""
        self.held = {}
        try:
            yield
        finally:
            held, self.held = self.held, None
            for conn, frames in held.items():
                conn.transport.write(b"".join(frames))

    async def snapshot(
        self, conn: ServerConnection, sid: int, ticker: str, cid: int | None = None
    ) -> None:
        sub = self.subs[conn][sid]
        sub["seq"] += 1
        book = self.books[ticker]
        msg: dict[str, Any] = {"market_ticker": ticker, "market_id": "m-" + ticker}
        for side in ("yes", "no"):
            if book[side]:
                msg[f"{side}_dollars_fp"] = [
                    [_fmt(p, 4), _fmt(c, 2)] for p, c in sorted(book[side].items())
                ]
        payload = {"type": "orderbook_snapshot", "sid": sid, "seq": sub["seq"], "msg": msg}
        if cid is not None:
            payload["id"] = cid
        await self.send(conn, payload)

    # ------------------------------------------------------------------ test controls

    async def delta(
        self, ticker: str, side: str, price: str, delta: str, *, skip: bool = False
    ) -> None:
        """Change the server book; send the delta to subscribers (or only burn its seq)."""
        p, d = Decimal(price), Decimal(delta)
        levels = self.books[ticker][side]
        new = levels.get(p, Decimal(0)) + d
        assert new >= 0
        if new == 0:
            levels.pop(p, None)
        else:
            levels[p] = new
        for conn, subs in list(self.subs.items()):
            for sid, sub in subs.items():
                if sub["channel"] != "orderbook_delta" or ticker not in sub["tickers"]:
                    continue
                sub["seq"] += 1
                if skip:
                    continue
                await self.send(
                    conn,
                    {
                        "type": "orderbook_delta",
                        "sid": sid,
                        "seq": sub["seq"],
                        "msg": {
                            "market_ticker": ticker,
                            "market_id": "m-" + ticker,
                            "price_dollars": _fmt(p, 4),
                            "delta_fp": _fmt(d, 2),
                            "side": side,
                            "ts_ms": int(time.time() * 1000),
                        },
                    },
                )

    async def lifecycle(self, ticker: str, event: str) -> None:
        for conn, subs in list(self.subs.items()):
            for sid, sub in subs.items():
                if sub["channel"] == "market_lifecycle_v2":
                    sub["seq"] += 1
                    await self.send(conn, {"type": "market_lifecycle_v2", "sid": sid,
                                           "seq": sub["seq"],
                                           "msg": {"market_ticker": ticker,
                                                   "event_type": event}})

    async def fill(self, trade_id: str) -> None:
        for conn, subs in list(self.subs.items()):
            for sid, sub in subs.items():
                if sub["channel"] == "fill":
                    await self.send(
                        conn,
                        {
                            "type": "fill",
                            "sid": sid,
                            "msg": {
                                "trade_id": trade_id,
                                "order_id": "o1",
                                "market_ticker": T1,
                                "is_taker": True,
                                "side": "yes",
                                "yes_price_dollars": "0.5600",
                                "count_fp": "3.00",
                                "fee_cost": "0.0200",
                                "action": "buy",
                                "ts_ms": 1,
                            },
                        },
                    )

    def drop_all(self) -> None:
        for conn in list(self.conns):
            conn.transport.abort()

    def book_maps(self, ticker: str) -> tuple[dict, dict]:
        b = self.books[ticker]
        return dict(b["yes"]), dict(b["no"])


async def start_fake(exchange: FakeWsExchange):
    server = await serve(
        exchange.handler,
        "127.0.0.1",
        0,
        process_request=exchange.process_request,
        ping_interval=exchange.ping_interval,
        compression=None,
    )
    port = server.sockets[0].getsockname()[1]
    return server, f"ws://127.0.0.1:{port}{WS_PATH}"


@pytest.fixture
async def exchange():
    ex = FakeWsExchange()
    server, ex.url = await start_fake(ex)
    yield ex
    server.close()
    await server.wait_closed()


def fake_client(ex: FakeWsExchange, **kw: Any) -> KalshiWS:
    kw.setdefault("backoff_base", 0.02)
    kw.setdefault("backoff_max", 0.2)
    kw.setdefault("snapshot_timeout", 1.0)
    return KalshiWS(ex.url, signing.Signer(ex.key_id, _KEY), **kw)


async def _until(cond, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not cond():  # noqa: ASYNC110 - polling observable state
            await asyncio.sleep(0.01)


async def _next_of(ws: KalshiWS, mtype: str, within: float = 5.0):
    async with asyncio.timeout(within):
        while True:
            m = await ws.recv()
            if m.type == mtype:
                return m


# ------------------------------------------------------------------ handshake & commands


async def test_signed_handshake_is_verified(exchange):
    async with fake_client(exchange) as ws:
        await ws.wait_connected(within=5)
        assert exchange.handshakes == 1 and exchange.rejected == 0
        first = await ws.recv()
        assert first.type == "client.connected" and first.msg == {"reconnect": False}


async def test_wrong_key_fails_with_auth_error_instead_of_looping(exchange):
    ws = KalshiWS(
        exchange.url,
        signing.Signer(exchange.key_id, signing.generate_private_key()),
        backoff_base=0.01,
    )
    await ws.start()
    with pytest.raises(KalshiAuthError):
        await ws.wait_connected(within=5)
    with pytest.raises(KalshiAuthError):  # a consumer loop ends instead of waiting forever
        async for _ in ws:
            pass
    await ws.close()
    assert exchange.rejected == 1 and exchange.handshakes == 0


async def test_consumer_loop_ends_when_the_client_is_closed(exchange):
    ws = fake_client(exchange)
    await ws.start()
    await ws.wait_connected(within=5)
    seen = []

    async def consume():
        async for m in ws:
            seen.append(m.type)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    await ws.close()
    await asyncio.wait_for(task, 2)
    assert seen == ["client.connected", "client.disconnected"]


async def test_every_message_may_carry_sending_ts_ms(exchange):
    """Since 3.32 any message may carry a top-level ``sending_ts_ms``: command replies, errors,
    snapshots, deltas and data all work as before, and the consumer sees the venue's time."""
    exchange.sending_ts = True
    before = int(time.time() * 1000)
    async with fake_client(exchange) as ws:
        await ws.wait_connected(within=5)
        await ws.subscribe("orderbook_delta", market_tickers=[T1])
        await ws.subscribe("fill")
        with pytest.raises(WsCommandError):
            await ws.subscribe("no_such_channel")
        assert len(await ws.list_subscriptions()) == 2
        await _until(lambda: ws.books[T1].valid)
        await exchange.delta(T1, "yes", "0.56", "4")
        await exchange.fill("tr-1")
        delta = await _next_of(ws, "orderbook_delta")
        fill = await _next_of(ws, "fill")
        assert before <= delta.sending_ts_ms <= int(time.time() * 1000)
        assert fill.sending_ts_ms is not None and fill.data.trade_id == "tr-1"
        assert ws.books[T1].as_maps() == exchange.book_maps(T1)
        assert ws.stats.seq_gaps == 0 and ws.stats.dropped_deltas == 0


async def test_commands_carry_increasing_ids_and_errors_raise(exchange):
    async with fake_client(exchange) as ws:
        await ws.wait_connected(within=5)
        await ws.subscribe("ticker", market_tickers=[T1])
        await ws.subscribe("fill")
        with pytest.raises(WsCommandError) as info:
            await ws.subscribe("no_such_channel")
        assert info.value.ws_code == 8
        listed = await ws.list_subscriptions()
        assert sorted(s["channel"] for s in listed) == ["fill", "ticker"]
    ids = [c["id"] for c in exchange.commands]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


# ------------------------------------------------------------------ order book


async def test_book_is_built_from_snapshot_and_deltas(exchange):
    async with fake_client(exchange) as ws:
        await ws.subscribe("orderbook_delta", market_tickers=[T1, T2])
        await ws.wait_connected(within=5)
        await _until(lambda: ws.books[T1].valid and ws.books[T2].valid)
        await exchange.delta(T1, "yes", "0.55", "-4")
        await exchange.delta(T1, "yes", "0.56", "2.5")
        await exchange.delta(T2, "no", "0.70", "8")
        await exchange.delta(T1, "no", "0.40", "-5")
        await _until(lambda: ws.books[T1].updates >= 4 and ws.books[T2].updates >= 2)
        for t in (T1, T2):
            assert ws.books[t].as_maps() == exchange.book_maps(t)
        assert ws.books[T1].best_bid("yes") == (Decimal("0.56"), Decimal("2.5"))
        assert ws.books[T1].best_ask("no") == (Decimal("0.44"), Decimal("2.5"))
        assert ws.stats.seq_gaps == 0


async def test_seq_gap_asks_for_a_snapshot_and_rebuilds_the_book(exchange):
    async with fake_client(exchange) as ws:
        await ws.subscribe("orderbook_delta", market_tickers=[T1, T2])
        await ws.wait_connected(within=5)
        await _until(lambda: ws.books[T1].valid)
        await exchange.delta(T1, "yes", "0.55", "1")
        await exchange.delta(T1, "yes", "0.57", "6", skip=True)  # lost on the wire
        await exchange.delta(T1, "no", "0.41", "2")
        gap = await _next_of(ws, "client.seq_gap")
        assert gap.msg["channel"] == "orderbook_delta"
        await _next_of(ws, "client.resynced")
        await exchange.delta(T1, "yes", "0.57", "-1")
        await _until(lambda: ws.books[T1].as_maps() == exchange.book_maps(T1))
        assert ws.books[T1].valid
        assert ws.books[T2].as_maps() == exchange.book_maps(T2)
        snaps = [c for c in exchange.commands if c["cmd"] == "update_subscription"]
        assert snaps and snaps[0]["params"]["action"] == "get_snapshot"
        assert ws.stats.resubscribes == 0


async def test_seq_gap_falls_back_to_resubscribe_when_snapshot_refused():
    ex = FakeWsExchange(get_snapshot=False)
    server, ex.url = await start_fake(ex)
    try:
        async with fake_client(ex) as ws:
            await ws.subscribe("orderbook_delta", market_tickers=[T1])
            await ws.wait_connected(within=5)
            await _until(lambda: ws.books[T1].valid)
            await ex.delta(T1, "yes", "0.60", "9", skip=True)
            await ex.delta(T1, "yes", "0.61", "1")
            await _next_of(ws, "client.resynced")
            assert ws.stats.resubscribes == 1
            assert ws.books[T1].as_maps() == ex.book_maps(T1)
            assert [c["cmd"] for c in ex.commands].count("subscribe") == 2
    finally:
        server.close()
        await server.wait_closed()


def _own_book(book: dict[str, dict[Decimal, Decimal]], m) -> None:
    """A consumer that keeps its own book (KalshiWS with keep_books=False; with delta_runs,
    a run's frames are its deltas in order)."""
    for mtype, body in ([(f["type"], f["msg"]) for f in m.msg] if m.type == DELTA_RUN
                        else [(m.type, m.msg)]):
        _own_level(book, mtype, body)


def _own_level(book: dict[str, dict[Decimal, Decimal]], mtype: str, body: dict) -> None:
    if mtype == "orderbook_snapshot":
        for side in ("yes", "no"):
            book[side] = {Decimal(p): Decimal(q) for p, q in body.get(f"{side}_dollars_fp", ())}
    elif mtype == "orderbook_delta":
        levels = book[body["side"]]
        p = Decimal(body["price_dollars"])
        q = levels.get(p, Decimal(0)) + Decimal(body["delta_fp"])
        if q:
            levels[p] = q
        else:
            levels.pop(p)


@pytest.mark.parametrize("runs", [False, True], ids=["messages", "delta-runs"])
async def test_without_its_own_books_a_gap_still_resyncs_and_batches_keep_order(exchange,
                                                                                 runs):
    """keep_books=False: KalshiWS keeps no levels, yet drops what follows a gap and asks for a
    snapshot as before; a consumer building its book from recv_batch() ends up exact - with
    deltas one message each or in runs (delta_runs: the feed's fast path)."""
    book: dict[str, dict[Decimal, Decimal]] = {"yes": {}, "no": {}}
    seen: list[str] = []
    biggest = 0
    async with fake_client(exchange, keep_books=False, delta_runs=runs) as ws:
        await ws.subscribe("orderbook_delta", market_tickers=[T1])
        await ws.wait_connected(within=5)
        await _until(lambda: ws.books[T1].valid)
        assert not hasattr(ws.books[T1], "yes")  # no copy of the levels
        await exchange.delta(T1, "yes", "0.55", "1")
        await exchange.delta(T1, "yes", "0.57", "6", skip=True)  # lost on the wire
        await exchange.delta(T1, "no", "0.41", "2")  # after the gap: never handed out
        await exchange.delta(T1, "yes", "0.55", "-3")
        while "client.resynced" not in seen:
            async with asyncio.timeout(5):
                batch = await ws.recv_batch()
            biggest = max(biggest, len(batch))
            for m in batch:
                seen.append(m.type)
                _own_book(book, m)
        await exchange.delta(T1, "yes", "0.57", "-1")
        while (book["yes"], book["no"]) != exchange.book_maps(T1):
            async with asyncio.timeout(5):
                for m in await ws.recv_batch():
                    _own_book(book, m)
        assert ws.stats.seq_gaps == 1 and ws.stats.resyncs == 1 and ws.books[T1].valid
        assert ws.stats.dropped_deltas == 1  # the one after that, with the book out of sync
        assert seen.count("orderbook_snapshot") == 2 and "client.seq_gap" in seen
        assert (DELTA_RUN in seen) == runs and ("orderbook_delta" in seen) != runs
        assert biggest > 1  # connected + snapshot + deltas waiting: handed over at once
    rest: list[str] = []
    with pytest.raises(WsNotConnected):  # closed: what waits is handed out, then the end
        while True:
            rest += [m.type for m in await ws.recv_batch()]
    assert rest[-1:] == ["client.disconnected"]


async def test_consumer_reported_inconsistent_book_is_resynced(exchange):
    """A consumer whose own book cannot take a delta calls resync(): the market is out of
    sync (its deltas dropped) until a fresh snapshot has come."""
    async with fake_client(exchange, keep_books=False) as ws:
        await ws.subscribe("orderbook_delta", market_tickers=[T1, T2])
        await ws.wait_connected(within=5)
        await _until(lambda: ws.books[T1].valid and ws.books[T2].valid)
        assert not ws.resync("KXNOT-FOLLOWED")
        assert ws.resync(T1)
        assert not ws.books[T1].valid and ws.books[T2].valid
        await _next_of(ws, "client.resynced")
        assert ws.books[T1].valid
        snaps = [c for c in exchange.commands if c["cmd"] == "update_subscription"]
        assert [s["params"]["market_tickers"] for s in snaps] == [[T1]]
        assert snaps[0]["params"]["action"] == "get_snapshot"


# ------------------------------------------------------------------ reconnect & heartbeat


async def test_dropped_connection_reconnects_and_resubscribes(exchange):
    async with fake_client(exchange) as ws:
        await ws.subscribe("orderbook_delta", market_tickers=[T1])
        await ws.subscribe("fill")
        await ws.wait_connected(within=5)
        await _until(lambda: ws.books[T1].valid)
        await exchange.fill("f1")
        assert (await _next_of(ws, "fill")).data.trade_id == "f1"

        exchange.drop_all()
        await _next_of(ws, "client.disconnected")
        assert not ws.books[T1].valid  # never trade on a book from a dead connection
        # the market moves while the client is away
        await exchange.delta(T1, "yes", "0.58", "4")
        back = await _next_of(ws, "client.connected")
        assert back.msg == {"reconnect": True}
        await _until(lambda: ws.books[T1].valid)
        assert ws.books[T1].as_maps() == exchange.book_maps(T1)
        await exchange.fill("f2")
        fill = await _next_of(ws, "fill")
        assert fill.data.trade_id == "f2" and fill.data.count_fp == Decimal("3")
    assert exchange.handshakes == 2
    assert [c["params"]["channels"][0] for c in exchange.commands if c["cmd"] == "subscribe"] == [
        "orderbook_delta",
        "fill",
        "orderbook_delta",
        "fill",
    ]
    assert ws.stats.reconnects == 1


async def test_subscriptions_made_before_the_server_is_up_are_sent_on_connect():
    ex = FakeWsExchange()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ex.url = f"ws://127.0.0.1:{port}{WS_PATH}"
    ws = fake_client(ex)
    await ws.subscribe("orderbook_delta", market_tickers=[T2])
    await ws.start()
    await asyncio.sleep(0.3)  # a few refused attempts
    server = await serve(ex.handler, "127.0.0.1", port, process_request=ex.process_request)
    try:
        await ws.wait_connected(within=5)
        await _until(lambda: ws.books[T2].valid)
        assert ws.books[T2].as_maps() == ex.book_maps(T2)
    finally:
        await ws.close()
        server.close()
        await server.wait_closed()


async def test_silent_connection_hits_the_heartbeat_timeout_and_reconnects():
    ex = FakeWsExchange(ping_interval=None)
    server, ex.url = await start_fake(ex)
    try:
        async with fake_client(ex, heartbeat_timeout=0.4, ping_interval=None) as ws:
            await ws.wait_connected(within=5)
            t0 = time.monotonic()
            await _until(lambda: ex.handshakes >= 2, within=5)
            assert 0.35 < time.monotonic() - t0 < 3
            assert ws.stats.heartbeat_timeouts >= 1
    finally:
        server.close()
        await server.wait_closed()


async def test_server_pings_keep_a_quiet_connection_alive():
    ex = FakeWsExchange(ping_interval=0.1)
    server, ex.url = await start_fake(ex)
    try:
        async with fake_client(ex, heartbeat_timeout=0.4, ping_interval=None) as ws:
            await ws.wait_connected(within=5)
            await asyncio.sleep(1.2)
            assert ws.stats.heartbeat_timeouts == 0 and ex.handshakes == 1
    finally:
        server.close()
        await server.wait_closed()


async def test_the_queue_wakes_its_consumer_after_a_cancelled_wait():
    """MessageQueue forgets a waiter once woken; a wait cancelled before any message (a
    consumer task stopped) leaves nothing that breaks the next consumer's wait."""
    q = MessageQueue()
    first = asyncio.create_task(q.wait())
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    for n in range(3):
        waiting = asyncio.create_task(q.wait())
        await asyncio.sleep(0)
        q.put(WsMessage("ticker", {"n": n}))
        assert await asyncio.wait_for(waiting, 2) is True
        assert q.take().msg == {"n": n}
    q.end()
    assert await asyncio.wait_for(q.wait(), 2) is False


async def test_delta_runs_keep_the_stream_order_with_every_other_message(exchange):
    """delta_runs: deltas read together come as one run, but a message of another kind
    between them ends it - the consumer sees delta, lifecycle, delta in stream order."""
    async with fake_client(exchange, keep_books=False, delta_runs=True) as ws:
        await ws.subscribe("orderbook_delta", market_tickers=[T1, T2])
        await ws.subscribe("market_lifecycle_v2")
        await ws.wait_connected(within=5)
        await _until(lambda: ws.books[T1].valid and ws.books[T2].valid)
        while ws.pending_messages():
            await ws.recv_batch()
        async with exchange.together():
            await exchange.delta(T1, "yes", "0.55", "1")
            await exchange.delta(T2, "yes", "0.20", "2")
            await exchange.lifecycle(T1, "deactivated")
            await exchange.delta(T1, "yes", "0.55", "-4")
        await _until(lambda: ws.pending_messages() == 4)
        got = await ws.recv_batch()
        assert [m.type for m in got] == [DELTA_RUN, "market_lifecycle_v2", DELTA_RUN]
        first, _, last = got
        assert [(f["msg"]["market_ticker"], f["msg"]["delta_fp"]) for f in first.msg] == [
            (T1, "1.00"), (T2, "2.00")]
        assert [f["msg"]["delta_fp"] for f in last.msg] == ["-4.00"]
        assert [f["seq"] for f in first.msg + last.msg] == [
            first.msg[0]["seq"], first.msg[0]["seq"] + 1, first.msg[0]["seq"] + 2]
        assert ws.lag() == (0, 0.0) and ws.stats.seq_gaps == 0


def test_delta_runs_need_a_consumer_that_keeps_its_own_books():
    with pytest.raises(ValueError, match="own books"):
        KalshiWS("ws://127.0.0.1:9/trade-api/ws/v2", None, delta_runs=True)


def test_a_run_counts_each_of_its_messages_and_ends_where_another_message_comes():
    """MessageQueue's runs: len() and the backpressure bound count every frame in a run; a
    run closes at another message, at the consumer's take and at RUN_MAX frames."""
    q = MessageQueue()
    for n in range(3):
        q.put_in_run({"n": n})
    q.put(WsMessage("ticker", {}))
    q.put_in_run({"n": 3})
    assert len(q) == 5 and [m.type for m in q.items] == [DELTA_RUN, "ticker", DELTA_RUN]
    assert [f["n"] for f in q.items[0].msg] == [0, 1, 2]
    q.put_in_run({"n": 4})  # the tail run is open
    assert [f["n"] for f in q.items[-1].msg] == [3, 4] and len(q) == 6
    assert q.take().type == DELTA_RUN and len(q) == 3
    assert len(q.take_all(1)) == 1 and len(q) == 2  # the ticker; the run stays
    q.put_in_run({"n": 5})  # a take closed the run: a new one
    assert [len(m.msg) for m in q.items] == [2, 1] and len(q) == 3
    assert len(q.take_all(10)) == 2 and len(q) == 0
    for n in range(RUN_MAX + 1):
        q.put_in_run({"n": n})
    assert [len(m.msg) for m in q.items] == [RUN_MAX, 1] and len(q) == RUN_MAX + 1
