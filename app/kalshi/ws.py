"""Kalshi WebSocket client (websockets >= 14 asyncio API).

One :class:`KalshiWS` holds one connection at a time and keeps it up:

* the handshake is signed afresh for every attempt (``GET /trade-api/ws/v2``,
  sent with ``additional_headers``);
* a lost connection is re-opened with exponential backoff and full jitter, and
  every subscription is sent again (new sids; seq restarts);
* commands carry increasing ids; replies are matched by id;
* every sequenced message is checked against its subscription's last ``seq``;
  a gap on ``orderbook_delta`` marks the affected books invalid and asks for a
  fresh snapshot (``update_subscription`` / ``get_snapshot``), falling back to
  unsubscribe + subscribe when no snapshot comes; gaps on other channels are
  reported to the consumer (``client.seq_gap``) so it can reconcile over REST;
* a heartbeat timeout closes a connection on which no frame at all (data, ping
  or pong) arrived for ``heartbeat_timeout`` seconds - Kalshi pings every 10 s;
* the queue to the consumer is bounded (``queue_max``): when it is full the
  reader stops reading, so a slow consumer never grows memory without limit
  (the exchange then sees a slow client and may drop it: Kalshi error 25);
  :meth:`KalshiWS.lag` tells the queue depth and the age of its oldest message;
* :attr:`KalshiWS.books` holds a local :class:`~app.kalshi.book.OrderBook` per
  market of every ``orderbook_delta`` subscription.

Consumers read :meth:`KalshiWS.recv` (or ``async for``): Kalshi's data messages,
plus the client's own events ``client.connected`` (``msg["reconnect"]`` tells a
re-connection, after which account state should be reconciled over REST),
``client.disconnected``, ``client.seq_gap`` and ``client.resynced``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.kalshi import signing
from app.kalshi.book import BookInconsistent, OrderBook
from app.kalshi.errors import KalshiAuthError, KalshiError
from app.kalshi.models import loads, parse_ws_msg
from app.kalshi.urls import Endpoints

log = logging.getLogger(__name__)

ORJSON_SAFE = frozenset({
    "orderbook_delta", "orderbook_snapshot", "ticker", "trade", "fill", "user_order",
    "market_position", "subscribed", "unsubscribed", "ok", "error",
})
CONTROL_TYPES = frozenset({"subscribed", "unsubscribed", "ok", "error"})
ORDERBOOK = "orderbook_delta"


class WsCommandError(KalshiError):
    """The exchange answered a WS command with ``type: error`` (``ws_code`` per asyncapi)."""

    def __init__(self, message: str, *, ws_code: int | None = None, raw: Any = None) -> None:
        super().__init__(message, raw=raw)
        self.ws_code = ws_code


class WsNotConnected(KalshiError):
    """A command that needs a live connection was given while there is none."""


class _TrackedConnection(ClientConnection):
    """Records when the last frame of any kind (data, ping, pong) arrived."""

    last_frame_at: float = 0.0

    def process_event(self, event: Any) -> None:
        self.last_frame_at = self.loop.time()
        super().process_event(event)


@dataclass(slots=True)
class WsMessage:
    type: str
    msg: Any
    sid: int | None = None
    seq: int | None = None
    id: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    received_at: float = field(default_factory=time.monotonic, repr=False)  # monotonic

    @property
    def data(self) -> Any:
        """Typed model of ``msg`` for ticker/trade/fill/user_order/... (else None)."""
        return parse_ws_msg(self.type, self.msg) if isinstance(self.msg, dict) else None


@dataclass
class Subscription:
    """One channel subscription; survives reconnects (its ``sid`` does not)."""

    channel: str
    params: dict[str, Any]
    sid: int | None = None
    last_seq: int | None = None
    active: bool = True
    resyncing: bool = False

    @property
    def market_tickers(self) -> list[str]:
        if "market_tickers" in self.params:
            return list(self.params["market_tickers"])
        if "market_ticker" in self.params:
            return [self.params["market_ticker"]]
        return []


@dataclass
class WsStats:
    connects: int = 0
    reconnects: int = 0
    messages: int = 0
    seq_gaps: int = 0
    duplicates: int = 0
    resyncs: int = 0
    resubscribes: int = 0
    heartbeat_timeouts: int = 0
    dropped_deltas: int = 0
    queue_full_waits: int = 0  # times the reader paused for a slow consumer
    max_queue_depth: int = 0


class KalshiWS:
    def __init__(
        self,
        url: str,
        signer: signing.Signer | None,
        *,
        heartbeat_timeout: float = 30.0,
        ping_interval: float | None = 10.0,
        ping_timeout: float | None = 10.0,
        open_timeout: float = 10.0,
        command_timeout: float = 10.0,
        snapshot_timeout: float = 5.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        compression: str | None = "deflate",
        max_size: int | None = 16 * 2**20,
        queue_max: int = 100_000,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self.ws_path = signing.signing_path(url)
        self.signer = signer
        self.heartbeat_timeout = heartbeat_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.open_timeout = open_timeout
        self.command_timeout = command_timeout
        self.snapshot_timeout = snapshot_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.compression = compression
        self.max_size = max_size
        self.queue_max = max(1, queue_max)
        self._room = asyncio.Event()
        self._room.set()
        self._rng = rng or random.Random()

        self.books: dict[str, OrderBook] = {}
        self.subscriptions: list[Subscription] = []
        self.stats = WsStats()
        self.connected = asyncio.Event()

        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[dict[str, Any]], Subscription | None]] = {}
        self._by_sid: dict[int, Subscription] = {}
        self._conn: _TrackedConnection | None = None
        self._queue: asyncio.Queue[WsMessage | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._fatal: BaseException | None = None
        self._failures = 0
        self._ever_connected = False

    @classmethod
    def from_endpoints(cls, endpoints: Endpoints, signer: signing.Signer | None, **kw: Any):
        return cls(endpoints.ws_url, signer, **kw)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="kalshi-ws")

    async def wait_connected(self, within: float | None = None) -> None:
        """Wait until connected and every subscription is (re)established."""
        async with asyncio.timeout(within):
            while not self.connected.is_set():
                if self._fatal is not None:
                    raise self._fatal
                if self._task is None or self._task.done():
                    raise WsNotConnected("the client is not running")
                waiter = asyncio.create_task(self.connected.wait())
                try:
                    await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
        if self._fatal is not None:
            raise self._fatal

    async def close(self) -> None:
        self._closing = True
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for task in list(self._tasks):
            task.cancel()
        self._fail_pending(WsNotConnected("client closed"))
        self._queue.put_nowait(None)

    async def __aenter__(self) -> KalshiWS:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def drop_connection(self) -> None:
        """Abort the current connection (tests, or a consumer that detected staleness)."""
        conn = self._conn
        if conn is not None and conn.transport is not None:
            conn.transport.abort()

    # ------------------------------------------------------------------ consumer side

    async def recv(self) -> WsMessage:
        """The next message; raises the fatal error (auth) or WsNotConnected once stopped."""
        m = await self._queue.get()
        if m is None:  # stopped: leave the marker for every later call
            self._queue.put_nowait(None)
            raise self._fatal or WsNotConnected("client closed")
        if not self._room.is_set() and self._queue.qsize() <= self.queue_max * 3 // 4:
            self._room.set()
        return m

    def __aiter__(self) -> KalshiWS:
        return self

    async def __anext__(self) -> WsMessage:
        try:
            return await self.recv()
        except WsNotConnected:
            raise StopAsyncIteration from None

    @property
    def consecutive_failures(self) -> int:
        """Connection attempts that failed since the last one that held."""
        return self._failures

    def pending_messages(self) -> int:
        return self._queue.qsize()

    def lag(self) -> tuple[int, float]:
        """(messages waiting for the consumer, seconds the oldest of them has waited)."""
        depth = self._queue.qsize()
        if not depth:
            return 0, 0.0
        oldest = self._queue._queue[0]  # type: ignore[attr-defined]  # a deque: peek
        age = time.monotonic() - oldest.received_at if oldest is not None else 0.0
        return depth, age

    # ------------------------------------------------------------------ commands

    async def subscribe(
        self,
        channel: str,
        *,
        market_tickers: list[str] | None = None,
        market_ticker: str | None = None,
        **params: Any,
    ) -> Subscription:
        """Subscribe to one channel; kept and re-sent after every reconnect."""
        p = dict(params)
        if market_tickers:
            p["market_tickers"] = list(market_tickers)
        if market_ticker:
            p["market_ticker"] = market_ticker
        sub = Subscription(channel=channel, params=p)
        if channel == ORDERBOOK:
            for t in sub.market_tickers:
                self.books.setdefault(t, OrderBook(t))
        self.subscriptions.append(sub)
        if self._conn is not None and self.connected.is_set():
            try:
                await self._send_subscribe(sub)
            except WsCommandError:
                self.subscriptions.remove(sub)
                raise
            except (WsNotConnected, TimeoutError):
                pass  # sent again once the connection is back
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        sub.active = False
        if sub in self.subscriptions:
            self.subscriptions.remove(sub)
        if sub.sid is not None:
            self._by_sid.pop(sub.sid, None)
            with contextlib.suppress(WsNotConnected, WsCommandError, TimeoutError):
                await self.command("unsubscribe", {"sids": [sub.sid]})
        if sub.channel == ORDERBOOK:
            still = {
                t for s in self.subscriptions if s.channel == ORDERBOOK for t in s.market_tickers
            }
            for t in sub.market_tickers:
                if t not in still:
                    self.books.pop(t, None)

    async def add_markets(self, sub: Subscription, tickers: list[str]) -> dict[str, Any]:
        return await self._update_markets(sub, "add_markets", tickers)

    async def delete_markets(self, sub: Subscription, tickers: list[str]) -> dict[str, Any]:
        return await self._update_markets(sub, "delete_markets", tickers)

    async def _update_markets(
        self, sub: Subscription, action: str, tickers: list[str]
    ) -> dict[str, Any]:
        current = sub.market_tickers
        if action == "add_markets":
            new = current + [t for t in tickers if t not in current]
        else:
            new = [t for t in current if t not in tickers]
        sub.params.pop("market_ticker", None)
        sub.params["market_tickers"] = new
        if sub.channel == ORDERBOOK:
            for t in tickers:
                if action == "add_markets":
                    self.books.setdefault(t, OrderBook(t))
                else:
                    self.books.pop(t, None)
        if sub.sid is None:
            return {}
        return await self.command(
            "update_subscription",
            {"sids": [sub.sid], "action": action, "market_tickers": list(tickers)},
            sub=sub,
        )

    async def list_subscriptions(self) -> list[dict[str, Any]]:
        reply = await self.command("list_subscriptions", None)
        msg = reply.get("msg")
        return msg if isinstance(msg, list) else []

    async def command(
        self,
        cmd: str,
        params: dict[str, Any] | None,
        *,
        sub: Subscription | None = None,
        reply_within: float | None = None,
    ) -> dict[str, Any]:
        """Send a command and wait for the reply with the same id."""
        fut = await self._send_command(cmd, params, sub)
        async with asyncio.timeout(reply_within or self.command_timeout):
            return await fut

    async def _send_command(
        self, cmd: str, params: dict[str, Any] | None, sub: Subscription | None
    ) -> asyncio.Future[dict[str, Any]]:
        conn = self._conn
        if conn is None:
            raise WsNotConnected(f"{cmd}: not connected")
        cid = next(self._ids)
        payload: dict[str, Any] = {"id": cid, "cmd": cmd}
        if params is not None:
            payload["params"] = params
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cid] = (fut, sub)
        try:
            await conn.send(_dumps(payload))
        except ConnectionClosed:
            self._pending.pop(cid, None)
            raise WsNotConnected(f"{cmd}: connection closed") from None
        return fut

    async def _send_subscribe(self, sub: Subscription) -> None:
        params = {"channels": [sub.channel], **sub.params}
        sub.sid = None
        sub.last_seq = None
        if sub.channel == ORDERBOOK:
            for t in sub.market_tickers:
                self.books.setdefault(t, OrderBook(t)).invalidate()
        await self.command("subscribe", params, sub=sub)

    # ------------------------------------------------------------------ connection loop

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self._connect_once()
                if self._closing:
                    return
            except KalshiAuthError as exc:
                log.error("kalshi ws: %s; giving up", exc)
                self._fatal = exc
                self._queue.put_nowait(None)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("kalshi ws: connection ended: %s: %s", type(exc).__name__, exc)
            finally:
                self._on_disconnect()
            self._failures += 1
            delay = self._backoff(self._failures)
            log.info("kalshi ws: reconnecting in %.2fs (attempt %d)", delay, self._failures)
            await asyncio.sleep(delay)

    def _backoff(self, failures: int) -> float:
        cap = min(self.backoff_max, self.backoff_base * 2 ** (failures - 1))
        return self._rng.uniform(cap / 2, cap)

    async def _connect_once(self) -> None:
        headers = self.signer.headers("GET", self.ws_path) if self.signer else {}
        try:
            conn = await connect(
                self.url,
                additional_headers=headers,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                close_timeout=2,
                compression=self.compression,
                max_size=self.max_size,
                create_connection=_TrackedConnection,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise KalshiAuthError(
                    f"websocket handshake refused: HTTP {status}", status=status
                ) from None
            raise
        assert isinstance(conn, _TrackedConnection)
        self._conn = conn
        self.stats.connects += 1
        reconnect = self._ever_connected
        if reconnect:
            self.stats.reconnects += 1
        reader = asyncio.create_task(self._reader(conn), name="kalshi-ws-reader")
        watchdog = asyncio.create_task(self._watchdog(conn), name="kalshi-ws-heartbeat")
        try:
            self._by_sid.clear()
            for sub in list(self.subscriptions):
                await self._send_subscribe(sub)
            self._ever_connected = True
            self._failures = 0
            self.connected.set()
            log.info(
                "kalshi ws: connected to %s (%d subscriptions)", self.url, len(self.subscriptions)
            )
            self._emit("client.connected", {"reconnect": reconnect})
            done, _ = await asyncio.wait({reader, watchdog}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in (reader, watchdog):
                task.cancel()
            for task in (reader, watchdog):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if conn.transport is not None:
                conn.transport.abort()

    def _on_disconnect(self) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        self._conn = None
        self._fail_pending(WsNotConnected("connection lost"))
        for sub in self.subscriptions:
            sub.sid = None
            sub.resyncing = False
        for book in self.books.values():
            book.invalidate()
        if was:
            self._emit("client.disconnected", {})

    def _fail_pending(self, exc: Exception) -> None:
        for fut, _ in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()

    async def _watchdog(self, conn: _TrackedConnection) -> None:
        loop = asyncio.get_running_loop()
        conn.last_frame_at = loop.time()
        step = max(0.05, min(1.0, self.heartbeat_timeout / 4))
        while True:
            await asyncio.sleep(step)
            idle = loop.time() - conn.last_frame_at
            if idle > self.heartbeat_timeout:
                self.stats.heartbeat_timeouts += 1
                log.warning("kalshi ws: no frame for %.1fs; reconnecting", idle)
                return

    async def _reader(self, conn: _TrackedConnection) -> None:
        async for raw in conn:
            try:
                # orjson is three times faster; the types in ORJSON_SAFE carry no JSON number
                # with a fraction (money and counts are fixed-point strings), the rest are
                # parsed again with every fraction as Decimal
                data = orjson.loads(raw)
                if type(data) is dict and data.get("type") not in ORJSON_SAFE:
                    data = loads(raw)
            except ValueError:
                log.warning("kalshi ws: unparseable frame: %.200r", raw)
                continue
            if isinstance(data, dict):
                self._dispatch(data)
            depth = self._queue.qsize()
            if depth >= self.queue_max:
                # a slow consumer: stop reading until it has caught up a little
                self.stats.queue_full_waits += 1
                self.stats.max_queue_depth = max(self.stats.max_queue_depth, depth)
                self._room.clear()
                await self._room.wait()

    # ------------------------------------------------------------------ message handling

    def _dispatch(self, data: dict[str, Any]) -> None:
        """Route one frame: command replies, then sequence check, then the type's handler."""
        self.stats.messages += 1
        mtype = data.get("type", "")
        was_pending = self._answer_command(mtype, data)  # may register a new sid
        sid = data.get("sid")
        sub = self._by_sid.get(sid) if sid is not None else None
        if mtype in CONTROL_TYPES:
            self._on_control(mtype, data, sub, was_pending)
            return
        seq = data.get("seq")
        if seq is not None and sub is not None and not self._check_seq(sub, seq, mtype):
            return
        handler = self._DATA_HANDLERS.get(mtype)
        if handler is None or handler(self, _body(data), sub):
            self._emit_raw(data)

    def _answer_command(self, mtype: str, data: dict[str, Any]) -> bool:
        """Complete the command this frame answers, if any; True when it answered one."""
        cid = data.get("id")
        if cid is None or cid not in self._pending:
            return False
        if mtype in CONTROL_TYPES:
            self._resolve(cid, data)
        elif mtype == "orderbook_snapshot" or mtype.endswith("_indexlist"):
            # the answer to get_snapshot, or to a cfbenchmarks indexlist action
            fut, _ = self._pending.pop(cid)
            if not fut.done():
                fut.set_result(data)
        return True

    def _on_control(
        self, mtype: str, data: dict[str, Any], sub: Subscription | None, was_pending: bool
    ) -> None:
        # ok / subscribed / error replies may consume a number of the subscription's
        # sequence: count it so it is not taken for a gap
        seq = data.get("seq")
        if seq is not None and sub is not None and mtype != "unsubscribed":
            self._check_seq(sub, seq, mtype)
        if mtype == "error" and (not was_pending or data.get("sid") is not None):
            log.warning("kalshi ws: error message: %s", data.get("msg"))
            self._emit_raw(data)

    def _on_snapshot(self, body: dict[str, Any], sub: Subscription | None) -> bool:
        ticker = body.get("market_ticker")
        if ticker:
            self.books.setdefault(ticker, OrderBook(ticker)).apply_snapshot(body)
        return True

    def _on_delta(self, body: dict[str, Any], sub: Subscription | None) -> bool:
        """Apply a delta to its book; False (not passed on) when the book cannot take it."""
        ticker = body.get("market_ticker")
        book = self.books.get(ticker) if ticker else None
        if book is None or not book.valid:
            self.stats.dropped_deltas += 1
            return False
        try:
            book.apply_delta(body)
        except BookInconsistent as exc:
            log.warning("kalshi ws: %s; resyncing", exc)
            if sub is not None:
                self._start_resync(sub, [ticker])
            return False
        return True

    # data message type -> handler(body, subscription) -> pass the message on?
    _DATA_HANDLERS: ClassVar[
        dict[str, Callable[[KalshiWS, dict[str, Any], Subscription | None], bool]]
    ] = {
        "orderbook_snapshot": _on_snapshot,
        "orderbook_delta": _on_delta,
    }

    def _resolve(self, cid: int, data: dict[str, Any]) -> None:
        fut, sub = self._pending.pop(cid)
        if data.get("type") == "subscribed" and sub is not None:
            msg = data.get("msg") or {}
            sid = msg.get("sid", data.get("sid"))
            if sid is not None and sub.active:
                sub.sid = sid
                sub.last_seq = None
                self._by_sid[sid] = sub
        if fut.done():
            return
        if data.get("type") == "error":
            msg = data.get("msg") or {}
            fut.set_exception(
                WsCommandError(
                    f"ws command {cid}: error {msg.get('code')}: {msg.get('msg')}",
                    ws_code=msg.get("code"),
                    raw=data,
                )
            )
        else:
            fut.set_result(data)

    def _check_seq(self, sub: Subscription, seq: int, mtype: str) -> bool:
        """True if the message is next in sequence (or acceptable after a gap)."""
        last = sub.last_seq
        if last is not None and seq <= last:
            self.stats.duplicates += 1
            return False
        sub.last_seq = seq
        if last is None or seq == last + 1:
            return True
        self.stats.seq_gaps += 1
        log.warning(
            "kalshi ws: %s sid %s: seq gap, expected %d got %d", sub.channel, sub.sid, last + 1, seq
        )
        self._emit(
            "client.seq_gap",
            {"channel": sub.channel, "expected": last + 1, "got": seq},
            sid=sub.sid,
        )
        if sub.channel == ORDERBOOK:
            self._start_resync(sub, sub.market_tickers)
            # the message after the gap is still good if it is a full snapshot
            return mtype == "orderbook_snapshot"
        return True

    # ------------------------------------------------------------------ resync

    def _start_resync(self, sub: Subscription, tickers: list[str]) -> None:
        for t in tickers:
            if t in self.books:
                self.books[t].invalidate()
        if sub.resyncing:
            return
        sub.resyncing = True
        task = asyncio.create_task(self._resync(sub, tickers), name="kalshi-ws-resync")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resync(self, sub: Subscription, tickers: list[str]) -> None:
        self.stats.resyncs += 1
        try:
            ok = False
            if sub.sid is not None:
                try:
                    fut = await self._send_command(
                        "update_subscription",
                        {"sids": [sub.sid], "action": "get_snapshot", "market_tickers": tickers},
                        sub,
                    )
                    ok = await self._wait_books(tickers, fut)
                except (WsCommandError, WsNotConnected, TimeoutError) as exc:
                    log.warning("kalshi ws: get_snapshot failed: %s", exc)
            if not ok and sub.active and self.connected.is_set():
                log.warning("kalshi ws: resubscribing %s to rebuild books", sub.channel)
                self.stats.resubscribes += 1
                old_sid = sub.sid
                if old_sid is not None:
                    self._by_sid.pop(old_sid, None)
                    with contextlib.suppress(WsCommandError, WsNotConnected, TimeoutError):
                        await self.command("unsubscribe", {"sids": [old_sid]})
                await self._send_subscribe(sub)
                ok = await self._wait_books(tickers, None)
            if ok:
                self._emit("client.resynced", {"channel": sub.channel, "tickers": tickers})
        except (WsNotConnected, WsCommandError, TimeoutError) as exc:
            log.warning("kalshi ws: resync of %s failed: %s", sub.channel, exc)
        finally:
            sub.resyncing = False

    async def _wait_books(
        self, tickers: list[str], fut: asyncio.Future[dict[str, Any]] | None
    ) -> bool:
        """Wait until every book in ``tickers`` is valid again; False on timeout/error."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.snapshot_timeout
        while loop.time() < deadline:
            if fut is not None and fut.done() and fut.exception() is not None:
                raise fut.exception()  # type: ignore[misc]
            if all(self.books[t].valid for t in tickers if t in self.books):
                return True
            await asyncio.sleep(0.01)
        return False

    # ------------------------------------------------------------------ queue

    def _emit(self, mtype: str, msg: Any, *, sid: int | None = None) -> None:
        self._queue.put_nowait(WsMessage(type=mtype, msg=msg, sid=sid))

    def _emit_raw(self, data: dict[str, Any]) -> None:
        self._queue.put_nowait(
            WsMessage(
                type=data.get("type", ""),
                msg=data.get("msg"),
                sid=data.get("sid"),
                seq=data.get("seq"),
                id=data.get("id"),
                raw=data,
            )
        )


def _body(data: dict[str, Any]) -> dict[str, Any]:
    msg = data.get("msg")
    return msg if isinstance(msg, dict) else {}


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))
