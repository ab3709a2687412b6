"""rec-market-feed's upkeep: its ``feed_status`` row, retention pruning of old segments, and
the compaction of committed batches into per-market segments (a mixin of
:class:`~app.services.market_feed.MarketFeedService`, which owns the attributes it reads)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from app.config import Settings
from app.db import retention
from app.db.retention import Retention
from app.kalshi.ws import KalshiWS
from app.services.market_feed.store import FeedStore


class FeedUpkeep:
    settings: Settings
    pool: Any
    store: FeedStore | None
    ws: KalshiWS | None
    followed: Any
    pruned: int
    log: logging.Logger

    async def _write_status(self, mode: str) -> None:
        depth, age = self.ws.lag() if self.ws is not None else (0, 0.0)
        detail: dict[str, Any] = {"batches": self.store.batches if self.store else 0,
                                  "rows": self.store.rows_written if self.store else 0,
                                  "pruned": self.pruned}
        if self.ws is not None:
            st = self.ws.stats
            detail.update(connects=st.connects, reconnects=st.reconnects,
                          messages=st.messages, seq_gaps=st.seq_gaps, resyncs=st.resyncs,
                          heartbeat_timeouts=st.heartbeat_timeouts,
                          queue_full_waits=st.queue_full_waits)
        async with self.pool.connection() as conn:  # type: ignore[union-attr]
            await conn.execute(
                "INSERT INTO feed_status (name, mode, since, queue_depth, queue_oldest_age_ms, "
                "followed, detail, updated_at) VALUES ('market-feed', %s, now(), %s, %s, %s, "
                "%s, now()) ON CONFLICT (name) DO UPDATE SET since = CASE WHEN "
                "feed_status.mode = EXCLUDED.mode THEN feed_status.since ELSE now() END, "
                "mode = EXCLUDED.mode, queue_depth = EXCLUDED.queue_depth, "
                "queue_oldest_age_ms = EXCLUDED.queue_oldest_age_ms, "
                "followed = EXCLUDED.followed, detail = EXCLUDED.detail, updated_at = now()",
                (mode, depth, int(age * 1000), len(self.followed), json.dumps(detail)))

    # ------------------------------------------------------------------ retention

    def prune_loop(self):
        """Whole segments past ``market_feed_retention_days`` (app/db/retention.py)."""
        s = self.settings
        return retention.prune_loop(
            self.pool, [Retention("feed_log", "t1", s.market_feed_retention_days,
                                  what="segments")],
            self.log, s.market_feed_prune_interval_sec, s.market_feed_prune_batch_rows,
            on_pruned=self._pruned)

    def _pruned(self, n: int) -> None:
        self.pruned += n

    async def compact_loop(self) -> None:
        """Move the committed batches into per-market segments every interval."""
        s = self.settings
        assert self.store is not None
        while True:
            await asyncio.sleep(s.market_feed_compact_interval_sec)
            try:
                await self.store.compact(s.market_feed_segment_sec)
            except Exception as exc:  # the rows stay hot; the next round moves them
                self.log.warning("feed log compaction failed: %s: %s", type(exc).__name__, exc)
