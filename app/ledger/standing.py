"""Reconciliation as a standing task of rec-trade-manager: the ledger comparison (the same as
``rec ledger check``) at start and then every ``ledger_reconcile_interval_sec``.

Each run reads the exchange's record, then rec's books (in that order: a leg written before
an order reaches the exchange is always in the books read after it), adopts the fills no
trade owns (app/ledger/adopt.py; the manager's sweep then books them and the comparison is
made again), confirms what differs by a second comparison ``CONFIRM_SEC`` later (only what
both found is a difference: a fill or balance in flight between the two reads of one
comparison has settled by then), and stores the result as a ``ledger_checks`` row (time, ok,
figures, differences as JSON; the newest ``KEEP_ROWS`` are kept). In the journal: each
difference a warning when the set of differences changes (one line a run while it stays the
same), and the first clean result after differences says so once. A run that cannot read a
record stores a failed row with the error and is tried again at the next interval. Before
rec-account-sync's first sync has stored the account (no balance row: a fresh install, or
the manager up first) there is nothing to compare yet: the run waits for it, says so once
and stores nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

from app.ledger import adopt, compare, records, report
from app.ledger.compare import LedgerResult
from app.runtime import metrics

CONFIRM_SEC = 3.0  # the second comparison after one that found differences
MIRROR_WAIT_SEC = 2.0  # how often to look for rec-account-sync's first sync
KEEP_ROWS = 10_080  # a week of runs at the default 60 s
STORE_SQL = """
WITH i AS (
    INSERT INTO ledger_checks (ok, difference_count, figures, differences, adopted, error)
    VALUES (%s, %s, %s, %s, %s, %s) RETURNING id)
DELETE FROM ledger_checks WHERE id <= (SELECT id FROM i) - %s
"""
LAST_SQL = ("SELECT checked_at, extract(epoch FROM now() - checked_at)::float8, ok, "
            "difference_count, adopted, error, differences "
            "FROM ledger_checks ORDER BY id DESC LIMIT 1")


class MirrorNotReady(Exception):
    """rec-account-sync has not stored the account yet: nothing to compare."""


async def confirmed(comparison: Callable[[], Awaitable[LedgerResult]],
                    first: LedgerResult | None = None,
                    wait: float = CONFIRM_SEC) -> LedgerResult:
    """``comparison()``'s result; when it differs, a second one ``wait`` seconds later keeps
    only the differences both found (compare.persisting)."""
    result = first if first is not None else await comparison()
    if result.equal:
        return result
    await asyncio.sleep(wait)
    return compare.persisting(result, await comparison())


class StandingLedger:
    """``loop()`` runs the comparison now and every ``interval`` seconds. ``rest``: the
    exchange client (started by the loop, retried if it cannot be), ``pool``: the database,
    ``sweep``: the manager's reconcile, run after adopting so the new trades are booked."""

    def __init__(self, pool, rest, interval: float, log: logging.Logger,
                 sweep: Callable[[], Awaitable[None]], confirm: float = CONFIRM_SEC) -> None:
        self.pool, self.rest, self.interval, self.log, self.sweep = (
            pool, rest, interval, log, sweep)
        self.confirm = confirm
        self.waited = False  # said once that the mirror is not there yet
        self.started = False
        self.last: LedgerResult | None = None
        self.runs = 0
        self._said: frozenset | None = None  # the differences last written to the journal
        metrics.use(metrics.LEDGER)

    async def loop(self) -> None:
        while True:
            try:
                await self.run()
            except MirrorNotReady:
                if not self.waited:
                    self.log.info("ledger: waiting for rec-account-sync's first sync of the "
                                  "account (no balance stored yet) before comparing")
                    self.waited = True
                await asyncio.sleep(min(self.interval, MIRROR_WAIT_SEC))
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the exchange or the database: stored, tried again
                self.log.warning("ledger: reconciliation failed: %s: %s; again in %gs",
                                 type(exc).__name__, exc, self.interval)
                await self._store_error(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.interval)

    async def compare(self) -> tuple[LedgerResult, records.Books, records.ExchangeRecord]:
        if not self.started:
            await self.rest.start()
            self.started = True
        record = await records.read_exchange(self.rest)
        async with self.pool.connection() as conn:
            books = await records.read_books(conn)
        return compare.compare(books, record), books, record

    async def _result(self) -> LedgerResult:
        return (await self.compare())[0]

    async def run(self) -> LedgerResult:
        result, books, record = await self.compare()
        if books.balance_cents is None:
            raise MirrorNotReady
        adopted = await adopt.adopt(self.pool, books, record, self.log)
        if adopted:
            self._journal(result)  # what this run found, before the adoption resolved it
            await self.sweep()  # the adopted trades booked from their fills
            result = await self._result()
        result = await confirmed(self._result, result, self.confirm)
        self.runs += 1
        self.last = result
        metrics.LEDGER_DIFFERENCES.set(len(result.differences))
        metrics.LEDGER_CHECKED.set(time.time())
        self._journal(result)
        body = report.to_dict(result)
        async with self.pool.connection() as conn:
            await conn.execute(STORE_SQL, (
                result.equal, len(result.differences), json.dumps(body["figures"]),
                json.dumps(body["differences"], default=str), len(adopted), None, KEEP_ROWS))
        return result

    def _journal(self, result: LedgerResult) -> None:
        now = frozenset((d.kind, d.detail) for d in result.differences)
        if result.equal:
            if self._said:
                self.log.warning("ledger: the books equal the exchange again")
            elif self._said is None:
                self.log.info("ledger: the books equal the exchange")
        elif now != self._said:
            self.log.warning("ledger: %d difference(s) between the books and the exchange",
                             len(result.differences))
            for d in result.differences:
                money = f" [{d.cents:+d} cents]" if d.cents is not None else ""
                self.log.warning("ledger difference %s: %s%s", d.kind, d.detail, money)
        else:
            self.log.warning("ledger: the same %d difference(s) as before",
                             len(result.differences))
        self._said = now

    async def _store_error(self, error: str) -> None:
        try:
            async with self.pool.connection() as conn:
                await conn.execute(STORE_SQL, (False, 0, "{}", "[]", 0, error, KEEP_ROWS))
        except Exception as exc:
            self.log.warning("ledger: could not store the failed run: %s", exc)


async def last_check(conn) -> dict | None:
    """The newest ``ledger_checks`` row as a dict (None: no run yet)."""
    cur = await conn.execute(LAST_SQL)
    row = await cur.fetchone()
    if row is None:
        return None
    at, age, ok, count, adopted, error, differences = row
    return {"checked_at": at, "age_sec": round(age, 3), "ok": ok, "differences": count,
            "adopted": adopted, "error": error,
            "kinds": sorted({d["kind"] for d in differences})}
