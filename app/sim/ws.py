"""WebSocket side: /trade-api/ws/v2 commands, subscriptions and channel fan-out.

Each connection has an outgoing queue drained by its own writer task; the exchange calls
the hub synchronously, so a message body is rendered once and framed per subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.sim import views
from app.sim.accounts import Account, FillRecord
from app.sim.market import Market
from app.sim.matching import Book, LevelChange, Order
from app.sim.venue import Exchange, Observer, TradeRecord

log = logging.getLogger("rec.sim.ws")

CHANNELS = (
    "orderbook_delta", "ticker", "trade", "fill", "market_positions", "market_lifecycle_v2",
    "multivariate_market_lifecycle", "communications", "order_group_updates", "user_orders",
    "cfbenchmarks_value", "cfbenchmarks_value_5hz", "pyth_value",
)
SEQUENCED = {"orderbook_delta", "trade", "market_lifecycle_v2"}
# CF Benchmarks index channels: filtered by index id, not by market
INDEX_CHANNELS = {"cfbenchmarks_value": "cfbenchmarks_value_indexlist",
                  "cfbenchmarks_value_5hz": "cfbenchmarks_value_5hz_indexlist"}
QUARTER_MS = 900_000
PRIVATE = {"fill", "user_orders", "market_positions", "order_group_updates"}
MARKET_FILTERED = {"orderbook_delta", "ticker", "trade", "fill", "user_orders",
                   "market_positions"}
MAX_QUEUE = 200_000
MAX_SUBS_PER_CONN = 128  # more subscriptions on one connection are refused (code 27)
MAX_MARKETS_PER_SUB = 1_000  # code 26: subscription market limit exceeded
# One command's work is bounded: a channel list longer than the channel set must repeat
# names (each repeat once rendered its own snapshots), and unsubscribe names at most as
# many sids as a connection can hold. Longer lists are refused with code 11.
MAX_CHANNELS_PER_COMMAND = len(CHANNELS)
MAX_SIDS_PER_COMMAND = MAX_SUBS_PER_CONN
OVERFLOW_GRACE_S = 5.0  # time the writer gets to send error 25 before the socket closes


@dataclass(eq=False)
class Sub:
    sid: int
    channel: str
    conn: Conn
    tickers: set[str] | None  # None: every market
    seq: int = 0
    indices: set[str] = field(default_factory=set)  # index channels: ids, or {"all"}
    skip: int = 0

    def next_seq(self) -> int:
        self.seq += 1 + self.skip
        self.skip = 0
        return self.seq

    def wants(self, ticker: str) -> bool:
        return self.tickers is None or ticker in self.tickers

    def wants_index(self, index_id: str) -> bool:
        return "all" in self.indices or index_id in self.indices


# Kalshi's answer to a client that does not keep up (asyncapi: error code 25)
OVERFLOW = '{"id":0,"type":"error","msg":{"code":25,"msg":"Subscription buffer overflow"}}'


@dataclass(eq=False)
class Conn:
    ws: WebSocket
    account_id: str
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    subs: dict[int, Sub] = field(default_factory=dict)
    closed: bool = False
    limit: int = MAX_QUEUE  # messages waiting for a slow client before it is dropped
    overflowed: bool = False
    queued: int = 0  # frames queued for this client (rec backtest's lockstep counts them)

    def put(self, text: str) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= self.limit:
            # the backlog is dropped: error 25 goes out next, then the connection closes
            self.closed = self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(OVERFLOW)
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(text)
        self.queued += 1


class CommandError(Exception):
    def __init__(self, code: int, msg: str, **extra: object) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.extra = extra


def _frame(kind: str, sub: Sub, body: str, seq: bool) -> str:
    if seq:
        return f'{{"type":"{kind}","sid":{sub.sid},"seq":{sub.next_seq()},"msg":{body}}}'
    return f'{{"type":"{kind}","sid":{sub.sid},"msg":{body}}}'


def _json(obj: object) -> str:
    return orjson.dumps(obj).decode()


def _ticker_params(params: dict) -> list[str]:
    tickers: list[str] = []
    one, many = params.get("market_ticker"), params.get("market_tickers")
    if one is not None:
        if not isinstance(one, str) or not one:
            raise CommandError(11, "Invalid parameter: market_ticker")
        tickers.append(one)
    if many is not None:
        if not isinstance(many, list) or not all(isinstance(t, str) for t in many):
            raise CommandError(11, "Invalid parameter: market_tickers")
        tickers.extend(many)
    return tickers


class Hub(Observer):
    def __init__(self, exchange: Exchange, max_queue: int = MAX_QUEUE) -> None:
        self.max_queue = max_queue
        self.ex = exchange
        self.conns: set[Conn] = set()
        self.by_channel: dict[str, set[Sub]] = {c: set() for c in CHANNELS}
        self._sid = 0
        self.sent = 0
        self.index_ids: set[str] = set()  # every index published so far (indexlist)

    # --- exchange callbacks --------------------------------------------------------
    def _subs(self, channel: str, ticker: str) -> list[Sub]:
        return [s for s in self.by_channel[channel] if s.wants(ticker)]

    def book_changes(self, market: Market, changes: list[LevelChange]) -> None:
        subs = self._subs("orderbook_delta", market.ticker)
        if not subs:
            return
        now = self.ex.clock()
        for ch in changes:
            msg = views.ws_delta(market, ch, now)
            body = _json(msg)
            owner_body = None
            for sub in subs:
                if sub.conn.account_id == ch.order.account_id and ch.order.client_order_id:
                    if owner_body is None:
                        owner_body = _json({**msg, "client_order_id": ch.order.client_order_id})
                    sub.conn.put(_frame("orderbook_delta", sub, owner_body, True))
                else:
                    sub.conn.put(_frame("orderbook_delta", sub, body, True))

    def trade(self, market: Market, trade: TradeRecord) -> None:
        subs = self._subs("trade", market.ticker)
        if subs:
            body = _json(views.ws_trade(trade))
            for sub in subs:
                sub.conn.put(_frame("trade", sub, body, True))

    def ticker(self, market: Market, book: Book) -> None:
        subs = self._subs("ticker", market.ticker)
        if subs:
            body = _json(views.ws_ticker(market, book, self.ex.clock()))
            for sub in subs:
                sub.conn.put(_frame("ticker", sub, body, False))

    def _private(self, channel: str, acct: Account, ticker: str) -> list[Sub]:
        return [s for s in self.by_channel[channel]
                if s.conn.account_id == acct.account_id and s.wants(ticker)]

    def fill(self, account: Account, fill: FillRecord, market: Market) -> None:
        subs = self._private("fill", account, market.ticker)
        if subs:
            body = _json(views.ws_fill(fill))
            for sub in subs:
                sub.conn.put(_frame("fill", sub, body, False))

    def order(self, account: Account, order: Order) -> None:
        subs = self._private("user_orders", account, order.ticker)
        if subs:
            body = _json(views.ws_order(order, account))
            for sub in subs:
                sub.conn.put(_frame("user_order", sub, body, False))

    def position(self, account: Account, ticker: str) -> None:
        subs = self._private("market_positions", account, ticker)
        pos = account.positions.get(ticker)
        if subs and pos is not None:
            body = _json(views.ws_position(account, pos))
            for sub in subs:
                sub.conn.put(_frame("market_position", sub, body, False))

    def order_group(self, account: Account | None, msg: dict) -> None:
        if account is None:
            return
        subs = [s for s in self.by_channel["order_group_updates"]
                if s.conn.account_id == account.account_id]
        if subs:
            body = _json(msg)
            for sub in subs:
                sub.conn.put(_frame("order_group_updates", sub, body, True))

    def lifecycle(self, msg: dict, kind: str = "market_lifecycle_v2") -> None:
        subs = self.by_channel["market_lifecycle_v2"]
        if subs:
            body = _json(msg)
            for sub in list(subs):
                sub.conn.put(_frame(kind, sub, body, True))

    def index_value(self, index_id: str, ts_ms: int, value: float, history) -> None:
        """One published tick of a CF Benchmarks index (one per simulated second)."""
        self.index_ids.add(index_id)
        per_s = [s for s in self.by_channel["cfbenchmarks_value"] if s.wants_index(index_id)]
        fast = [s for s in self.by_channel["cfbenchmarks_value_5hz"] if s.wants_index(index_id)]
        if not per_s and not fast:
            return
        data = _json({"type": "value", "id": index_id, "time": ts_ms, "value": f"{value:.2f}"})
        received = ts_ms + 7  # Kalshi's receipt of the upstream frame
        if per_s:
            body = _json({"index_id": index_id, "received_at": received, "data": data,
                          **index_averages(ts_ms, value, history)})
            for sub in per_s:
                sub.conn.put(_frame("cfbenchmarks_value", sub, body, True))
        if fast:
            self._fast(fast, index_id, ts_ms, value, data)

    def index_fast_value(self, index_id: str, ts_ms: int, value: float) -> None:
        """One of the four values between two seconds: the 5 Hz channel only."""
        fast = [s for s in self.by_channel["cfbenchmarks_value_5hz"] if s.wants_index(index_id)]
        if fast:
            data = _json({"type": "value", "id": index_id, "time": ts_ms,
                          "value": f"{value:.2f}"})
            self._fast(fast, index_id, ts_ms, value, data)

    @staticmethod
    def _fast(subs: list, index_id: str, ts_ms: int, value: float, data: str) -> None:
        body = _json({"index_id": index_id, "value_usd": f"{value:.8f}",
                      "source_ts_ms": ts_ms, "received_at": ts_ms + 7, "data": data})
        for sub in subs:
            sub.conn.put(_frame("cfbenchmarks_value_5hz", sub, body, True))

    # --- faults -------------------------------------------------------------------
    def skip_seq(self, sid: int | None = None, n: int = 1) -> int:
        """Make the next sequenced message of the matching subscriptions skip `n` seqs."""
        hit = 0
        for conn in self.conns:
            for sub in conn.subs.values():
                if sub.channel in SEQUENCED and (sid is None or sub.sid == sid) and (
                        sid is not None or sub.channel == "orderbook_delta"):
                    sub.skip += n
                    hit += 1
        return hit

    async def drop_all(self) -> int:
        conns = list(self.conns)
        for conn in conns:
            conn.closed = True
            self._detach(conn)
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1011)
        return len(conns)

    # --- connections ----------------------------------------------------------------
    def _detach(self, conn: Conn) -> None:
        self.conns.discard(conn)
        for sub in conn.subs.values():
            self.by_channel[sub.channel].discard(sub)
        conn.subs.clear()
        with contextlib.suppress(asyncio.QueueFull):
            conn.queue.put_nowait(None)

    async def serve(self, ws: WebSocket, account_id: str) -> None:
        conn = Conn(ws, account_id, limit=self.max_queue)
        self.conns.add(conn)
        writer = asyncio.create_task(self._writer(conn))
        try:
            while not conn.closed:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:  # a binary frame: Kalshi's commands are JSON text
                    conn.put(_json({"id": 0, "type": "error", "msg": {
                        "code": 1, "msg": "Unable to process message: send text frames"}}))
                    continue
                self.handle(conn, text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            conn.closed = True
            self._detach(conn)
            if conn.overflowed:  # error 25 is queued: let the writer send it, then close
                with contextlib.suppress(Exception):  # timeout, or the writer failed
                    await asyncio.wait_for(asyncio.shield(writer), OVERFLOW_GRACE_S)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    def _stamped(self, text: str) -> str:
        """Every message carries the venue's send time at the top level (Kalshi since
        v3.32): `sending_ts_ms`, stamped as it leaves, on the simulator's clock."""
        return f'{text[:-1]},"sending_ts_ms":{self.ex.clock()}}}'

    async def _writer(self, conn: Conn) -> None:
        q = conn.queue
        try:
            while True:
                text = await q.get()
                if text is None:
                    break
                await conn.ws.send_text(self._stamped(text))
                self.sent += 1
        except Exception:  # the peer went away
            conn.closed = True
        if conn.overflowed:
            log.warning("closing a WebSocket client that does not keep up (error 25)")
        with contextlib.suppress(Exception):
            await conn.ws.close()

    # --- commands --------------------------------------------------------------------
    def handle(self, conn: Conn, text: str) -> None:
        cid = 0
        try:
            try:
                cmd = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise CommandError(1, "Unable to process message") from None
            if not isinstance(cmd, dict):
                raise CommandError(1, "Unable to process message")
            cid = cmd.get("id", 0)
            if not isinstance(cid, int) or cid < 0:
                cid = 0
                raise CommandError(11, "Invalid parameter: id")
            name = cmd.get("cmd")
            if name == "list_subscriptions":
                subs = [{"channel": s.channel, "sid": s.sid}
                        for s in sorted(conn.subs.values(), key=lambda s: s.sid)]
                conn.put(_json({"id": cid, "type": "ok", "msg": subs}))
                return
            if name not in ("subscribe", "unsubscribe", "update_subscription"):
                raise CommandError(5, "Unknown command")
            params = cmd.get("params")
            if not isinstance(params, dict):
                raise CommandError(2, "Params required")
            getattr(self, f"_cmd_{name}")(conn, cid, params)
        except CommandError as exc:
            msg: dict = {"code": exc.code, "msg": exc.msg}
            msg.update(exc.extra)
            conn.put(_json({"id": cid, "type": "error", "msg": msg}))

    def _tickers(self, params: dict, required: bool) -> list[str] | None:
        tickers = _ticker_params(params) + self._tickers_by_id(params)
        if not tickers:
            if required:
                raise CommandError(14, "Market Ticker required")
            return None
        if len(tickers) > MAX_MARKETS_PER_SUB:
            raise CommandError(26, "Subscription market limit exceeded")
        unknown = [t for t in tickers if t not in self.ex.markets]
        if unknown:
            raise CommandError(11, "Unknown market ticker", market_tickers=unknown[:100])
        return list(dict.fromkeys(tickers))

    def _tickers_by_id(self, params: dict) -> list[str]:
        ids = []
        if params.get("market_id") is not None:
            ids.append(params["market_id"])
        if isinstance(params.get("market_ids"), list):
            ids.extend(params["market_ids"])
        if not ids:
            return []
        by_id = {m.market_id: t for t, m in self.ex.markets.items()}
        if not all(isinstance(i, str) and i in by_id for i in ids):
            raise CommandError(11, "Unknown market id")
        return [by_id[i] for i in ids]

    def _cmd_subscribe(self, conn: Conn, cid: int, params: dict) -> None:
        channels = params.get("channels")
        if not isinstance(channels, list) or not channels:
            raise CommandError(3, "Channels required")
        if len(channels) > MAX_CHANNELS_PER_COMMAND:
            raise CommandError(11, f"Invalid parameter: channels (at most "
                                   f"{MAX_CHANNELS_PER_COMMAND}, each once)")
        if not all(isinstance(c, str) and c in CHANNELS for c in channels):
            raise CommandError(8, "Unknown channel name")
        channels = list(dict.fromkeys(channels))  # a repeat is one subscription, rendered once
        parsed = {c: self._tickers(params, c == "orderbook_delta") for c in channels}
        for channel in channels:
            tickers = parsed[channel]
            wanted = set(tickers) if tickers is not None and channel in MARKET_FILTERED \
                else None
            same = next((x for x in conn.subs.values()
                         if x.channel == channel and x.tickers == wanted), None)
            if same is not None and channel in INDEX_CHANNELS:
                same.indices.update(_index_ids(params, required=False))
            if same is not None:  # an identical subscription: answer with it, add none
                conn.put(_json({"id": cid, "type": "subscribed",
                                "msg": {"channel": channel, "sid": same.sid}}))
                self._initial(same, tickers or [], bool(params.get("send_initial_snapshot")))
                continue
            if len(conn.subs) >= MAX_SUBS_PER_CONN:
                raise CommandError(27, "Too many requests: subscription limit per connection")
            self._sid += 1
            sub = Sub(self._sid, channel, conn, wanted)
            if channel in INDEX_CHANNELS:
                sub.indices = set(_index_ids(params, required=False))
            conn.subs[sub.sid] = sub
            self.by_channel[channel].add(sub)
            conn.put(_json({"id": cid, "type": "subscribed",
                            "msg": {"channel": channel, "sid": sub.sid}}))
            self._initial(sub, tickers or [], bool(params.get("send_initial_snapshot")))

    def _initial(self, sub: Sub, tickers: list[str], ticker_snapshot: bool) -> None:
        if sub.channel == "orderbook_delta":
            for t in tickers:
                self._snapshot(sub, t, None)
        elif sub.channel == "ticker" and ticker_snapshot:
            for t in tickers:
                body = _json(views.ws_ticker(self.ex.markets[t], self.ex.books[t],
                                             self.ex.clock()))
                sub.conn.put(_frame("ticker", sub, body, False))

    def _snapshot(self, sub: Sub, ticker: str, cid: int | None) -> None:
        m = self.ex.markets[ticker]
        body = _json(views.ws_snapshot(m, self.ex.books[ticker]))
        head = f'{{"type":"orderbook_snapshot","sid":{sub.sid},"seq":{sub.next_seq()},'
        if cid:
            head += f'"id":{cid},'
        sub.conn.put(f'{head}"msg":{body}}}')

    def _cmd_unsubscribe(self, conn: Conn, cid: int, params: dict) -> None:
        sids = params.get("sids")
        if not isinstance(sids, list) or not sids:
            raise CommandError(4, "Subscription IDs required")
        if len(sids) > MAX_SIDS_PER_COMMAND:
            raise CommandError(11, f"Invalid parameter: sids (at most {MAX_SIDS_PER_COMMAND})")
        for sid in sids:
            sub = conn.subs.pop(sid, None) if isinstance(sid, int) else None
            if sub is None:
                conn.put(_json({"id": cid, "type": "error",
                                "msg": {"code": 7, "msg": "Unknown subscription ID"}}))
                continue
            self.by_channel[sub.channel].discard(sub)
            conn.put(_json({"id": cid, "sid": sub.sid, "seq": sub.next_seq(),
                            "type": "unsubscribed"}))

    def _cmd_update_subscription(self, conn: Conn, cid: int, params: dict) -> None:
        sub = self._one_sub(conn, params)
        action = params.get("action")
        if action is None:
            raise CommandError(15, "Action required")
        if sub.channel in INDEX_CHANNELS:
            self._update_indices(conn, cid, sub, action, params)
            return
        if action not in ("add_markets", "delete_markets", "get_snapshot") \
                or sub.channel not in MARKET_FILTERED \
                or (action == "get_snapshot" and sub.channel != "orderbook_delta"):
            raise CommandError(13, "Unsupported action")
        tickers = self._tickers(params, True) or []
        if action == "get_snapshot":
            for t in tickers:
                self._snapshot(sub, t, cid)
            return
        if action == "add_markets":
            self._add_markets(sub, tickers, bool(params.get("send_initial_snapshot")))
        elif sub.tickers is not None:
            sub.tickers.difference_update(tickers)
        reply: dict = {"id": cid, "sid": sub.sid, "type": "ok", "msg": {}}
        if sub.tickers is not None:
            reply["msg"]["market_tickers"] = sorted(sub.tickers)
        if sub.channel in SEQUENCED and sub.seq >= 1:
            reply["seq"] = sub.seq
        conn.put(_json(reply))

    def _update_indices(self, conn: Conn, cid: int, sub: Sub, action: str,
                        params: dict) -> None:
        if action == "indexlist":
            body = _json({"index_ids": sorted(self.index_ids)})
            conn.put(f'{{"type":"{INDEX_CHANNELS[sub.channel]}","id":{cid},"sid":{sub.sid},'
                     f'"seq":{sub.next_seq()},"msg":{body}}}')
            return
        if action not in ("subscribe_indices", "unsubscribe_indices"):
            raise CommandError(13, "Unsupported action")
        ids = _index_ids(params, required=True)
        if action == "subscribe_indices":
            sub.indices.update(ids)
        else:
            sub.indices.difference_update(ids)
        conn.put(_json({"id": cid, "sid": sub.sid, "type": "ok", "msg": {}}))

    @staticmethod
    def _one_sub(conn: Conn, params: dict) -> Sub:
        """The one subscription an update_subscription names (sid, or sids of length 1)."""
        sid, sids = params.get("sid"), params.get("sids")
        if sids is not None:
            if sid is not None or not isinstance(sids, list) or len(sids) != 1:
                raise CommandError(12, "Exactly one subscription ID is required")
            sid = sids[0]
        if sid is None:
            raise CommandError(12, "Exactly one subscription ID is required")
        sub = conn.subs.get(sid) if isinstance(sid, int) and not isinstance(sid, bool) else None
        if sub is None:
            raise CommandError(7, "Unknown subscription ID")
        return sub

    def _add_markets(self, sub: Sub, tickers: list[str], ticker_snapshot: bool) -> None:
        new = [t for t in tickers if sub.tickers is None or t not in sub.tickers]
        if sub.tickers is not None:
            if len(sub.tickers) + len(new) > MAX_MARKETS_PER_SUB:
                raise CommandError(26, "Subscription market limit exceeded")
            sub.tickers.update(new)
        if sub.channel == "orderbook_delta":
            for t in new:
                self._snapshot(sub, t, None)
        elif sub.channel == "ticker" and ticker_snapshot:
            for t in new:
                body = _json(views.ws_ticker(self.ex.markets[t], self.ex.books[t],
                                             self.ex.clock()))
                sub.conn.put(_frame("ticker", sub, body, False))


