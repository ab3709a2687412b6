"""rec-web's ``ledger`` health check: the last result of rec-trade-manager's standing
reconciliation (the newest ``ledger_checks`` row, app/ledger/standing.py), in rec-web's Check
shape (an awaitable that raises with the reason, or returns a note).

- the books equal the exchange: ok, with a note of the result's age;
- differences: failing, naming their count, their kinds and the result's age;
- a run that could not read a record: failing with its error;
- the newest result older than 3 reconcile intervals (the manager stopped reconciling):
  failing, naming its age;
- no result yet (or no table): a note while ``waiting()`` (the first-value grace after rec-web
  starts, as for the pricing checks), then failing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import errors

from app.ledger.standing import last_check

Check = Callable[[], Awaitable[str | None]]
STALE_INTERVALS = 3


class LedgerUnhealthy(Exception):
    pass


def verdict(last: dict[str, Any] | None, interval_sec: float, waiting: bool) -> str | None:
    """The check's answer for the newest result ``last`` (None: none yet): a note, or raise."""
    if last is None:
        if waiting:
            return "waiting for the first reconciliation"
        raise LedgerUnhealthy("no reconciliation result yet")
    age = last["age_sec"]
    if age > STALE_INTERVALS * interval_sec:
        raise LedgerUnhealthy(f"the last reconciliation ran {age:.0f}s ago (more than "
                              f"{STALE_INTERVALS} intervals of {interval_sec:g}s)")
    if last["error"]:
        raise LedgerUnhealthy(f"the last reconciliation ({age:.0f}s ago) failed: "
                              f"{last['error']}")
    if not last["ok"]:
        raise LedgerUnhealthy(f"{last['differences']} difference(s) between the books and the "
                              f"exchange ({', '.join(last['kinds'])}), {age:.0f}s ago")
    return f"the books equal the exchange ({age:.0f}s ago)"


def ledger_check(pool: Any, interval_sec: float, waiting: Callable[[], bool]) -> Check:
    async def check() -> str | None:
        try:
            async with pool.connection() as conn:
                last = await last_check(conn)
        except errors.UndefinedTable:
            last = None  # not migrated yet: nothing stored
        return verdict(last, interval_sec, waiting())

    return check
