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
* messages are parsed and queued as their frames are read (the connection,
  :class:`~app.kalshi.ws_frames.FeedConnection`, splits the frames itself);
* the queue to the consumer is bounded (``queue_max``): when it is full the
  connection stops reading, so a slow consumer never grows memory without limit
  (the exchange then sees a slow client and may drop it: Kalshi error 25);
  :meth:`KalshiWS.lag` tells the queue depth and the age of its oldest message;
* :attr:`KalshiWS.books` holds a local :class:`~app.kalshi.book.OrderBook` per
  market of every ``orderbook_delta`` subscription; a consumer that keeps its own books
  passes ``keep_books=False`` and gets a :class:`~app.kalshi.ws_books.SyncState` per market
  instead (in sync or not: the same seq checks, drops and resyncs, no levels), and reports a
  delta its own book cannot take with :meth:`KalshiWS.resync`; with ``delta_runs=True`` too,
  the ``orderbook_delta`` messages that follow each other in the stream come as runs
  (:data:`~app.kalshi.ws_types.DELTA_RUN` messages whose ``msg`` lists their frames, the
  parsed dicts, in order): no message object per delta, the same checks on each.

Consumers read :meth:`KalshiWS.recv` (or ``async for``), or :meth:`KalshiWS.recv_batch`
(every waiting message at once: one wake-up per batch of frames): Kalshi's data messages,
plus the client's own events ``client.connected`` (``msg["reconnect"]`` tells a
re-connection, after which account state should be reconciled over REST),
``client.disconnected``, ``client.seq_gap`` and ``client.resynced``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK, InvalidStatus

from app.kalshi import signing
from app.kalshi.book import OrderBook
from app.kalshi.errors import KalshiAuthError
from app.kalshi.models import loads
from app.kalshi.urls import Endpoints
from app.kalshi.ws_books import BookSync, SyncState
from app.kalshi.ws_commands import WsCommands
from app.kalshi.ws_frames import FeedConnection
from app.kalshi.ws_types import (  # re-exported: callers import these from here
    CONTROL_TYPES,
    DELTA_RUN,
    ORDERBOOK,
    MessageQueue,
    Subscription,
    WsCommandError,
    WsMessage,
    WsNotConnected,
    WsStats,
)

log = logging.getLogger(__name__)

ORJSON_SAFE = frozenset({
    "orderbook_delta", "orderbook_snapshot", "ticker", "trade", "fill", "user_order",
    "market_position", "subscribed", "unsubscribed", "ok", "error",
})


