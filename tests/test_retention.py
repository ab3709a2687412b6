"""Retention (app/db/retention.py) over a real PostgreSQL: rows older than the setting go in
small batches, newer ones and what the condition protects stay; 0 days keeps everything; and
a real rec-auto-entry prunes its own decisions at start, saying so in its journal."""

from __future__ import annotations

import asyncio
import logging

from psycopg_pool import AsyncConnectionPool

from app.db import retention
from app.db.retention import Retention
from app.trading import statements
from tests import data_in_fixtures as di

AGED = "now() - make_interval(days => %s)"


async def count(conn, sql: str) -> int:
    return (await di.rows(conn, sql))[0][0]


async def test_old_rows_go_in_batches_and_what_is_protected_stays(rec_home_db):
    assert rec_home_db.rec("db", "migrate").returncode == 0
    pool = AsyncConnectionPool(rec_home_db.db.dsn, min_size=1, max_size=2, open=False)
    await pool.open()
    conn = await di.connect(rec_home_db)
    try:
        for days in (40, 40, 40, 40, 40, 3):
            await conn.execute("INSERT INTO auto_entry_decisions (ts, decision, reason) "
                               f"VALUES ({AGED}, 'skip', 'test')", (days,))
        decisions = Retention("auto_entry_decisions", "ts", 30)
        assert await retention.prune(pool, decisions, batch_rows=2) == 5  # three batches
        assert await count(conn, "SELECT count(*) FROM auto_entry_decisions") == 1
        assert await retention.prune(pool, decisions) == 0

        ids = {}
        for status in ("closed", "open"):
            cur = await conn.execute(
                "INSERT INTO trades (ticker, side, status, quantity) VALUES ('T', 'yes', %s, 1) "
                "RETURNING id", (status,))
            ids[status] = (await cur.fetchone())[0]
            for days in (400, 1):
                await conn.execute("INSERT INTO trade_events (trade_id, ts, kind) "
                                   f"VALUES (%s, {AGED}, 'test')", (ids[status], days))
        events = statements.finished_trade_events(0)
        assert await retention.prune(pool, events) == 0  # 0 days: kept
        events = statements.finished_trade_events(365)
        assert await retention.prune(pool, events) == 1  # the closed trade's old event only
        left = await di.rows(conn, "SELECT trade_id, ts > now() - interval '2 days' "
                                   "FROM trade_events ORDER BY trade_id, ts")
        assert left == [(ids["closed"], True), (ids["open"], False), (ids["open"], True)], left
    finally:
        await conn.close()
        await pool.close()


async def test_a_failing_round_is_a_warning_and_the_loop_goes_on(rec_home_db, caplog):
    pool = AsyncConnectionPool(rec_home_db.db.dsn, min_size=1, max_size=2, open=False)
    await pool.open()
    log = logging.getLogger("test-retention")
    try:
        task = asyncio.create_task(retention.prune_loop(
            pool, [Retention("no_such_table", "ts", 1)], log, interval=0.05))
        await asyncio.sleep(0.3)
        assert not task.done()  # never fatal
        task.cancel()
    finally:
        await pool.close()
    assert any("retention: no_such_table: UndefinedTable" in r.getMessage()
               for r in caplog.records), caplog.text
