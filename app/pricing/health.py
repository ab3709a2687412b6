"""Health checks over the pricing tables, in rec-web's Check shape (an awaitable that raises
with the reason, or returns a note): ``/readyz`` and ``/api/health`` report a stale index or
a failing series by name rather than paper over it (rec-web wires them when this host runs
rec-price-feed / rec-coordinator).

An index or series with no row at all, or a series the coordinator reports as warming up
(its first history still coming), is "waiting" (a note, not a failure) while ``waiting``
says so: the first ``web_first_value_grace_sec`` after rec-web starts, so a fresh bring-up is
not reported broken in the second before the first values arrive. A row that exists but is
stale, or a series that failed, fails at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import errors

Check = Callable[[], Awaitable[str | None]]


def _series(text: str) -> list[tuple[str, str]]:
    from app.services.coordinator import parse_series

    return parse_series(text)


def _warming(error: str | None) -> bool:
    from app.services.coordinator import WARMING

    return (error or "").startswith(WARMING)


class PricingUnhealthy(Exception):
    pass


def _verdict(bad: list[str], missing: list[str], waiting: Callable[[], bool] | None,
             what: str) -> str | None:
    """Raise for what is bad (and for what is missing, once no longer waiting); else a note
    naming what is still awaited."""
    if missing and (waiting is None or not waiting()):
        bad = bad + missing
        missing = []
    if bad:
        raise PricingUnhealthy("; ".join(bad))
    return f"waiting for the first {what}: {', '.join(missing)}" if missing else None


async def _rows(pool: Any, sql: str, names: list[str]) -> dict[str, tuple] | None:
    """``{name: rest of row}``, or None when the table is not there (not migrated yet)."""
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(sql, (names,))
            return {r[0]: r[1:] for r in await cur.fetchall()}
    except errors.UndefinedTable:
        return None


def index_check(pool: Any, coordinator_series: str, max_age_sec: float,
                waiting: Callable[[], bool] | None = None) -> Check:
    """Every index the coordinator needs is live and its newest row younger than max_age."""
    indices = list(dict.fromkeys(ix for _, ix in _series(coordinator_series)))

    async def check() -> str | None:
        got = await _rows(pool, "SELECT index_name, state, detail, extract(epoch FROM now() - "
                                "last_received_at)::float8 FROM index_freshness "
                                "WHERE index_name = ANY(%s)", indices)
        if got is None:
            return _verdict([], ["no index_freshness table (database not migrated)"],
                            waiting, "index values")
        bad, missing = [], []
        for ix in indices:
            if ix not in got:
                missing.append(f"{ix}: no value stored yet")
                continue
            state, detail, age = got[ix]
            if state != "live" or age is None or age > max_age_sec:
                age_text = "never" if age is None else f"{age:.0f}s ago"
                bad.append(f"{ix}: {state}{' (' + detail + ')' if detail else ''}, "
                           f"last value {age_text}")
        return _verdict(bad, missing, waiting, "index values")

    return check


def strike_table_check(pool: Any, coordinator_series: str, max_age_sec: float = 10.0,
                       waiting: Callable[[], bool] | None = None) -> Check:
    """Every followed series was priced in a recent cycle; else the failing ones and why."""
    series = [s for s, _ in _series(coordinator_series)]

    async def check() -> str | None:
        got = await _rows(pool, "SELECT series_ticker, ok, error, extract(epoch FROM now() - "
                                "updated_at)::float8 FROM series_status "
                                "WHERE series_ticker = ANY(%s)", series)
        if got is None:
            return _verdict([], ["no series_status table (database not migrated)"],
                            waiting, "strike tables")
        bad, missing = [], []
        for s in series:
            if s not in got:
                missing.append(f"{s}: not priced yet")
            elif not got[s][0] and _warming(got[s][1]):
                missing.append(f"{s}: {got[s][1]}")  # history still coming: waiting
            elif not got[s][0]:
                bad.append(f"{s}: {got[s][1]}")
            elif got[s][2] > max_age_sec:
                bad.append(f"{s}: last cycle {got[s][2]:.0f}s ago")
        return _verdict(bad, missing, waiting, "strike tables")

    return check