class KalshiWS(WsCommands, BookSync):
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
        keep_books: bool = True,
        delta_runs: bool = False,
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
        self._rng = rng or random.Random()

        if delta_runs and keep_books:
            raise ValueError("delta_runs is for a consumer that keeps its own books")
        self.keep_books = keep_books
        self.delta_runs = delta_runs
        self.books: dict[str, OrderBook | SyncState] = {}
        self.subscriptions: list[Subscription] = []
        self.stats = WsStats()
        self.connected = asyncio.Event()
        # called with stats.messages each time the consumer has handled all it received,
        # and again for each frame that comes while it waits without giving it anything
        # (a command's reply) (rec backtest's lockstep: app/runtime/lockstep.py); None:
        # nobody asks
        self.on_idle: Callable[[int], Awaitable[None]] | None = None
        self._idle = False  # the consumer waits on an empty queue (only kept with on_idle)

        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[dict[str, Any]], Subscription | None]] = {}
        self._by_sid: dict[int, Subscription] = {}
        self._conn: FeedConnection | None = None
        self._queue = MessageQueue()
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
        self._queue.end()

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
        await self._wait_messages()
        m = self._queue.take()
        self._made_room()
        return m

    async def recv_batch(self, limit: int = 1024) -> list[WsMessage]:
        """Every waiting message (at least one, at most ``limit``), oldest first; raises as
        :meth:`recv` does once stopped and drained."""
        await self._wait_messages()
        batch = self._queue.take_all(limit)
        self._made_room()
        return batch

    async def _wait_messages(self) -> None:
        if self.on_idle is not None:
            told = -1
            while not self._queue.items and told != self.stats.messages:
                told = self.stats.messages  # (frames may come while on_idle works)
                await self.on_idle(told)
            self._idle = True
        try:
            waited = await self._queue.wait()
        finally:
            self._idle = False
        if not waited:  # stopped, everything handed out
            raise self._fatal or WsNotConnected("client closed")

    def _idle_again(self) -> None:
        assert self.on_idle is not None
        task = asyncio.ensure_future(self.on_idle(self.stats.messages))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _made_room(self) -> None:
        conn = self._conn
        if conn is not None and conn.held and self._queue.count <= self.queue_max * 3 // 4:
            conn.resume()

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
        return len(self._queue)

    def lag(self) -> tuple[int, float]:
        """(messages waiting for the consumer, seconds the oldest of them has waited)."""
        oldest = self._queue.oldest()
        if oldest is None:
            return 0, 0.0
        return len(self._queue), time.monotonic() - oldest.received_at

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
                self._queue.end()
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
                create_connection=functools.partial(FeedConnection,  # type: ignore[arg-type]
                                                    on_message=self._on_frame),
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise KalshiAuthError(
                    f"websocket handshake refused: HTTP {status}", status=status
                ) from None
            raise
        assert isinstance(conn, FeedConnection)
        self._conn = conn
        self.stats.connects += 1
        reconnect = self._ever_connected
        if reconnect:
            self.stats.reconnects += 1
        reader = asyncio.create_task(self._until_closed(conn), name="kalshi-ws-reader")
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

    async def _watchdog(self, conn: FeedConnection) -> None:
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

    async def _until_closed(self, conn: FeedConnection) -> None:
        """Messages arrive through the connection's ``on_message`` (:meth:`_on_frame`); this
        ends with the connection, raising unless it was closed cleanly."""
        await conn.wait_closed()
        exc = conn.protocol.close_exc
        if not isinstance(exc, ConnectionClosedOK):
            raise exc

    def _on_frame(self, raw: bytes) -> bool:
        """One data message from the connection; False when the queue is full (the
        connection then stops reading until the consumer has caught up a little)."""
        try:
            data = orjson.loads(raw)
        except ValueError:
            log.warning("kalshi ws: unparseable frame: %.200r", raw)
            return True
        if type(data) is dict:
            mtype = data.get("type")
            if mtype == ORDERBOOK and self.delta_runs:
                self._in_run(data)
            elif mtype in ORJSON_SAFE:
                self._dispatch(data)
            else:  # orjson is three times faster; the types in ORJSON_SAFE carry no JSON
                # number with a fraction (money and counts are fixed-point strings), the rest
                # are parsed again with every fraction as Decimal
                self._dispatch(loads(raw))
        if self._idle and not self._queue.items:  # handled at once: nothing for the consumer
            self._idle_again()
        depth = self._queue.count
        if depth < self.queue_max:
            return True
        # a slow consumer: stop reading until it has caught up a little
        self.stats.queue_full_waits += 1
        self.stats.max_queue_depth = max(self.stats.max_queue_depth, depth)
        return False

    # ------------------------------------------------------------------ message handling

    def _dispatch(self, data: dict[str, Any]) -> None:
        """Route one frame: command replies, then sequence check, then the type's handler."""
        self.stats.messages += 1
        get = data.get
        mtype = get("type", "")
        # a command's answer may register a new sid (data messages carry no id)
        cid = get("id")
        was_pending = cid is not None and self._answer_command(mtype, data)
        sid = get("sid")
        sub = self._by_sid.get(sid) if sid is not None else None
        if mtype in CONTROL_TYPES:
            self._on_control(mtype, data, sub, was_pending)
            return
        seq = get("seq")
        if seq is not None and sub is not None:
            last = sub.last_seq
            if last is not None and seq == last + 1:  # in order: _check_seq's first case
                sub.last_seq = seq
            elif not self._check_seq(sub, seq, mtype):
                return
        msg = get("msg")
        handler = self._DATA_HANDLERS.get(mtype)
        if handler is None or handler(self, msg if isinstance(msg, dict) else {}, sub):
            # _emit_raw, inlined: the hot path makes one per data message
            self._queue.put(WsMessage(mtype, msg, sid, seq, cid, get("sending_ts_ms"),
                                      data, time.monotonic()))

    def _in_run(self, data: dict[str, Any]) -> None:
        """An orderbook_delta frame with ``delta_runs``: :meth:`_dispatch`'s steps for it,
        inlined (the feed's hot path): its subscription's seq, its market in sync, then into
        the queue's run."""
        self.stats.messages += 1
        sid = data.get("sid")
        sub = self._by_sid.get(sid) if sid is not None else None
        seq = data.get("seq")
        if seq is not None and sub is not None:
            last = sub.last_seq
            if last is not None and seq == last + 1:
                sub.last_seq = seq
            elif not self._check_seq(sub, seq, ORDERBOOK):
                return
        msg = data.get("msg")
        book = self.books.get(msg.get("market_ticker")) if type(msg) is dict else None
        if book is None or not book.valid:  # BookSync._on_delta without levels
            self.stats.dropped_deltas += 1
            return
        self._queue.put_in_run(data)

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
            self._emit_raw(mtype, data)

    # data message type -> handler(body, subscription) -> pass the message on?
    _DATA_HANDLERS: ClassVar[
        dict[str, Callable[[KalshiWS, dict[str, Any], Subscription | None], bool]]
    ] = {
        "orderbook_snapshot": BookSync._on_snapshot,
        "orderbook_delta": BookSync._on_delta,
    }

    # ------------------------------------------------------------------ queue

    def _emit(self, mtype: str, msg: Any, *, sid: int | None = None) -> None:
        self._queue.put(WsMessage(type=mtype, msg=msg, sid=sid))

    def _emit_raw(self, mtype: str, data: dict[str, Any]) -> None:
        get = data.get  # positional: the hot path makes one per data message
        self._queue.put(WsMessage(mtype, get("msg"), get("sid"), get("seq"), get("id"),
                                  get("sending_ts_ms"), data, time.monotonic()))


__all__ = [
    "DELTA_RUN",
    "ORDERBOOK",
    "KalshiWS",
    "Subscription",
    "WsCommandError",
    "WsMessage",
    "WsNotConnected",
    "WsStats",
]
