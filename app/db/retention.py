"""Retention: rows of a growing table older than a chosen number of days, deleted in small
batches (one transaction each, other writers between them) by a loop of the service that owns
the table. One place for the pruning every service does:

- rec-price-feed: ``index_prices`` (``price_feed_retention_days``);
- rec-auto-entry: ``auto_entry_decisions`` (``auto_entry_decisions_retention_days``);
- rec-trade-manager: ``trade_events`` of finished trades (``trade_events_retention_days``,
  0 keeps them: they are the trades' own history);
- rec-market-feed: whole ``feed_log`` segments by their end time
  (``market_feed_retention_days``).

What is never pruned: the books (``trades``, ``trade_orders``, ``trade_intents`` and the
``account_*`` mirror), which the ledger compares with the exchange; ``ledger_checks`` keeps its
newest week by row count (app/ledger/standing.py). docs/bundle.md lists every table's bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

BATCH_ROWS = 5_000
INTERVAL_SEC = 300.0
PAUSE_SEC = 0.05  # between batches: the owner's writers have the database meanwhile


@dataclass(frozen=True)
class Retention:
    table: str
    time_column: str
    days: float  # 0: keep everything
    where: str = ""  # a further condition on the rows that may go (SQL, no parameters)
    what: str = "rows"  # for the journal: "index rows", "decisions", ...

    def statement(self) -> str:
        extra = f" AND ({self.where})" if self.where else ""
        return (f"DELETE FROM {self.table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {self.table} "
                f"WHERE {self.time_column} < now() - make_interval(secs => %s){extra} "
                f"LIMIT %s))")


async def prune(pool, r: Retention, batch_rows: int = BATCH_ROWS) -> int:
    """Delete what ``r`` lets go, ``batch_rows`` a transaction; the number deleted."""
    if r.days <= 0:
        return 0
    total = 0
    while True:
        async with pool.connection() as conn:
            cur = await conn.execute(r.statement(), (r.days * 86_400, batch_rows))
            n = cur.rowcount
        total += n
        if n < batch_rows:
            return total
        await asyncio.sleep(PAUSE_SEC)


async def prune_loop(pool, retentions: list[Retention], log: logging.Logger,
                     interval: float = INTERVAL_SEC, batch_rows: int = BATCH_ROWS,
                     on_pruned: Callable[[int], None] | None = None) -> None:
    """Prune every ``retentions`` entry now and every ``interval`` seconds; a failed round is
    a warning and tried again, never fatal. ``on_pruned(n)``: told what each round deleted."""
    while True:
        for r in retentions:
            try:
                n = await prune(pool, r, batch_rows)
            except Exception as exc:
                log.warning("retention: %s: %s: %s", r.table, type(exc).__name__, exc)
                continue
            if n:
                log.info("retention: deleted %d %s older than %g days", n, r.what, r.days)
                if on_pruned is not None:
                    on_pruned(n)
        await asyncio.sleep(interval)
