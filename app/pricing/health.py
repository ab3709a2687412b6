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

from app.pricing.series import SeriesState, parse_series

Check = Callable[[], Awaitable[str | None]]


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


Verdict = tuple[bool, str] | None  # (failing now, why) or (waiting, why); None: fine


def _table_check(pool: Any, table: str, sql: str, names: list[str], what: str,
                 judge: Callable[[str, tuple | None], Verdict],
                 waiting: Callable[[], bool] | None) -> Check:
    """Read ``table``'s rows for ``names`` and judge each (its row, or None when it has none)."""
    async def check() -> str | None:
        got = await _rows(pool, sql, names)
        if got is None:
            return _verdict([], [f"no {table} table (database not migrated)"], waiting, what)
        bad, missing = [], []
        for name in names:
            verdict = judge(name, got.get(name))
            if verdict is not None:
                (bad if verdict[0] else missing).append(verdict[1])
        return _verdict(bad, missing, waiting, what)

    return check


def index_check(pool: Any, coordinator_series: str, max_age_sec: float,
                waiting: Callable[[], bool] | None = None) -> Check:
    """Every index the coordinator needs is live and its newest row younger than max_age."""
    indices = list(dict.fromkeys(ix for _, ix in parse_series(coordinator_series)))

    def judge(ix: str, row: tuple | None) -> Verdict:
        if row is None:
            return False, f"{ix}: no value stored yet"
        state, detail, age = row
        if state != "live" or age is None or age > max_age_sec:
            age_text = "never" if age is None else f"{age:.0f}s ago"
            return True, (f"{ix}: {state}{' (' + detail + ')' if detail else ''}, "
                          f"last value {age_text}")
        return None

    return _table_check(
        pool, "index_freshness", "SELECT index_name, state, detail, extract(epoch FROM now() - "
        "last_received_at)::float8 FROM index_freshness WHERE index_name = ANY(%s)",
        indices, "index values", judge, waiting)


def strike_table_check(pool: Any, coordinator_series: str, max_age_sec: float = 10.0,
                       waiting: Callable[[], bool] | None = None) -> Check:
    """Every followed series was priced in a recent cycle; else the failing ones and why. A
    series still warming up (its first history coming) is waiting, like one not priced yet.
    A priced series whose asks rec-coordinator withholds (rec-market-feed quiet: its
    ``error`` says so) passes with that as the note: the probabilities are current, the asks
    are not there to trade on (rec-web's market feed check is the one that fails)."""
    series = [s for s, _ in parse_series(coordinator_series)]
    withheld: list[str] = []

    def judge(name: str, row: tuple | None) -> Verdict:
        if row is None:
            return False, f"{name}: not priced yet"
        state, error, age = row
        if state != SeriesState.PRICED:
            return state != SeriesState.WARMING, f"{name}: {error}"
        if age > max_age_sec:
            return True, f"{name}: last cycle {age:.0f}s ago"
        if error:
            withheld.append(f"{name}: {error}")
        return None

    table = _table_check(
        pool, "series_status", "SELECT series_ticker, state, error, extract(epoch FROM now() - "
        "updated_at)::float8 FROM series_status WHERE series_ticker = ANY(%s)",
        series, "strike tables", judge, waiting)

    async def check() -> str | None:
        withheld.clear()
        notes = [await table(), *withheld]
        return "; ".join(n for n in notes if n) or None

    return check
