"""rec-market-feed: Kalshi market data in, changes only, into PostgreSQL.

Startup (each a phase with a deadline and a STATUS= line): database, discover the followed
open markets over REST, connect the WebSocket (ws mode), then wait until the first snapshot
of every followed market is committed (``market_feed_ready_timeout_sec``). READY after that.

Then:

* **WebSocket first**: ``orderbook_delta``, ``ticker`` and ``trade`` for the followed markets
  plus ``market_lifecycle_v2`` on one connection (:class:`~app.kalshi.ws.KalshiWS` keeps books
  in seq order, resyncs on a gap and reconnects with backoff and jitter); lifecycle messages
  add newly opened markets of the followed series/events and drop closed ones.
* **HTTP fallback** (``market_feed_fallback``): after ``market_feed_fallback_after_failures``
  failed connects in a row or ``market_feed_fallback_after_sec`` down, poll
  ``GET /markets/orderbooks`` (100 tickers a call) and ``GET /markets`` every
  ``market_feed_poll_interval_sec`` while the client keeps trying the WebSocket; back to it
  once it is connected and every book is resynced. Each switch: one log line and STATUS=.
  ``market_feed_mode=http`` polls only.
* **Change-only storage** (:mod:`.store`, :mod:`app.db.feed_log`): a ticker record only when a
  value changed, a record per changed book level plus compact snapshots, one row per batch,
  one NOTIFY per batch, freshness; every ``market_feed_compact_interval_sec`` the batches
  are moved into one compressed segment per market.
* **Retention**: segments older than ``market_feed_retention_days`` are deleted in small
  batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from app import exchange_client
from app.config import Settings, csv_list
from app.db import feed_log
from app.db.pool import DatabaseWait, open_pool
from app.kalshi.errors import KalshiError
from app.kalshi.models import Market
from app.kalshi.rest import KalshiRest
from app.kalshi.ws import DELTA_RUN, KalshiWS, Subscription, WsMessage
from app.runtime import clock, lockstep, metrics
from app.runtime.notify import Notifier
from app.runtime.service import Phase, Service
from app.services.market_feed.store import FEED, FeedStore, Quote, Tracker, dec, now_ms, utc_ms
from app.services.market_feed.upkeep import FeedUpkeep

OPEN_STATUSES = frozenset({"active", "open"})
FINAL_STATUSES = frozenset({"finalized", "settled"})  # a market's status that never changes
DONE_ORDER = ("deactivated", "closed", "determined", "settled", "finalized")  # as they come
DONE_EVENTS = frozenset({"deactivated", "determined", "settled", "closed"})
ORDERBOOKS_PER_CALL = 100
FEED_QUEUE = "market-ws"  # the WebSocket client's queue of received messages
# a sequenced channel whose gap loses market data -> the GAP record's reason
GAP_REASONS = {"orderbook_delta": feed_log.GAP_SEQ_BOOK, "trade": feed_log.GAP_SEQ_TRADE}


SAVE_MARKET = (
    "INSERT INTO markets (ticker, event_ticker, series_ticker, title, status, strike_type, "
    "floor_strike, cap_strike, open_time, close_time, expiration_time, result, "
    "price_level_structure, raw, followed, updated_at) "
    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,now()) "
    "ON CONFLICT (ticker) DO UPDATE SET status = EXCLUDED.status, title = EXCLUDED.title, "
    "close_time = EXCLUDED.close_time, result = EXCLUDED.result, raw = EXCLUDED.raw, "
    "followed = EXCLUDED.followed, price_level_structure = EXCLUDED.price_level_structure, "
    "updated_at = now()")


def _seconds(value: Any) -> int | None:
    """A lifecycle message's epoch seconds (None when absent or not a number)."""
    return value if type(value) is int else None


def chunks(items: list[str], n: int) -> list[list[str]]:
    return [items[i:i + n] for i in range(0, len(items), n)]


