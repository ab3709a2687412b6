"""rec-web's ``ledger`` health check over a real PostgreSQL: the newest ledger_checks row
(rec-trade-manager's standing reconciliation) judged by its result and its age, and carried
by a real rec-web's /api/health."""

from __future__ import annotations

import json

import pytest
from psycopg_pool import AsyncConnectionPool

from app.ledger.health import LedgerUnhealthy, ledger_check
from tests import data_in_fixtures as di
from tests.test_web import health_when, web  # noqa: F401  (the rec-web fixture)

INSERT = ("INSERT INTO ledger_checks (checked_at, ok, difference_count, differences, error) "
          "VALUES (now() - make_interval(secs => %s), %s, %s, %s, %s)")
TWO = json.dumps([{"kind": "cash", "ids": {}, "detail": "x", "cents": 7},
                  {"kind": "trade_pnl", "ids": {"trade_id": 1}, "detail": "y", "cents": 7}])


async def test_the_ledger_check_judges_the_last_result_and_its_age(rec_home_db):
    pool = AsyncConnectionPool(rec_home_db.db.dsn, min_size=1, max_size=2, open=False)
    await pool.open()
    conn = await di.connect(rec_home_db)
    waiting = [True]
    check = ledger_check(pool, 60, lambda: waiting[0])
    try:
        assert await check() == "waiting for the first reconciliation"  # not migrated yet
        assert rec_home_db.rec("db", "migrate").returncode == 0
        assert await check() == "waiting for the first reconciliation"
        waiting[0] = False
        with pytest.raises(LedgerUnhealthy, match="no reconciliation result yet"):
            await check()
        await conn.execute(INSERT, (5, True, 0, "[]", None))
        assert await check() == "the books equal the exchange (5s ago)"
        await conn.execute(INSERT, (2, False, 2, TWO, None))
        with pytest.raises(LedgerUnhealthy, match=r"^2 difference\(s\) between the books and "
                                                  r"the exchange \(cash, trade_pnl\), 2s ago$"):
            await check()
        await conn.execute(INSERT, (1, False, 0, "[]", "ConnectError: refused"))
        with pytest.raises(LedgerUnhealthy, match=r"\(1s ago\) failed: ConnectError: refused"):
            await check()
        # a clean result, but older than 3 intervals: the manager stopped reconciling
        await conn.execute("DELETE FROM ledger_checks")
        await conn.execute(INSERT, (181, True, 0, "[]", None))
        with pytest.raises(LedgerUnhealthy, match=r"ran 181s ago \(more than 3 intervals "
                                                  r"of 60s\)"):
            await check()
        await conn.execute(INSERT, (179, True, 0, "[]", None))
        assert await check() == "the books equal the exchange (179s ago)"
    finally:
        await conn.close()
        await pool.close()


async def test_api_health_carries_the_ledger_differences(rec_home_db, web):  # noqa: F811
    conn = await di.connect(rec_home_db)
    await conn.execute(INSERT, (0, False, 2, TWO, None))
    await conn.close()

    def named(r) -> bool:
        return "ledger" in r.json().get("failed", [])

    r = health_when(f"{web}/api/health", named)
    body = r.json()
    assert r.status_code == 503 and "ledger" in body["failed"], body
    assert body["checks"]["ledger"]["error"].startswith(
        "LedgerUnhealthy: 2 difference(s) between the books and the exchange "
        "(cash, trade_pnl)"), body
    # rec-web's own readiness does not hang on the books
    ready = health_when(f"{web}/readyz", lambda r: True)
    assert "ledger" not in ready.json()["checks"], ready.json()
