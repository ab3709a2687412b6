"""Health checks over the pricing tables, in rec-web's Check shape (an awaitable that raises
with the reason): for ``/api/health`` and ``/readyz`` to report a stale index or a failing
series by name rather than paper over it. Wire them as, e.g.:

    checks["index"] = index_check(pool, s.coordinator_series, s.price_feed_stale_after_sec)
    checks["strike_table"] = strike_table_check(pool, s.coordinator_series)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Check = Callable[[], Awaitable[None]]


def _series(text: str) -> list[tuple[str, str]]:
    from app.services.coordinator import parse_series

    return parse_series(text)


class PricingUnhealthy(Exception):
    pass


def index_check(pool: Any, coordinator_series: str, max_age_sec: float) -> Check:
    """Every index the coordinator needs is live and its newest row younger than max_age."""
    indices = list(dict.fromkeys(ix for _, ix in _series(coordinator_series)))

    async def check() -> None:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT index_name, state, detail, extract(epoch FROM now() - "
                "last_received_at)::float8 FROM index_freshness WHERE index_name = ANY(%s)",
                (indices,))
            got = {r[0]: r[1:] for r in await cur.fetchall()}
        bad = []
        for ix in indices:
            if ix not in got:
                bad.append(f"{ix}: no value stored yet")
                continue
            state, detail, age = got[ix]
            if state != "live" or age is None or age > max_age_sec:
                age_text = "never" if age is None else f"{age:.0f}s ago"
                bad.append(f"{ix}: {state}{' (' + detail + ')' if detail else ''}, "
                           f"last value {age_text}")
        if bad:
            raise PricingUnhealthy("; ".join(bad))

    return check


def strike_table_check(pool: Any, coordinator_series: str, max_age_sec: float = 10.0) -> Check:
    """Every followed series was priced in a recent cycle; else the failing ones and why."""
    series = [s for s, _ in _series(coordinator_series)]

    async def check() -> None:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT series_ticker, ok, error, extract(epoch FROM now() - updated_at)::float8 "
                "FROM series_status WHERE series_ticker = ANY(%s)", (series,))
            got = {r[0]: r[1:] for r in await cur.fetchall()}
        bad = []
        for s in series:
            if s not in got:
                bad.append(f"{s}: not priced yet")
            elif not got[s][0]:
                bad.append(f"{s}: {got[s][1]}")
            elif got[s][2] > max_age_sec:
                bad.append(f"{s}: last cycle {got[s][2]:.0f}s ago")
        if bad:
            raise PricingUnhealthy("; ".join(bad))

    return check
