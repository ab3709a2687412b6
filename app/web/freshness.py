"""Honest freshness: rec-web's heartbeat on the event stream.

Every ``PERIOD`` seconds rec-web reads how old the data behind the pages is and sends it to
every browser as a ``heartbeat`` event (:class:`~app.web.live.Hub`):

- the market feed: the age of rec-market-feed's own report (``feed_status``, written every
  2 s while it runs, whatever the markets do);
- each index rec-price-feed writes (``price_feed_indices``): the age of its newest second;
- the trading switches every page shows while they are on: the kill switch and auto-entry.

With each age goes the limit past which the page calls it stale and why that matters to a
trader (rec-coordinator withholds the asks after ``coordinator_max_market_age_sec`` without
the feed, and stops pricing after ``coordinator_max_index_age_sec`` without the index). The
browser adds the time since the heartbeat arrived, so the ages keep growing when rec-web
itself goes quiet, and a stream silent for ``STREAM_QUIET`` seconds is stale on its own
(``static/rec.js``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from app.web import data
from app.web.live import Hub

log = logging.getLogger(__name__)

PERIOD = 2.0  # seconds between heartbeats
STREAM_QUIET = 3 * PERIOD  # the browser calls the stream stale after this long without one
FEED_QUIET = 5.0  # rec-market-feed reports every 2 s: two reports missed


def limits(settings: Any) -> dict[str, dict[str, Any]]:
    """What counts as stale, and what it means for a trader."""
    market = float(settings.coordinator_max_market_age_sec)
    index = float(settings.coordinator_max_index_age_sec)
    return {
        "market_feed": {"after": min(FEED_QUIET, market), "label": "market feed",
                        "why": f"rec-coordinator withholds the asks after {market:g} s "
                               f"without rec-market-feed"},
        "index": {"after": index, "label": "index",
                  "why": f"P(yes) is not recomputed after {index:g} s without the index"},
        "stream": {"after": STREAM_QUIET, "label": "rec-web live stream",
                   "why": "nothing on this page is updating"},
    }


async def snapshot(pool: Any, indices: list[str]) -> dict[str, Any]:
    """``{"market_feed": age|None, "index": {name: age|None}}`` (None: never reported),
    or ``{"error": why}``."""
    try:
        feed = await data.one(pool, "SELECT extract(epoch FROM now() - updated_at)::float8 "
                                    "AS age FROM feed_status WHERE name = 'market-feed'")
        found = await data.rows(pool, """
            SELECT index_name, extract(epoch FROM now() - max(ts))::float8 AS age
            FROM index_prices WHERE index_name = ANY(%s) GROUP BY index_name""", (indices,))
    except data.Missing as exc:
        return {"error": f"not available in this database ({exc})"}
    except Exception as exc:  # the database: the browser says so, the loop goes on
        return {"error": f"database: {type(exc).__name__}"}
    ages = {r["index_name"]: r["age"] for r in found}
    return {"market_feed": feed["age"] if feed else None,
            "index": {name: ages.get(name) for name in indices},
            "trading": await trading(pool)}


async def trading(pool: Any) -> dict[str, Any] | None:
    """The switches every page shows while they are on (None: no trading settings here)."""
    try:
        found = await data.trading_settings(pool, ("kill_switch", "auto_entry_enabled",
                                                   "auto_entry_dry_run"))
    except data.Missing:
        return None
    return {k: v["value"] for k, v in found.items()}


class Heartbeat:
    """Publishes a ``heartbeat`` event with :func:`snapshot` every ``period`` seconds."""

    def __init__(self, hub: Hub, pool: Any, settings: Any, period: float = PERIOD) -> None:
        self.hub, self.pool, self.period = hub, pool, period
        self.indices = [i for i in settings.price_feed_indices.split(",") if i]
        self.limits = limits(settings)
        self.last: dict[str, Any] | None = None
        self._task: asyncio.Task | None = None

    async def beat(self) -> None:
        body = await snapshot(self.pool, self.indices)
        self.last = {**body, "limits": self.limits, "period": self.period}
        self.hub.publish("heartbeat", json.dumps(self.last))

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except Exception as exc:  # never let the heartbeat die silently
                log.error("heartbeat: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.period)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