def _index_ids(params: dict, required: bool) -> list[str]:
    ids = params.get("index_ids")
    if ids is None or ids == []:
        if required:
            raise CommandError(24, "Index IDs required")
        return []
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise CommandError(11, "Invalid parameter: index_ids")
    return ids


def _avg(ticks: list[tuple[int, float]], start: int, end: int) -> dict:
    return {"value": f"{sum(v for _, v in ticks) / len(ticks):.8f}", "window_size": len(ticks),
            "window_start_ts_ms": start, "window_end_ts_exclusive": end}


def index_averages(ts_ms: int, value: float, history) -> dict:
    """asyncapi's averaging semantics: avg_60s_data over the prior ticks of
    [ts - 60 s, ts) (the current value when there are none); in the final minute before a
    quarter-hour close, last_60s_windowed_average_15min over (close - 60 s, ts]."""
    recent: list[tuple[int, float]] = []
    for t, v in reversed(history):
        if t < ts_ms - 60_000:
            break
        recent.append((t, v))
    prior = [(t, v) for t, v in recent if t < ts_ms]
    out = {"avg_60s_data": _avg(prior, ts_ms - 60_000, ts_ms) if prior else {
        "value": f"{value:.8f}", "window_size": 0, "window_start_ts_ms": ts_ms - 60_000,
        "window_end_ts_exclusive": ts_ms}}
    close = -(-ts_ms // QUARTER_MS) * QUARTER_MS
    if close - 60_000 < ts_ms <= close:
        window = [(t, v) for t, v in recent if close - 60_000 < t <= ts_ms]
        if not any(t == ts_ms for t, _ in window):
            window.append((ts_ms, value))
        out["last_60s_windowed_average_15min"] = _avg(window, close - 60_000 + 1, ts_ms + 1)
    return out
