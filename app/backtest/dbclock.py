"""The scratch database's ``now()`` on the replay's clock.

Under ``rec backtest`` the services' SQL asks PostgreSQL for the time (a strike's cooldown
``now() - opened_at``, an intent's expiry, the index's freshness, retention's cut-off, every
``DEFAULT now()`` column). In the scratch database only, ``now()`` is made to answer the
replay's time: a one-row table ``rec_clock.clock`` the backtest's clock updates as it
advances, a function ``rec_clock.now()`` that reads it, the database's ``search_path`` with
``rec_clock`` before ``pg_catalog`` (so an unqualified ``now()`` finds it first: PostgreSQL
searches pg_catalog first only when the path does not name it), and the column defaults
that call the built-in directly (stored as ``pg_catalog.now()``) pointed at it. rec's own
database is never touched: the scratch database is dropped after the run.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

SCHEMA = "rec_clock"
TIME_DEFAULTS = ("now()", "clock_timestamp()", "CURRENT_TIMESTAMP", "statement_timestamp()",
                 "transaction_timestamp()")


async def install(conn: psycopg.AsyncConnection, start_ms: int) -> int:
    """Install the clock (set to ``start_ms``) in ``conn``'s database; returns how many
    column defaults now follow it. New sessions see it (the services connect after)."""
    dbname = (await (await conn.execute("SELECT current_database()")).fetchone())[0]
    await conn.execute(sql.SQL(
        "CREATE SCHEMA {s}; "
        "CREATE TABLE {s}.clock (one boolean PRIMARY KEY DEFAULT true CHECK (one), "
        "ts timestamptz NOT NULL); "
        "CREATE FUNCTION {s}.now() RETURNS timestamptz LANGUAGE sql STABLE "
        "AS 'SELECT ts FROM {s}.clock'").format(s=sql.Identifier(SCHEMA)))
    await conn.execute(sql.SQL("INSERT INTO {}.clock (ts) VALUES (to_timestamp(%s / 1000.0))")
                       .format(sql.Identifier(SCHEMA)), (start_ms,))
    await conn.execute(sql.SQL('ALTER DATABASE {} SET search_path = {}, pg_catalog, "$user", '
                               "public").format(sql.Identifier(dbname), sql.Identifier(SCHEMA)))
    cur = await conn.execute(
        "SELECT n.nspname, c.relname, a.attname FROM pg_attrdef d "
        "JOIN pg_class c ON c.oid = d.adrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
        "WHERE pg_get_expr(d.adbin, d.adrelid) = ANY(%s) AND n.nspname <> %s",
        (list(TIME_DEFAULTS), SCHEMA))
    columns = await cur.fetchall()
    for schema, table, column in columns:
        await conn.execute(sql.SQL("ALTER TABLE {}.{} ALTER COLUMN {} SET DEFAULT {}.now()")
                           .format(sql.Identifier(schema), sql.Identifier(table),
                                   sql.Identifier(column), sql.Identifier(SCHEMA)))
    return len(columns)


async def set_time(conn: psycopg.AsyncConnection, ms: int) -> None:
    await conn.execute(sql.SQL("UPDATE {}.clock SET ts = to_timestamp(%s / 1000.0)")
                       .format(sql.Identifier(SCHEMA)), (ms,))
