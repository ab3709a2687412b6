"""Connection info from Settings and an AsyncConnectionPool opened with a bounded wait."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from app.config import Settings
from app.runtime import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


def conninfo(settings: Settings, application_name: str = "rec") -> str:
    password = settings.db_password.get_secret_value() if settings.db_password else None
    params = {
        "host": settings.db_host,
        "port": settings.db_port,
        "dbname": settings.db_name,
        "user": settings.db_user,
        "sslmode": settings.db_sslmode,
        "connect_timeout": max(1, int(settings.db_connect_timeout_sec)),
        "application_name": application_name,
    }
    if password:
        params["password"] = password
    if settings.db_sslrootcert:
        params["sslrootcert"] = settings.db_sslrootcert
    return make_conninfo("", **params)


def describe(settings: Settings) -> str:
    """Where the database is, for log lines (never the password)."""
    return f"{settings.db_user}@{settings.db_host}:{settings.db_port}/{settings.db_name}"


class DatabaseUnreachable(Exception):
    pass


async def wait_reachable(settings: Settings, application_name: str) -> None:
    """Connect once, retrying for db_connect_timeout_sec; each failure is logged with its reason."""
    deadline = time.monotonic() + settings.db_connect_timeout_sec
    info = conninfo(settings, application_name)
    attempt = 0
    while True:
        attempt += 1
        try:
            conn = await psycopg.AsyncConnection.connect(info)
        except psycopg.OperationalError as exc:
            reason = "; ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
            reason = reason or repr(exc)
            if time.monotonic() >= deadline:
                raise DatabaseUnreachable(
                    f"database {describe(settings)} unreachable after {attempt} attempts: {reason}"
                ) from None
            log.warning("database %s not reachable yet (%s); retrying", describe(settings), reason)
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        else:
            await conn.close()
            return


class MeasuredPool(AsyncConnectionPool):
    """The pool whose every wait for a connection is ``rec_db_pool_wait_seconds``."""

    async def getconn(self, timeout: float | None = None) -> Any:
        t0 = time.perf_counter()
        conn = await super().getconn(timeout)
        metrics.POOL_WAIT.observe(time.perf_counter() - t0)
        return conn


def _measure(pool: AsyncConnectionPool) -> None:
    metrics.use(metrics.DATABASE)
    metrics.gauge_from(metrics.POOL_SIZE, lambda: pool.get_stats()["pool_size"])
    metrics.gauge_from(metrics.POOL_AVAILABLE, lambda: pool.get_stats()["pool_available"])


async def open_pool(settings: Settings, application_name: str,
                    autocommit: bool = False) -> AsyncConnectionPool:
    """Open the pool once the database answers; bounded by db_connect_timeout_sec.

    ``autocommit``: a statement outside ``conn.transaction()`` is its own transaction (one
    round trip instead of BEGIN, the statement and COMMIT)."""
    await wait_reachable(settings, application_name)
    pool = MeasuredPool(
        conninfo(settings, application_name),
        min_size=max(1, settings.db_pool_min),
        max_size=settings.db_pool_max,
        open=False,
        name=application_name,
        timeout=settings.db_connect_timeout_sec,
        reconnect_timeout=60,
        kwargs={"autocommit": True} if autocommit else None,
    )
    try:
        await pool.open(wait=True, timeout=settings.db_connect_timeout_sec)
    except Exception:
        await pool.close()
        raise
    log.info("database pool open: %s", describe(settings))
    _measure(pool)
    return pool


async def ping(pool: AsyncConnectionPool, timeout: float = 2.0) -> None:
    """Raise unless the database answers a trivial query within ``timeout``."""
    async def query() -> None:
        async with pool.connection(timeout=timeout) as conn:
            await conn.execute("SELECT 1")

    await asyncio.wait_for(query(), timeout)


# PostgreSQL down or restarting: a refused or broken connection, an administrator's shutdown
# (AdminShutdown) and the pool's PoolTimeout are all OperationalError subclasses
DATABASE_DOWN = psycopg.OperationalError


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class DatabaseWait:
    """Retry a unit of database work while PostgreSQL is down or restarting: a restart costs
    the service a wait, never a crash. The first failure is one warning line and a STATUS=
    (``status``); the recovery one info line. The work is retried whole, so it must be one
    transaction or idempotent."""

    def __init__(self, log: logging.Logger, status: Callable[[str], None],
                 max_delay: float = 5.0) -> None:
        self.log = log
        self.status = status
        self.max_delay = max_delay
        self.failures = 0  # failed attempts in the current outage
        self.outages = 0
        self.since = 0.0

    async def run(self, what: str, work: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await work(*args)``, again while the database is down."""
        delay = 0.1
        while True:
            try:
                result = await work(*args)
            except DATABASE_DOWN as exc:
                self.failures += 1
                if self.failures == 1:
                    self.outages += 1
                    self.since = time.monotonic()
                    self.log.warning("database unavailable (%s) at %s: waiting for it, "
                                     "retrying", _first_line(exc), what)
                self.status(f"waiting for the database ({what}): {_first_line(exc)}"[:300])
                await asyncio.sleep(delay)
                delay = min(self.max_delay, delay * 2)
                continue
            if self.failures:
                self.log.info("database back after %.1fs and %d failed attempt(s)",
                              time.monotonic() - self.since, self.failures)
                self.status(f"database back; {what} resumed")
                self.failures = 0
            return result
