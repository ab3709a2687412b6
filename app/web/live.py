"""Live updates for the browser: PostgreSQL NOTIFY in, Server-Sent Events out.

One dedicated connection LISTENs on the channels the data services notify on; each
notification is fanned out to every connected browser (``GET /api/events``), which then
fetches the panels that channel feeds. The connection is re-opened with a backoff when it
drops; while it is down the browsers get an ``offline`` event (the page says so), and a
``resync`` event when it is back, since notifications sent meanwhile are lost.

rec-web itself publishes on ``units`` when systemd's view of the rec units changes, and a
``heartbeat`` every few seconds with the age of the data behind the pages
(:mod:`app.web.freshness`): a browser that hears nothing for a while knows the stream is dead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import psycopg

log = logging.getLogger(__name__)

# channel -> who sends it
CHANNELS = {
    "rec_market_feed": "rec-market-feed: a batch of ticks, book levels, trades (payload: tickers)",
    "rec_account": "account tables changed (triggers of migration 006)",
    "index_price": "rec-price-feed: a new index second",
    "strike_table": "rec-coordinator: a new strike table / watchlist",
    "trades": "a trade changed (payload: trade id; triggers of migration 006)",
    "trading_settings": "a trading setting changed (payload: key; migration 006)",
}
QUEUE_MAX = 256  # events held for one slow browser; past that it is told to resync


@dataclass
class Event:
    channel: str
    payload: str
    at: float  # time.time() when rec-web received it

    def sse(self, replayed: bool = False) -> bytes:
        """The event on the wire; ``replayed`` (an old event sent to a new browser) adds
        ``held``: the seconds since it was published, which the page adds to its ages."""
        body = {"channel": self.channel, "payload": self.payload, "at": self.at}
        if replayed:
            body["held"] = round(max(0.0, time.time() - self.at), 3)
        data = json.dumps(body)
        return f"event: {self.channel}\ndata: {data}\n\n".encode()


class Hub:
    """Subscribers' queues; ``publish`` never blocks (a full queue gets a resync instead)."""

    def __init__(self) -> None:
        self.subscribers: set[asyncio.Queue] = set()
        self.closed = False
        self.online = False
        self.heartbeat: Event | None = None  # the last one: a new browser gets it at once

    def publish(self, channel: str, payload: str = "") -> None:
        event = Event(channel, payload, time.time())
        if channel == "heartbeat":
            self.heartbeat = event
        for q in list(self.subscribers):
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(Event("resync", "queue overflow", time.time()))

    async def stream(self, keepalive: float = 15.0) -> AsyncIterator[bytes]:
        q: asyncio.Queue = asyncio.Queue(QUEUE_MAX)
        self.subscribers.add(q)
        try:
            yield b"retry: 2000\n\n"
            yield Event("hello", "online" if self.online else "offline", time.time()).sse()
            if self.heartbeat is not None:
                yield self.heartbeat.sse(replayed=True)
            while not self.closed:
                try:
                    event = await asyncio.wait_for(q.get(), keepalive)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if event is None:
                    break
                yield event.sse()
        finally:
            self.subscribers.discard(q)

    def close(self) -> None:
        self.closed = True
        for q in list(self.subscribers):
            while not q.empty():
                q.get_nowait()
            q.put_nowait(None)


class Listener:
    """LISTEN on ``CHANNELS`` over its own connection and publish to ``hub``."""

    def __init__(self, conninfo: str, hub: Hub, channels: list[str] | None = None) -> None:
        self.conninfo = conninfo
        self.hub = hub
        self.channels = list(CHANNELS) if channels is None else channels
        self._task: asyncio.Task | None = None
        self.connected = asyncio.Event()

    async def start(self, timeout: float = 10.0) -> None:
        self._task = asyncio.create_task(self._run(), name="listen")
        await asyncio.wait_for(self.connected.wait(), timeout)

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
            except psycopg.OperationalError as exc:
                log.warning("live updates: cannot connect (%s); retrying in %.1fs",
                            str(exc).strip().splitlines()[0] if str(exc) else exc, delay)
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)
                continue
            try:
                async with conn:
                    for ch in self.channels:
                        await conn.execute(f'LISTEN "{ch}"')
                    delay = 0.5
                    if not self.hub.online:
                        self.hub.online = True
                        self.hub.publish("resync", "listening")
                    self.connected.set()
                    async for n in conn.notifies():
                        self.hub.publish(n.channel, n.payload)
            except psycopg.OperationalError as exc:
                log.warning("live updates: connection lost (%s); reconnecting", exc)
            self.hub.online = False
            self.connected.clear()
            self.hub.publish("offline", "database connection lost")
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