async def open_markets(rest: KalshiRest, series: list[str], events: list[str],
                       tickers: list[str]) -> dict[str, Market]:
    """The open markets of these series, events and tickers, over REST (rec-market-feed
    follows them; rec-paper mirrors them)."""
    found: dict[str, Market] = {}
    for key, values in (("series_ticker", series), ("event_ticker", events)):
        for value in values:
            async for m in rest.iter_markets(**{key: value}, status="open", limit=1000):
                found[m.ticker] = m
    for chunk in chunks(tickers, ORDERBOOKS_PER_CALL):
        page = await rest.get_markets(tickers=chunk, limit=1000)
        found.update((m.ticker, m) for m in page.items if m.status in OPEN_STATUSES)
    return found


def series_of(ticker: str) -> str:
    return ticker.split("-", 1)[0]


def event_of(ticker: str) -> str:
    return ticker.rsplit("-", 1)[0]


class MarketFeedService(FeedUpkeep, Service):
    pool = None
    rest = None
    ws: KalshiWS | None = None

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        s = settings
        self.series = csv_list(s.market_feed_series)
        self.events = csv_list(s.market_feed_events)
        self.explicit = csv_list(s.market_feed_tickers)
        self.followed: dict[str, Market | None] = {}  # ticker -> REST model (None: from WS)
        self.close_ms: dict[str, int] = {}
        self.notifier = Notifier()
        self.mode = "starting"  # ws | http | starting
        self.subs: dict[str, Subscription] = {}
        self.exchange_ms = 0  # latest exchange time seen in a message
        self.ws_down_since: float | None = None
        self.outage_ms: int | None = None  # the WebSocket's disconnect, until its GAP records
        self.polling = False
        self.store: FeedStore | None = None
        self.tracker: Tracker | None = None
        self.pruned = 0
        self.db = DatabaseWait(self.log, self.notifier.status)
        self.last_message: float | None = None  # monotonic time of the newest batch received
        self.received = metrics.RECEIVED.labels(feed=FEED)
        self._measure()

    def _measure(self) -> None:
        metrics.use(metrics.DATA_IN)
        metrics.gauge_from(metrics.FEED_STALENESS,
                           metrics.since(time.monotonic, lambda: self.last_message), feed=FEED)
        metrics.queue_from(FEED_QUEUE, lambda: self.ws.lag() if self.ws else (0, 0.0))

    # ------------------------------------------------------------------ lifecycle

    async def start(self, phase: Phase) -> None:
        s = self.settings
        self.pool = await phase("connect to database", open_pool(s, "rec-market-feed"))
        self.store = FeedStore(self.pool, name="market-feed", batch_rows=s.market_feed_batch_rows,
                               flush_interval=s.market_feed_flush_interval_ms / 1000,
                               snapshot_interval=s.market_feed_snapshot_interval_sec,
                               db=self.db)
        self.tracker = Tracker(self.store)
        self.rest = exchange_client.rest_client(s, data=True, timeout=10)
        await phase("read the account's rate limits", self.rest.start())
        await phase("discover markets", self.discover(initial=True))
        self.spawn(self.store.run(), "feed-writer")
        if s.market_feed_mode == "ws":
            self.ws = exchange_client.ws_client(
                s, data=True, heartbeat_timeout=s.market_feed_heartbeat_timeout_sec,
                keep_books=False,  # the Tracker keeps them
                delta_runs=True)
            lockstep.watch(self.ws, before=self.store.drain)  # handled = written
            await phase("connect websocket", self.open_ws())
            self.spawn(self.consume(), "feed-consumer")
            self.spawn(self.fallback_supervisor(), "feed-fallback")
        else:
            self._switch("http", "market_feed_mode=http")
            self.spawn(self.poll_loop(), "feed-poller")
        self.spawn(self.report_loop(), "feed-status")
        self.spawn(self.prune_loop(), "feed-retention")
        self.spawn(self.compact_loop(), "feed-compactor")
        await phase(f"first snapshots of {len(self.followed)} markets",
                    self.wait_snapshots(), timeout=s.market_feed_ready_timeout_sec)
        # what exists now (modules, models, the markets) lives as long as the process: kept
        # out of every full collection, which the parsed messages waiting in a backlog
        # trigger about once a second (0.1 s each in benchmarks/feed_ingest.py, 10% of the
        # consumer's time, collecting nothing)
        gc.freeze()

    async def stop(self) -> None:
        s = self.settings
        await super().stop()
        if self.ws is not None:
            await self.ws.close()
        if self.store is not None and self.pool is not None:
            with contextlib.suppress(Exception):
                await self.store.flush_now()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.store.compact(s.market_feed_segment_sec), 5)
            with contextlib.suppress(Exception):
                await self._write_status("stopped")
        if self.rest is not None:
            await self.rest.aclose()
        if self.pool is not None:
            await self.pool.close()


    # ------------------------------------------------------------------ markets

    async def discover(self, initial: bool = False) -> list[str]:
        """The open markets of the followed series/events/tickers, over REST; returns the
        tickers that were not followed before. At start, also the true status of every
        market this feed followed that is no longer open (:meth:`settle_the_gone`)."""
        found = await self._open_markets()
        new = [t for t in found if t not in self.followed]
        await self.db.run("storing market ids", self.store.ensure_ids, found)  # type: ignore[union-attr]
        for t, m in found.items():
            self.followed[t] = m
            if m.close_time:
                self.close_ms[t] = int(m.close_time.timestamp() * 1000)
        await self._save_markets(list(found.values()))
        if initial:
            await self.settle_the_gone(list(found))
            self.log.info("following %d open markets (series %s, events %s, tickers %s)",
                          len(found), ",".join(self.series) or "-",
                          ",".join(self.events) or "-", ",".join(self.explicit) or "-")
        return new

    async def _open_markets(self) -> dict[str, Market]:
        assert self.rest is not None
        return await open_markets(self.rest, self.series, self.events, self.explicit)

    # only this feed's share of ``markets``: another app host's feed follows the other series
    # (REC_MARKET_FEED_SERIES split between hosts) and keeps their rows its own
    _SHARE = "(m.series_ticker = ANY(%s) OR m.event_ticker = ANY(%s) OR m.ticker = ANY(%s))"

    async def settle_the_gone(self, open_now: list[str]) -> None:
        """Every market of this feed's share that is not open now but whose stored status is
        not final (it closed, settled or was halted while the feed was down) gets its true
        status and result from the exchange (``GET /markets?tickers=``, 100 a call, paced by
        the client's rate budget); then it is no longer followed and its freshness is
        ``closed``."""
        mine = (self.series, self.events, self.explicit)
        rows = await self.db.run("reading markets", self._fetch,
            f"SELECT ticker FROM markets m WHERE {self._SHARE} AND NOT ticker = ANY(%s) "
            "AND coalesce(status, '') <> ALL(%s)", (*mine, open_now, list(FINAL_STATUSES)))
        gone = [t for (t,) in rows]
        truth: list[Market] = []
        for chunk in chunks(gone, ORDERBOOKS_PER_CALL):
            page = await self.rest.get_markets(tickers=chunk, limit=len(chunk))  # type: ignore[union-attr]
            truth += [m for m in page.items if m.status not in OPEN_STATUSES]
        await self._save_markets(truth, followed=False)
        if truth:
            self.log.info("%d market(s) closed while the feed was away: %s", len(truth),
                          ", ".join(f"{m.ticker} {m.status}" for m in truth[:10]))
        await self.db.run("unfollowing closed markets", self._execute,
            (f"UPDATE markets m SET followed = false WHERE followed AND NOT ticker = ANY(%s) "
             f"AND {self._SHARE}", (open_now, *mine)),
            (f"UPDATE feed_freshness f SET snapshot_at = NULL, state = CASE WHEN f.ticker = "
             f"ANY(%s) THEN 'live' ELSE 'closed' END FROM markets m WHERE m.ticker = f.ticker "
             f"AND {self._SHARE}", (open_now, *mine)))

    async def _fetch(self, sql: str, args: tuple) -> list[tuple]:
        async with self.pool.connection() as conn:  # type: ignore[union-attr]
            return await (await conn.execute(sql, args)).fetchall()

    async def _execute(self, *statements: tuple[str, tuple]) -> None:
        """(sql, args) statements in one transaction."""
        async with self.pool.connection() as conn:  # type: ignore[union-attr]
            for sql, args in statements:
                await conn.execute(sql, args)

    def wanted(self, ticker: str) -> bool:
        return (series_of(ticker) in self.series or event_of(ticker) in self.events
                or ticker in self.explicit)

    async def _save_markets(self, markets: list[Market], followed: bool = True) -> None:
        if not markets:
            return
        rows = [(m.ticker, m.event_ticker, series_of(m.ticker), m.title or "", m.status,
                 m.strike_type, m.floor_strike, m.cap_strike, m.open_time, m.close_time,
                 m.expected_expiration_time, m.result, m.price_level_structure,
                 json.dumps(m.model_dump(mode="json", exclude_none=True)), followed)
                for m in markets]

        async def save() -> None:
            async with self.pool.connection() as conn:  # type: ignore[union-attr]
                async with conn.cursor() as cur:
                    await cur.executemany(SAVE_MARKET, rows)

        await self.db.run("storing markets", save)

    async def add_market(self, ticker: str) -> None:
        """A lifecycle message opened a market we follow: store it and subscribe."""
        if ticker in self.followed or not self.wanted(ticker):
            return
        assert self.rest is not None
        try:
            m = await self.rest.get_market(ticker)
        except KalshiError as exc:
            self.log.warning("new market %s: cannot read it over REST: %s", ticker, exc)
            return
        if m.status not in OPEN_STATUSES or ticker in self.followed:
            return
        await self.db.run("storing market ids", self.store.ensure_ids,  # type: ignore[union-attr]
                          [ticker])
        self.followed[ticker] = m
        if m.close_time:
            self.close_ms[ticker] = int(m.close_time.timestamp() * 1000)
        await self._save_markets([m])
        await self.db.run("following a market", self._execute,
            ("UPDATE feed_freshness SET state = 'live' WHERE ticker = %s", (ticker,)))
        if self.ws is not None:
            for sub in self.subs.values():
                with contextlib.suppress(KalshiError, TimeoutError):
                    await self.ws.add_markets(sub, [ticker])
        self.log.info("now following %s (opened; %d markets)", ticker, len(self.followed))

    async def drop_market(self, ticker: str, why: str, result: str | None = None,
                          body: dict[str, Any] | None = None) -> None:
        """A followed market closed (``why``: its lifecycle event or ``closed``): unsubscribe
        and store the status. A market of ours dropped before (closed, now determined or
        settled) only has its status and result brought up to date. ``body``: the lifecycle
        message, whose settlement value and determination / settlement times are stored."""
        if ticker in self.followed:
            del self.followed[ticker]
            self.close_ms.pop(ticker, None)
            assert self.tracker is not None
            self.tracker.forget(ticker)
            if self.ws is not None:
                for sub in self.subs.values():
                    with contextlib.suppress(KalshiError, TimeoutError):
                        await self.ws.delete_markets(sub, [ticker])
            self.log.info("no longer following %s (%s; %d markets)", ticker, why,
                          len(self.followed))
        elif not self.wanted(ticker):
            return
        # never back: a late "closed" (past close time) after "settled" keeps "settled"
        later = list(DONE_ORDER[DONE_ORDER.index(why) + 1:]) if why in DONE_ORDER else []
        get = (body or {}).get
        await self.db.run("storing a closed market", self._execute,
            ("UPDATE markets SET followed = false, status = CASE WHEN status = ANY(%s) THEN "
             "status ELSE %s END, result = coalesce(%s, result), settlement_value = "
             "coalesce(%s, settlement_value), determined_at = coalesce(to_timestamp(%s), "
             "determined_at), settled_at = coalesce(to_timestamp(%s), settled_at), "
             "updated_at = now() WHERE ticker = %s",
             (later, why, result or None, dec(get("settlement_value")),
              _seconds(get("determination_ts")), _seconds(get("settled_ts")), ticker)),
            ("UPDATE feed_freshness SET state = 'closed' WHERE ticker = %s", (ticker,)))

    # ------------------------------------------------------------------ WebSocket

    async def open_ws(self) -> None:
        assert self.ws is not None
        tickers = list(self.followed)
        for channel in ("orderbook_delta", "ticker", "trade"):
            self.subs[channel] = await self.ws.subscribe(channel, market_tickers=tickers)
        await self.ws.subscribe("market_lifecycle_v2")
        await self.ws.start()
        await self.ws.wait_connected()
        self._switch("ws", "websocket connected")

    async def consume(self) -> None:
        """The feed's hot path: each message to its handler by type (:meth:`_handlers`);
        data handlers are plain calls, the others (lifecycle, connection events) awaited."""
        assert self.ws is not None and self.store is not None
        ws, store = self.ws, self.store
        data, events = self._handlers()
        received = self.received
        while True:
            batch = await ws.recv_batch()
            received.inc(len(batch))  # per batch, not per message: the hot path
            self.last_message = time.monotonic()
            for m in batch:
                handle = data.get(m.type)
                if handle is not None:
                    handle(m)
                else:
                    event = events.get(m.type)
                    if event is not None:
                        await event(m)
                if store.backlogged:
                    await store.room()

    def _handlers(self) -> tuple[dict[str, Callable[[WsMessage], None]],
                                 dict[str, Callable[[WsMessage], Awaitable[None]]]]:
        data = {DELTA_RUN: self._on_deltas, "ticker": self._on_ticker,
                "orderbook_snapshot": self._on_snapshot, "trade": self._on_trade}
        events = {"market_lifecycle_v2": self._on_lifecycle,
                  "client.connected": self._on_connected,
                  "client.disconnected": self._on_disconnected,
                  "client.seq_gap": self._on_seq_gap, "client.resynced": self._on_resynced,
                  "error": self._on_error}
        return data, events

    # -- data (KalshiWS has checked seq and book sync; the Tracker keeps the levels) ------

    def _on_deltas(self, m: WsMessage) -> None:
        """A run of orderbook_delta frames (KalshiWS's ``delta_runs``) into the Tracker's
        books; a market whose book refused a delta is resynced."""
        frames = m.msg
        for ticker, why in self.tracker.ws_deltas(frames, m.received_at):  # type: ignore[union-attr]
            self.log.warning("%s: %s; resyncing", ticker, why)
            self.ws.resync(ticker)  # type: ignore[union-attr]
        last = frames[-1]  # the exchange's time: the stream's latest, once a run
        self._seen(last["msg"].get("ts_ms") or last.get("sending_ts_ms"))

    def _on_ticker(self, m: WsMessage) -> None:
        body = m.msg
        ticker = body.get("market_ticker")
        if ticker in self.followed:
            ts_ms = body.get("ts_ms")
            self.tracker.tick(ticker, Quote.from_ws(body), utc_ms(ts_ms), "ws",  # type: ignore[union-attr]
                              m.received_at, m.sending_ts_ms)
            self._seen(ts_ms or m.raw.get("sending_ts_ms"))

    def _on_snapshot(self, m: WsMessage) -> None:
        body = m.msg
        ticker = body.get("market_ticker")
        if ticker in self.followed:
            yes = {dec(p): dec(q) for p, q in body.get("yes_dollars_fp") or ()}
            no = {dec(p): dec(q) for p, q in body.get("no_dollars_fp") or ()}
            if self.outage_ms is not None:  # the first data after a reconnect
                self._outage_gaps()
            st = self.tracker.markets.get(ticker)  # type: ignore[union-attr]
            reason = "resync" if st is not None and st.has_book else "initial"
            self.tracker.book(ticker, yes, no, "ws", reason, m.received_at,  # type: ignore[union-attr]
                              (m.seq, body.get("ts_ms"), m.sending_ts_ms))
            self._seen(m.raw.get("sending_ts_ms"))

    def _on_trade(self, m: WsMessage) -> None:
        body = m.msg
        ticker = body.get("market_ticker")
        if ticker in self.followed:
            ts_ms = body.get("ts_ms") or 0
            self.tracker.trade(ticker, body.get("trade_id") or "", ts_ms,  # type: ignore[union-attr]
                               dec(body.get("yes_price_dollars")), dec(body.get("count_fp")),
                               body.get("taker_outcome_side"), m.received_at, m.seq,
                               m.sending_ts_ms)
            self._seen(ts_ms or m.raw.get("sending_ts_ms"))

    def _seen(self, ts_ms: Any) -> None:
        """The exchange's time: a message's own ts_ms, else the venue's send time
        (``sending_ts_ms``, top level of any message)."""
        if type(ts_ms) is int and ts_ms > self.exchange_ms:
            self.exchange_ms = ts_ms

    # -- lifecycle and connection events -------------------------------------------------

    async def _on_lifecycle(self, m: WsMessage) -> None:
        self._seen(m.raw.get("sending_ts_ms"))
        if isinstance(m.msg, dict):
            await self.lifecycle(m.msg)

    async def _on_connected(self, m: WsMessage) -> None:
        self.ws_down_since = None
        if m.msg.get("reconnect"):
            self.log.info("websocket reconnected; books resync from fresh snapshots")

    async def _on_disconnected(self, m: WsMessage) -> None:
        self.ws_down_since = time.monotonic()
        if self.outage_ms is None:
            self.outage_ms = now_ms()
        self.log.warning("websocket disconnected; reconnecting with backoff")

    def _outage_gaps(self) -> None:
        """A GAP record per followed market for the WebSocket outage that ends now (its
        first snapshot after the reconnect), before that snapshot's BOOK."""
        since, self.outage_ms = self.outage_ms, None
        for ticker in self.followed:
            self.tracker.gap(ticker, feed_log.GAP_OUTAGE, since=since)  # type: ignore[union-attr]

    async def _on_seq_gap(self, m: WsMessage) -> None:
        body = m.msg
        channel = body.get("channel")
        self.log.warning("seq gap on %s (expected %s, got %s): asking for a fresh snapshot",
                         channel, body.get("expected"), body.get("got"))
        reason = GAP_REASONS.get(channel)
        sub = self.subs.get(channel)
        if reason is None or sub is None:
            return
        for ticker in sub.market_tickers:  # which market's message was lost is unknown
            if ticker in self.followed:
                self.tracker.gap(ticker, reason, body.get("expected"), body.get("got"))  # type: ignore[union-attr]

    async def _on_resynced(self, m: WsMessage) -> None:
        self.log.info("resynced %s for %d market(s)", m.msg.get("channel"),
                      len(m.msg.get("tickers") or ()))

    async def _on_error(self, m: WsMessage) -> None:
        body = m.msg if isinstance(m.msg, dict) else {}
        if body.get("code") == 25:
            self.log.warning("the exchange dropped this connection: the feed did not "
                             "keep up (error 25); reconnecting, books resync")
        else:
            self.log.warning("exchange error message: %s", m.msg)

    async def lifecycle(self, body: dict[str, Any]) -> None:
        ticker = body.get("market_ticker")
        event = body.get("event_type")
        if not ticker or not event:
            return
        if event in ("created", "activated") and self.wanted(ticker):
            if event == "created" and body.get("open_ts") and self.exchange_ms and \
                    body["open_ts"] * 1000 > self.exchange_ms:
                return  # not open yet: "activated" follows
            await self.add_market(ticker)
        elif event in DONE_EVENTS:
            await self.drop_market(ticker, event, body.get("result"), body)

    # ------------------------------------------------------------------ fallback

    def _switch(self, mode: str, why: str) -> None:
        if mode == self.mode:
            return
        old, self.mode = self.mode, mode
        text = {"ws": "market data over WebSocket",
                "http": f"market data over REST polling every "
                        f"{self.settings.market_feed_poll_interval_sec:g}s"}[mode]
        if old == "starting":
            self.log.info("feed mode %s: %s", mode, why)
        else:
            self.log.warning("feed switched %s -> %s: %s", old, mode, why)
        self.notifier.status(f"{text} ({len(self.followed)} markets)")

    async def fallback_supervisor(self) -> None:
        """In ws mode: poll REST while the WebSocket is down past the limits; back to the
        WebSocket as soon as it is connected and every book is resynced."""
        assert self.ws is not None
        s = self.settings
        ws = self.ws
        poller: asyncio.Task[None] | None = None
        try:
            while True:
                await asyncio.sleep(0.1)
                connected = ws.connected.is_set()
                if not connected and self.ws_down_since is None:
                    self.ws_down_since = time.monotonic()
                if self.mode == "ws" and not connected and s.market_feed_fallback:
                    down = time.monotonic() - (self.ws_down_since or time.monotonic())
                    fails = ws.consecutive_failures
                    if fails >= s.market_feed_fallback_after_failures or \
                            down >= s.market_feed_fallback_after_sec:
                        self._switch("http", f"websocket down for {down:.1f}s after {fails} "
                                     "failed attempt(s); polling REST until it holds")
                        poller = asyncio.create_task(self.poll_loop(), name="feed-poller")
                elif self.mode == "http" and connected:
                    books = [ws.books.get(t) for t in self.followed]
                    if all(b is not None and b.valid for b in books):
                        if poller is not None:
                            poller.cancel()
                            await asyncio.gather(poller, return_exceptions=True)
                            poller = None
                        self._switch("ws", "websocket connected and every book resynced")
                if poller is not None and poller.done() and poller.exception() is not None:
                    raise poller.exception()  # type: ignore[misc]
        finally:
            if poller is not None:
                poller.cancel()

    async def poll_loop(self) -> None:
        """Poll books and ticker values over REST (http mode or fallback)."""
        s = self.settings
        last_discover = time.monotonic()
        while True:
            t0 = time.monotonic()
            try:
                await self.poll_once()
                if self.ws is None and t0 - last_discover >= 60:
                    last_discover = t0
                    await self._rediscover()
            except KalshiError as exc:
                self.log.warning("REST poll failed: %s", exc)
            await asyncio.sleep(max(0.0, s.market_feed_poll_interval_sec
                                    - (time.monotonic() - t0)))

    async def _rediscover(self) -> None:
        before = set(self.followed)
        await self.discover()
        for t in before - set(self.followed):
            await self.drop_market(t, "closed")

    async def poll_once(self) -> None:
        assert self.rest is not None and self.tracker is not None and self.store is not None
        tickers = list(self.followed)
        for i in range(0, len(tickers), ORDERBOOKS_PER_CALL):
            chunk = tickers[i:i + ORDERBOOKS_PER_CALL]
            data = await self.rest.request("GET", "/markets/orderbooks",
                                           params={"tickers": chunk})
            received = self.last_message = time.monotonic()
            self.received.inc(len(data.get("orderbooks") or ()))
            for item in data.get("orderbooks") or []:
                t = item.get("ticker")
                if t not in self.followed:
                    continue
                book = item.get("orderbook_fp") or {}
                yes = {dec(p): dec(q) for p, q in book.get("yes_dollars") or ()}
                no = {dec(p): dec(q) for p, q in book.get("no_dollars") or ()}
                self.tracker.book(t, yes, no, "http", "poll", received)
            page = await self.rest.get_markets(tickers=chunk, limit=len(chunk))
            for m in page.items:
                if m.ticker not in self.followed:
                    continue
                if m.status not in OPEN_STATUSES:
                    await self.drop_market(m.ticker, m.status or "closed")
                    continue
                ts = m.updated_time or datetime.now(UTC)
                self.tracker.tick(m.ticker, Quote(
                    m.yes_bid_dollars, m.yes_ask_dollars, m.yes_bid_size_fp, m.yes_ask_size_fp,
                    m.last_price_dollars, m.volume_fp, m.open_interest_fp), ts, "http", received)
            await self.store.room()

    # ------------------------------------------------------------------ READY, status

    async def wait_snapshots(self) -> None:
        assert self.store is not None
        store = self.store
        while True:
            missing = [t for t in self.followed if t not in store.snapshotted]
            if not missing:
                self.log.info("first snapshot of every followed market stored (%d markets)",
                              len(self.followed))
                return
            self.notifier.status(f"starting: first snapshots: {len(missing)} of "
                                 f"{len(self.followed)} markets to go")
            store.snapshot_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(store.snapshot_event.wait(), 1.0)

    async def report_loop(self) -> None:
        """feed_status row and STATUS= every few seconds; closes markets past close time."""
        last_status = ""
        while True:
            for t, close in list(self.close_ms.items()):
                if self.exchange_ms and self.exchange_ms >= close:
                    await self.drop_market(t, "closed")
            with contextlib.suppress(Exception):
                await self._write_status(self.mode)
            depth, age = self.ws.lag() if self.ws is not None else (0, 0.0)
            text = (f"{'WebSocket' if self.mode == 'ws' else 'REST polling'}: "
                    f"{len(self.followed)} markets, {self.store.batches if self.store else 0} "
                    f"batches, queue {depth} (oldest {age * 1000:.0f} ms)")
            if age > 5:
                self.log.warning("consumer lag: %d messages queued, oldest %.1fs", depth, age)
            if text != last_status:
                self.notifier.status(text)
                last_status = text
            await clock.sleep(2.0)  # feed_status's age is read in SQL time
