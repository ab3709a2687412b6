"""Helpers for the data-in service tests: the simulator runs in the test's event loop (its
clock moved by the test), the service runs as a real `rec run` process against it and a
real PostgreSQL. (No tests here.)"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from decimal import Decimal
from urllib.parse import urlsplit

import psycopg

from app.db import feed_log
from app.kalshi.signing import private_pem
from app.sim.matching import NO, YES
from app.sim.wire import dollars, fp
from tests import test_sim_fixtures as fx

FEED = "app.services.market_feed:MarketFeedService"
ACCOUNT = "app.services.account_sync:AccountSyncService"


def prepare(home, h: fx.SimHandle, **env: str) -> None:
    """Point a migrated rec home at the simulator ``h`` with the test key as credentials."""
    assert home.rec("db", "migrate").returncode == 0
    home.env["REC_EXCHANGE_SIM_PORT"] = str(urlsplit(h.base).port)
    home.credential("kalshi_key_id", h.signer.key_id)
    home.credential("kalshi_private_key", private_pem(h.signer.private_key).decode())
    home.env.update({
        "REC_LOG_LEVEL": "info",
        "REC_KALSHI_WS_BACKOFF_BASE_SEC": "0.05",
        "REC_KALSHI_WS_BACKOFF_MAX_SEC": "0.3",
        "REC_MARKET_FEED_READY_TIMEOUT_SEC": "20",
        **env,
    })


async def wait_notify(svc, key: str, value: str | None = None, timeout: float = 30.0):
    try:
        return await asyncio.to_thread(svc.notify.wait_for, key, value, timeout)
    except TimeoutError:
        raise AssertionError(f"no {key}={value} within {timeout}s; output:\n"
                             f"{svc.output[-4000:]}") from None


async def started(start_service, home, h: fx.SimHandle, unit: str = FEED, **env: str):
    """:func:`prepare` ``home`` for ``h``, run ``unit`` and wait for its READY."""
    prepare(home, h, **env)
    svc = start_service(home, unit)
    await wait_notify(svc, "READY", "1")
    return svc


async def until(cond, within: float = 15.0, what: str = "condition", svc=None):
    """Poll an async or plain condition until truthy; fail with ``what`` after ``within``."""
    deadline = time.monotonic() + within
    while True:
        got = cond()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            tail = f"\noutput:\n{svc.output[-4000:]}" if svc is not None else ""
            raise AssertionError(f"{what} not reached within {within}s{tail}")
        await asyncio.sleep(0.05)


async def connect(home) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(home.db.dsn, autocommit=True)


async def rows(conn: psycopg.AsyncConnection, sql: str, *args) -> list[tuple]:
    cur = await conn.execute(sql, args or None)
    return await cur.fetchall()


async def count(conn: psycopg.AsyncConnection, table: str) -> int:
    return (await rows(conn, f"SELECT count(*) FROM {table}"))[0][0]


def sim_books(h: fx.SimHandle, tickers) -> dict[tuple[str, str, Decimal], Decimal]:
    out = {}
    for t in tickers:
        book = h.sim.exchange.books[t]
        for outcome, side in ((YES, "yes"), (NO, "no")):
            for p, q in book.qty[outcome].items():  # price in $0.0001 units
                if q:
                    out[(t, side, Decimal(p) / 10_000)] = Decimal(q)
    return out


async def db_books(conn, tickers) -> dict[tuple[str, str, Decimal], Decimal]:
    got = await rows(conn, "SELECT ticker, side, price, quantity FROM feed_book_levels "
                           "WHERE ticker = ANY(%s)", list(tickers))
    return {(t, s, Decimal(p)): Decimal(q) for t, s, p, q in got}


async def stored_tickers(conn) -> list[str]:
    """Every market rec-market-feed has stored history of."""
    return [t for (t,) in await rows(conn, "SELECT ticker FROM feed_market_ids")]


async def log_records(conn, tickers=None) -> list[feed_log.Record]:
    """Every record in rec-market-feed's history (of ``tickers``, default all), in order."""
    out: list[feed_log.Record] = []
    for t in tickers or await stored_tickers(conn):
        out += await feed_log.market_records(conn, t)
    return out


TradeKey = tuple[str, int, Decimal, Decimal, str | None]


async def log_trades(conn, tickers) -> Counter[TradeKey]:
    """The public trades in the history (stored without their exchange ids): how many times
    each (ticker, time, yes price, count, taker side) is stored."""
    out: Counter[TradeKey] = Counter()
    for t in tickers:
        for r in await feed_log.market_records(conn, t, kinds=frozenset((feed_log.TRADE,))):
            d = r.data
            out[(t, r.ms, d["yes_price"], d["count"], d["taker_outcome_side"])] += 1
    return out


def sim_trades(h: fx.SimHandle, tickers) -> Counter[TradeKey]:
    """The simulator's public trades of ``tickers``, keyed as :func:`log_trades`."""
    tickers = set(tickers)
    return Counter((t.ticker, t.ts_ms, Decimal(dollars(t.yes_price)), Decimal(fp(t.count)),
                    t.taker_outcome) for t in h.sim.exchange.trades if t.ticker in tickers)


async def log_books(conn, tickers) -> dict[tuple[str, str, Decimal], Decimal]:
    """The books rebuilt from the history (last snapshot + level changes), as db_books."""
    out = {}
    for t in tickers:
        book = await feed_log.book_at(conn, t)
        assert book is not None, f"no snapshot of {t} in the feed log"
        for side, levels in zip(("yes", "no"), book, strict=True):
            out.update({(t, side, p): q for p, q in levels.items()})
    return out
