"""rec-price-feed: the settlement index, one row per second, with deltas and momentum.

Source: Kalshi's authenticated WebSocket channel ``cfbenchmarks_value`` (or
``cfbenchmarks_value_5hz``, ``price_feed_channel``) for the indices in ``price_feed_indices``
(``BRTI`` for BTC, ``ETHUSD_RTI`` for ETH): the very values the hourly markets settle on.

Startup phases: database; the last 32 minutes of each index from ``index_prices`` (so a
restart keeps its deltas); the WebSocket subscription, with ``indexlist`` checked (an index
the exchange does not list is a warning, not a guess). READY after that.

Then, for each tick: the row of its second (price, 1-minute average, deltas over 1, 2, 3, 4,
15 and 30 minutes in percent, momentum; :mod:`app.pricing.index`) is written with the tick
itself (``index_ticks``: every published value, the 5 Hz channel's too, with the venue's
``sending_ts_ms``; what a replay plays back), its ``index_freshness`` row and
``NOTIFY index_price, '<index>'`` in one transaction. Seconds with no value get no row: a
gap stays visible.

Staleness: an index with no tick for ``price_feed_stale_after_sec`` is marked ``stale`` in
``index_freshness`` (one warning line, and STATUS= names it) until ticks come back; the
client reconnects with backoff and jitter. Retention: rows older than
``price_feed_retention_days`` are deleted in batches of ``price_feed_prune_batch_rows`` by
a task of their own (app/db/retention.py), so pruning never holds up the writes.
"""

from __future__ import annotations

import contextlib
import json
import time
from decimal import Decimal
from typing import Any

from app import exchange_client
from app.config import Settings, csv_list
from app.db import retention
from app.db.pool import DatabaseWait, open_pool
from app.db.retention import Retention
from app.kalshi.ws import KalshiWS, WsCommandError
from app.pricing.index import DELTA_MINUTES, KEEP_SEC, IndexWindow, Row
from app.runtime import clock as rec_clock
from app.runtime import metrics
from app.runtime.notify import Notifier
from app.runtime.service import Phase, Service

FEED = "price"  # the feed label of this service's metrics (app/runtime/metrics.py)
QUEUE = "price-ws"  # the WebSocket client's queue of received messages

INSERT_ROW = (
    "INSERT INTO index_prices (index_name, ts, price, avg_1m, d1m, d2m, d3m, d4m, d15m, d30m, "
    "momentum, received_at) VALUES (%s, to_timestamp(%s), %s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "now()) ON CONFLICT (index_name, ts) DO UPDATE SET price = EXCLUDED.price, "
    "avg_1m = EXCLUDED.avg_1m, d1m = EXCLUDED.d1m, d2m = EXCLUDED.d2m, d3m = EXCLUDED.d3m, "
    "d4m = EXCLUDED.d4m, d15m = EXCLUDED.d15m, d30m = EXCLUDED.d30m, "
    "momentum = EXCLUDED.momentum, received_at = now()")
INSERT_TICK = (
    "INSERT INTO index_ticks (index_name, ts, value, channel, sending_ms) "
    "VALUES (%s, to_timestamp(%s / 1000.0), %s, %s, %s) ON CONFLICT DO NOTHING")
UPSERT_FRESHNESS = (
    "INSERT INTO index_freshness (index_name, state, last_ts, last_received_at, detail, "
    "updated_at) VALUES (%s, %s, to_timestamp(%s), now(), %s, now()) "
    "ON CONFLICT (index_name) DO UPDATE SET state = EXCLUDED.state, last_ts = EXCLUDED.last_ts, "
    "last_received_at = EXCLUDED.last_received_at, detail = EXCLUDED.detail, updated_at = now()")


def dec(x: float | None, places: int = 8) -> Decimal | None:
    return None if x is None else Decimal(f"{x:.{places}f}")


def row_params(index: str, row: Row) -> tuple:
    return (index, row.ts, dec(row.price), dec(row.avg_1m),
            *(dec(row.deltas[m]) for m in DELTA_MINUTES), dec(row.momentum))


def parse_tick(mtype: str, msg: dict[str, Any]) -> tuple[str, int, float] | None:
    """(index id, source time ms, value) of a cfbenchmarks message, or None."""
    try:
        if mtype == "cfbenchmarks_value_5hz":
            return msg["index_id"], int(msg["source_ts_ms"]), float(msg["value_usd"])
        data = json.loads(msg["data"])
        return msg["index_id"], int(data["time"]), float(data["value"])
    except (KeyError, TypeError, ValueError):
        return None


