"""A scratch database beside the live one: what the restore drill restores into and what a
backtest trades on. Created by the connecting role (it needs CREATEDB), dropped afterwards
(WITH (FORCE): a process still connected does not keep it)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo


@contextlib.asynccontextmanager
async def scratch_database(live: psycopg.AsyncConnection, dsn: str,
                           prefix: str) -> AsyncIterator[str]:
    """A new database ``<prefix>_<random>`` beside the one ``dsn`` names (``live``: an
    autocommit connection to it); yields its conninfo, drops it on the way out."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await live.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(dsn, dbname=name)
    finally:
        await live.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