class PriceFeedService(Service):
    pool = None
    ws: KalshiWS | None = None

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.indices = csv_list(settings.price_feed_indices)
        self.windows = {ix: IndexWindow() for ix in self.indices}
        self.last_tick_ms: dict[str, int] = {}  # newest source time seen per index
        # receipt time per index (clock.monotonic: a replay's stale is its time's)
        self.last_seen: dict[str, float] = {}
        self.state: dict[str, str] = dict.fromkeys(self.indices, "waiting")
        self.notifier = Notifier()
        self.rows_written = 0
        self.started = rec_clock.monotonic()
        self.db = DatabaseWait(self.log, self.notifier.status)
        self.last_message: float | None = None  # monotonic receipt time of any message
        self.received = metrics.RECEIVED.labels(feed=FEED)
        self.stored = metrics.STORED.labels(feed=FEED)
        self._measure()

    def _measure(self) -> None:
        metrics.use(metrics.DATA_IN)
        clock = time.monotonic
        metrics.gauge_from(metrics.FEED_STALENESS,
                           metrics.since(clock, lambda: self.last_message), feed=FEED)
        for ix in self.indices:
            metrics.gauge_from(metrics.INDEX_STALENESS, metrics.since(
                clock, lambda ix=ix: self.last_seen.get(ix, self.started)), index=ix)
        metrics.queue_from(QUEUE, lambda: self.ws.lag() if self.ws else (0, 0.0))

    # ------------------------------------------------------------------ lifecycle

    async def start(self, phase: Phase) -> None:
        s = self.settings
        self.pool = await phase("connect to database", open_pool(s, "rec-price-feed"))
        await phase("load recent index rows", self.load_recent())
        self.ws = exchange_client.ws_client(
            s, data=True, heartbeat_timeout=max(10.0, s.price_feed_stale_after_sec * 3))
        await phase(f"subscribe {s.price_feed_channel} {','.join(self.indices)}",
                    self.subscribe())
        self.spawn(self.consume(), "price-consumer")
        self.spawn(self.watch_staleness(), "price-staleness")
        self.spawn(retention.prune_loop(
            self.pool, [Retention("index_prices", "ts", s.price_feed_retention_days,
                                  what="index rows"),
                        Retention("index_ticks", "ts", s.price_feed_retention_days,
                                  what="index ticks")],
            self.log, s.price_feed_prune_interval_sec, s.price_feed_prune_batch_rows),
            "price-retention")

    async def stop(self) -> None:
        await super().stop()
        if self.ws is not None:
            await self.ws.close()
        if self.pool is not None:
            for ix in self.indices:  # nobody keeps these current any more: say so
                with contextlib.suppress(Exception):
                    await self._mark(ix, "stale", "rec-price-feed stopped")
            await self.pool.close()


    # ------------------------------------------------------------------ startup

    async def load_recent(self) -> None:
        async with self.pool.connection() as conn:  # type: ignore[union-attr]
            for ix in self.indices:
                cur = await conn.execute(
                    "SELECT extract(epoch FROM ts)::bigint, price::float8 FROM index_prices "
                    "WHERE index_name = %s AND ts > now() - make_interval(secs => %s) "
                    "ORDER BY ts", (ix, KEEP_SEC))
                rows = await cur.fetchall()
                self.windows[ix].load([(int(t), float(p)) for t, p in rows])
                if rows:
                    self.last_tick_ms[ix] = int(rows[-1][0]) * 1000
        self.log.info("loaded recent rows: %s", ", ".join(
            f"{ix} {len(w.prices)}" for ix, w in self.windows.items()))

    async def subscribe(self) -> None:
        assert self.ws is not None
        channel = self.settings.price_feed_channel
        await self.ws.start()
        await self.ws.wait_connected()
        sub = await self.ws.subscribe(channel, index_ids=list(self.indices))
        await self.ws.wait_connected()
        if sub.sid is None:
            raise RuntimeError(f"no subscription id for {channel}")
        try:
            reply = await self.ws.command("update_subscription",
                                          {"sid": sub.sid, "action": "indexlist"})
            listed = set((reply.get("msg") or {}).get("index_ids") or [])
        except (WsCommandError, TimeoutError) as exc:
            self.log.warning("indexlist on %s: no answer (%s); going on with %s", channel,
                             exc, ",".join(self.indices))
            return
        missing = [ix for ix in self.indices if ix not in listed]
        if missing:
            self.log.warning("%s does not list %s (listed: %s): those indices stay stale "
                             "until it does", channel, ",".join(missing),
                             ",".join(sorted(listed)) or "none")
        else:
            self.log.info("%s lists %s", channel, ",".join(sorted(listed)))

    # ------------------------------------------------------------------ ticks

    async def consume(self) -> None:
        assert self.ws is not None
        async for m in self.ws:
            if m.type == "client.disconnected":
                self.log.warning("index source disconnected; reconnecting with backoff")
                continue
            if m.type == "client.connected" and (m.msg or {}).get("reconnect"):
                self.log.info("index source reconnected")
                continue
            if m.type not in ("cfbenchmarks_value", "cfbenchmarks_value_5hz"):
                continue
            self.received.inc()
            self.last_message = time.monotonic()
            tick = parse_tick(m.type, m.msg) if isinstance(m.msg, dict) else None
            if tick is None:
                self.log.warning("unreadable %s message: %.200r", m.type, m.msg)
                continue
            await self.on_tick(*tick, channel=m.type, sending_ms=m.sending_ts_ms)

    async def on_tick(self, index: str, ts_ms: int, value: float,
                      channel: str = "cfbenchmarks_value", sending_ms: int | None = None) -> None:
        if index not in self.windows or value <= 0:
            return
        if ts_ms <= self.last_tick_ms.get(index, -1):
            return  # duplicate or out of order: ignored, as Kalshi does
        self.last_tick_ms[index] = ts_ms
        self.last_seen[index] = rec_clock.monotonic()
        row = self.windows[index].add(ts_ms // 1000, value)
        await self.write(index, row, (index, ts_ms, dec(value), channel, sending_ms))
        if self.state[index] != "live":
            if self.state[index] == "stale":
                self.log.warning("%s is live again", index)
            self.state[index] = "live"
            self._status()

    async def write(self, index: str, row: Row, tick: tuple) -> None:
        """One transaction, retried while the database is down (the ticks wait in the
        WebSocket client's queue)."""
        await self.db.run(f"writing the {index} row", self._write_once, index, row, tick)
        self.rows_written += 1
        self.stored.inc()

    async def _write_once(self, index: str, row: Row, tick: tuple) -> None:
        async with self.pool.connection() as conn:  # type: ignore[union-attr]
            async with conn.transaction():
                await conn.execute(INSERT_TICK, tick)
                await conn.execute(INSERT_ROW, row_params(index, row))
                await conn.execute(UPSERT_FRESHNESS, (index, "live", row.ts, ""))
                await conn.execute("SELECT pg_notify('index_price', %s)", (index,))

    # ------------------------------------------------------------------ staleness

    def _status(self) -> None:
        now = rec_clock.monotonic()
        parts = []
        for ix in self.indices:
            seen = self.last_seen.get(ix)
            age = f"{now - seen:.0f}s" if seen is not None else "never"
            parts.append(f"{ix} {self.state[ix]} ({age})")
        self.notifier.status("; ".join(parts))

    async def watch_staleness(self) -> None:
        limit = self.settings.price_feed_stale_after_sec
        while True:
            await rec_clock.sleep(min(1.0, limit / 2))
            now = rec_clock.monotonic()
            for ix in self.indices:
                seen = self.last_seen.get(ix, self.started)
                if now - seen <= limit or self.state[ix] == "stale":
                    continue
                self.state[ix] = "stale"
                detail = f"no value for {now - seen:.0f}s"
                self.log.warning("%s is stale: %s (source %s)", ix, detail,
                                 "connected" if self.ws and self.ws.connected.is_set()
                                 else "disconnected")
                with contextlib.suppress(Exception):
                    await self._mark(ix, "stale", detail)
            self._status()

    async def _mark(self, index: str, state: str, detail: str) -> None:
        async with self.pool.connection() as conn:  # type: ignore[union-attr]
            await conn.execute(
                "INSERT INTO index_freshness (index_name, state, detail, updated_at) "
                "VALUES (%s, %s, %s, now()) ON CONFLICT (index_name) DO UPDATE SET "
                "state = EXCLUDED.state, detail = EXCLUDED.detail, updated_at = now()",
                (index, state, detail))
            await conn.execute("SELECT pg_notify('index_price', %s)", (index,))
