"""rec-trade-executor (port 8001): sends the manager's order legs to the exchange, exactly once.

The manager writes each leg to ``trade_orders`` with a client_order_id derived from the trade
and the leg (``rec-<install>-<trade>-<leg>``) and wakes this service by NOTIFY. A leg is sent
as a V2 limit order with the configured time in force; the client repeats the same body after
an unknown outcome (5xx, timeout, lost answer), and a 409 for that client_order_id is resolved
by looking the order up, so one leg can never be two orders, whatever fails and however often
this process dies. A leg's fate comes from the exchange's record of its client_order_id, never
from an error code: a rejection, a 409 or an expiry after a pause is written only after the
order was looked up (``settle_refused``: a retry after a lost answer may meet ``market_closed``
while the first attempt's order executed). On start, before anything else, and every
``IN_DOUBT_EVERY_SEC`` after, every leg not final is looked up ("in doubt": new legs that may
have been sent by a process killed before the answer came; accepted legs still resting, whose
order may have ended unseen). A leg whose write has an unknown outcome after the client's
retries is marked in doubt (``in_doubt_since``): rec-trade-manager refuses opens on its
market while it is (NautilusTrader's rule), until the exchange's record settles the leg.

The exchange's schedule: during a trading pause no order is sent; legs wait (``pause_policy``
``wait``, up to ``intent_max_wait_sec``) or expire. Cancels still go through: a leg the manager
gives up while it rests (state ``cancel``) is canceled at the exchange at once, paused or not,
and its final fill count read back (``canceled``). The account's rate limits pace every call
(``KalshiRest.start``); the order entry's signed headers are made ahead
(``KalshiRest.keep_presigned``). Results: an accepted open leg is reported straight to
rec-trade-manager (``POST /legs/{coid}/accepted``), which writes it with the trade's move in
one statement; every other result (accepted closes, rejected with the exchange's error text,
expired, canceled), and an accepted open the manager cannot take (down, slow, refusing), is
written to the leg's row here and the manager woken by NOTIFY.

Safety nets at the exchange: one order group per strategy with a contract limit over Kalshi's
rolling 15 s window (orders carry its id), triggered by the kill switch, reset when it is off;
the exits' group ("supervisor", every close) is left alone so open trades can still be closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
from psycopg import AsyncConnection
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import exchange_client
from app.db.pool import conninfo, open_pool
from app.kalshi.errors import (
    KalshiError,
    KalshiHTTPError,
    KalshiNotFound,
    KalshiRateLimited,
    KalshiServerError,
)
from app.kalshi.http1 import Http1Pool
from app.kalshi.models import OrderAck
from app.kalshi.prices import InvalidPrice
from app.kalshi.rest import ORDERS_V2, RetryPolicy
from app.runtime import clock, metrics
from app.runtime.service import Phase
from app.services import trade_common as tc
from app.services.trade_common import Json

EXIT_GROUP = "supervisor"  # the order group of every close (never triggered by the kill switch)
PAUSED_CODES = ("trading_is_paused", "exchange_paused", "trading_paused")
SWEEP_SEC = 1.0
STATUS_EVERY_SEC = 5.0
REPORT_TIMEOUT_SEC = 0.5  # rec-trade-manager not answering by then: the leg is written here
IN_DOUBT_EVERY_SEC = 5.0
IN_DOUBT_BATCH = 100
# legs not final: new (maybe sent by a process that died, or after a lost answer), or accepted
# and still resting (its order may have ended unseen)
IN_DOUBT = """
SELECT client_order_id, ticker, state, exchange_order_id FROM trade_orders
WHERE (state = 'new' OR (state = 'accepted' AND remaining_count > 0))
  AND created_at < now() - make_interval(secs => %s)
ORDER BY created_at LIMIT %s
"""

# a leg whose write has an unknown outcome (set once; the leg leaving 'new' ends the doubt)
IN_DOUBT_MARK = ("UPDATE trade_orders SET in_doubt_since = now() WHERE client_order_id = %s "
                 "AND state = 'new' AND in_doubt_since IS NULL")
# the legs in doubt now and since when the oldest is (rec_orders_in_doubt*)
IN_DOUBT_COUNT = ("SELECT count(*), extract(epoch FROM min(in_doubt_since))::float8 "
                  "FROM trade_orders WHERE state = 'new' AND in_doubt_since IS NOT NULL")


class TradeExecutorService(tc.TradingService):
    pool = None
    rest = None
    manager = None

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.inflight: set[str] = set()
        self.sending: set[asyncio.Task] = set()
        self.background: set[asyncio.Task] = set()
        self.retry_at: dict[str, float] = {}
        self.failures: dict[str, int] = {}
        self.trading_active = True
        self.groups: dict[str, str] = {}
        self.groups_supported = True
        self.kick = asyncio.Event()
        self.stats: dict[str, Any] = {"sent": 0, "accepted": 0, "rejected": 0, "expired": 0,
                                      "recovered": 0, "retries_later": 0, "in_doubt_resolved": 0,
                                      "paused_waits": 0, "canceled": 0, "reported": 0,
                                      "last_error": None}
        self.oldest_in_doubt: float | None = None  # epoch seconds: since when it is in doubt
        metrics.use(metrics.ORDERS)
        metrics.gauge_from(metrics.IN_DOUBT_AGE,
                           metrics.since(time.time, lambda: self.oldest_in_doubt))

    # ------------------------------------------------------------------ lifecycle

    async def start(self, phase: Phase) -> None:
        s = self.settings
        self.pool = await phase("connect to database", open_pool(s, "rec-trade-executor",
                                                                   autocommit=True))
        async with self.pool.connection() as conn:
            await conn.execute("SELECT 1 FROM trade_orders LIMIT 0")
        self.rest = exchange_client.rest_client(
            s, timeout=5.0, retry=RetryPolicy(max_attempts=6, base_delay=0.1, max_delay=2.0))
        await phase("read the account's rate limits", self.rest.start())
        self.rest.keep_presigned("POST", ORDERS_V2)
        self.manager = Http1Pool(f"http://{s.target_host}:{s.trade_manager_port}", 4)
        await phase("resolve in-doubt orders at the exchange", self.resolve_in_doubt())
        await phase("read the exchange schedule", self.refresh_status())
        await phase("order groups", self.ensure_groups())
        self.spawn(self.listen(), "executor-listen")
        self.spawn(self.sweep_loop(), "executor-sweep")
        self.spawn(self.status_loop(), "executor-status")
        self.spawn(self.in_doubt_loop(), "executor-in-doubt")
        await self.serve_http(phase, self.app(), s.trade_executor_port)

    async def stop(self) -> None:
        # no order left in doubt by a stop: nothing starts a send any more (the loops and the
        # HTTP server end first), then the sends under way get their answers and write them,
        # within half the stop timeout (past it, the in-doubt lookup at the next start settles
        # them)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.sending:
            self.log.info("stopping: waiting for %d order(s) in flight", len(self.sending))
            await asyncio.wait(self.sending, timeout=self.settings.stop_timeout_sec / 2)
        await super().stop()
        if self.rest is not None:
            await self.rest.aclose()
        if self.manager is not None:
            await self.manager.aclose()

    # ------------------------------------------------------------------ in doubt

    async def resolve_in_doubt(self, min_age_sec: float = 0.0) -> None:
        """Every leg not yet final may have reached the exchange before a crash or a lost
        answer: its record there (by client_order_id) decides. A new leg found there is
        recorded accepted (not sent again); an accepted leg that still rests is brought to
        the order's fill and remaining counts once the order ended. At start (``min_age_sec``
        0) and then continuously for legs not in flight and older than ``min_age_sec``."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(IN_DOUBT, (min_age_sec, IN_DOUBT_BATCH))
            rows = await cur.fetchall()
            count, self.oldest_in_doubt = await (await conn.execute(IN_DOUBT_COUNT)).fetchone()
            metrics.IN_DOUBT.set(count)
        for coid, ticker, state, oid in rows:
            if coid in self.inflight:
                continue
            if state == "new":
                await self._new_in_doubt(coid, ticker)
            else:
                await self._resting(coid, oid)

    async def _new_in_doubt(self, coid: str, ticker: str) -> None:
        found = await self.rest.find_order_by_client_id(coid, ticker=ticker)
        if found is None:
            self.log.info("in-doubt order %s: not at the exchange; it will be sent", coid)
            return
        self.stats["in_doubt_resolved"] += 1
        self.log.warning("in-doubt order %s: found at the exchange as %s (%s): recorded, "
                         "not sent again", coid, found.order_id, found.status)
        await self.accepted(coid, OrderAck.from_order(found), None)

    async def _resting(self, coid: str, oid: str) -> None:
        """An accepted leg that rests: once its order ended at the exchange, its counts."""
        order = await self.rest.get_order(oid)
        if order.status == "resting":
            return
        async with self.pool.connection() as conn:
            await conn.execute(
                "WITH u AS (UPDATE trade_orders SET fill_count = %s, remaining_count = 0 "
                "WHERE client_order_id = %s AND state = 'accepted' AND remaining_count > 0 "
                "RETURNING client_order_id) SELECT pg_notify(%s, client_order_id) FROM u",
                (order.fill_count_fp, coid, tc.CH_RESULTS))
        self.log.info("order %s (%s) ended at the exchange (%s): %s filled", coid, oid,
                      order.status, order.fill_count_fp)

    async def in_doubt_loop(self) -> None:
        while True:
            await asyncio.sleep(IN_DOUBT_EVERY_SEC)
            try:
                await self.resolve_in_doubt(IN_DOUBT_EVERY_SEC)
            except Exception as exc:
                self.log.warning("in-doubt resolution: %s; again in %.0fs", exc,
                                 IN_DOUBT_EVERY_SEC)

    # ------------------------------------------------------------------ schedule

    async def refresh_status(self) -> None:
        st = await self.rest.get_exchange_status()
        active = bool(st.trading_active and st.exchange_active)
        if active != self.trading_active:
            self.log.warning("exchange trading %s", "active again" if active else "PAUSED")
            if active:
                self.kick.set()
        self.trading_active = active

    async def status_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0 if not self.trading_active else STATUS_EVERY_SEC)
            try:
                await self.refresh_status()
            except KalshiError as exc:
                self.log.warning("exchange status: %s", exc)

    # ------------------------------------------------------------------ order groups

    async def ensure_groups(self) -> None:
        async with self.pool.connection() as conn:
            s = await tc.load_settings(conn)
            cur = await conn.execute("SELECT strategy, order_group_id, contracts_limit "
                                     "FROM order_groups")
            known = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
        for strategy in sorted(s.get("strategies") or {}):
            limit = int(tc.strategy_conf(s, strategy)["contracts_limit"])
            try:
                group = known.get(strategy, (None, None))[0]
                if group is not None:
                    try:
                        await self.rest.get_order_group(group)
                    except KalshiNotFound:
                        group = None
                if group is None:
                    group = await self.rest.create_order_group(limit)
                    self.log.info("order group for strategy %s: %s, %d contracts per 15 s",
                                  strategy, group, limit)
                elif known[strategy][1] != limit:
                    await self.rest.set_order_group_limit(group, limit)
            except KalshiNotFound as exc:
                self.groups_supported = False
                self.log.warning("the exchange serves no order groups (%s): orders go without "
                                 "one", exc)
                return
            async with self.pool.connection() as conn:
                await conn.execute(
                    "INSERT INTO order_groups (strategy, order_group_id, contracts_limit) "
                    "VALUES (%s,%s,%s) ON CONFLICT (strategy) DO UPDATE SET "
                    "order_group_id = EXCLUDED.order_group_id, "
                    "contracts_limit = EXCLUDED.contracts_limit", (strategy, group, limit))
            self.groups[strategy] = group
        if s.get("kill_switch"):
            await self.kill(True)

    async def kill(self, on: bool) -> None:
        """The kill switch at the exchange: trigger every group (its orders are canceled and
        no new order is taken until reset); off: reset them."""
        for strategy, group in self.groups.items():
            if strategy == EXIT_GROUP:
                continue  # closes must go through while entries are stopped
            try:
                if on:
                    await self.rest.trigger_order_group(group)
                else:
                    await self.rest.reset_order_group(group)
                self.log.warning("order group %s (%s) %s", group, strategy,
                                 "TRIGGERED by the kill switch" if on else "reset")
            except KalshiError as exc:
                self.log.error("order group %s (%s): %s failed: %s", group, strategy,
                               "trigger" if on else "reset", exc)
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE order_groups SET triggered_at = %s",
                               (clock.now() if on else None,))

    # ------------------------------------------------------------------ sending

    async def listen(self) -> None:
        while True:
            try:
                conn = await AsyncConnection.connect(
                    conninfo(self.settings, "rec-trade-executor-listen"), autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {tc.CH_ORDERS}")
                    await conn.execute("LISTEN trade_kill")
                    self.kick.set()  # anything written while not listening
                    async for n in conn.notifies():
                        if n.channel == "trade_kill":
                            task = asyncio.create_task(self.kill(n.payload == "on"))
                            self.background.add(task)
                            task.add_done_callback(self.background.discard)
                        else:
                            self._announced(n.payload)
            except Exception as exc:
                self.log.warning("LISTEN connection lost (%s); reconnecting", exc)
                await asyncio.sleep(1)

    def _announced(self, payload: str) -> None:
        """A leg announced by the manager: its client_order_id, or the leg itself as JSON
        (sent without reading it back; the row decides on every later attempt)."""
        if payload.startswith("{"):
            leg = json.loads(payload)
            self._spawn(leg["coid"], leg)
        else:
            self._spawn(payload)

    def _spawn(self, coid: str, leg: dict[str, Any] | None = None) -> None:
        if coid in self.inflight:
            return
        if self.retry_at.get(coid, 0) > clock.monotonic():
            return
        self.inflight.add(coid)
        task = asyncio.create_task(self.send(coid, leg), name=f"send {coid}")
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)
        task.add_done_callback(lambda t, c=coid: self.inflight.discard(c))

    async def sweep_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.kick.wait(), SWEEP_SEC)
            self.kick.clear()
            try:
                async with self.pool.connection() as conn:
                    cur = await conn.execute("SELECT client_order_id FROM trade_orders "
                                             "WHERE state IN ('new', 'cancel') "
                                             "ORDER BY created_at")
                    for (coid,) in await cur.fetchall():
                        self._spawn(coid)
            except Exception:
                self.log.exception("sweep failed")

    async def send(self, coid: str, leg: dict[str, Any] | None = None) -> None:
        try:
            if leg is not None and self.trading_active and coid not in self.failures:
                await self._submit(coid, leg["ticker"], leg["side"], leg["action"],
                                   Decimal(leg["count"]), Decimal(leg["price"]), leg["tif"],
                                   leg["strategy"], leg["on_pause"])
            else:
                await self._send(coid)
        except Exception as exc:
            self._later(coid, f"{type(exc).__name__}: {exc}")
            self.log.exception("order %s: send failed; it will be tried again", coid)

    async def _send(self, coid: str) -> None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT ticker, side, action, count, price, time_in_force, strategy, "
                "cancel_on_pause, created_at, state, exchange_order_id FROM trade_orders "
                "WHERE client_order_id = %s AND state IN ('new', 'cancel')", (coid,))
            row = await cur.fetchone()
            if row is None:
                return
            (ticker, side, action, count, price, tif, strategy, on_pause, created, state,
             oid) = row
            if state == "cancel":  # cancels go through during a pause too
                await self._cancel(coid, oid, ticker)
                return
            if not self.trading_active:
                policy = await tc.setting(conn, "pause_policy", "wait")
                max_wait = float(await tc.setting(conn, "intent_max_wait_sec", 120))
        if not self.trading_active:
            age = (clock.now() - created).total_seconds()
            if policy == "expire" or age > max_wait:
                await self.settle_refused(coid, ticker, "expired", "trading_is_paused",
                                          f"the exchange paused trading; pause_policy "
                                          f"{policy}, waited {age:.0f}s")
            else:
                self.stats["paused_waits"] += 1
                self._later(coid, "trading is paused", delay=1.0)
            return
        await self._submit(coid, ticker, side, action, count, price, tif, strategy, on_pause)

    async def _submit(self, coid: str, ticker: str, side: str, action: str, count: Decimal,
                      price: Decimal, tif: str, strategy: str, on_pause: bool) -> None:
        kw: dict[str, Any] = {"client_order_id": coid, "time_in_force": tif,
                              "cancel_order_on_pause": bool(on_pause)}
        group = self.groups.get(strategy)
        if group:
            kw["order_group_id"] = group
        t0 = time.perf_counter()
        self.stats["sent"] += 1
        metrics.ORDERS_SENT.inc()
        try:
            ack = await self.rest.create_order(ticker, side, action, count, price, **kw)
        except InvalidPrice as exc:
            await self.settle_refused(coid, ticker, "rejected", "invalid_price", str(exc))
            return
        except (KalshiRateLimited, KalshiServerError) as exc:
            await self._in_doubt(coid, ticker, exc)
            self._later(coid, str(exc))
            return
        except KalshiHTTPError as exc:  # a 409 for this client_order_id included
            if exc.code in PAUSED_CODES:
                self.trading_active = False
                self.log.warning("order %s: the exchange paused trading; the order waits", coid)
                self._later(coid, str(exc), delay=1.0)
                return
            await self.settle_refused(coid, ticker, "rejected", exc.code,
                                      exc.error_message or str(exc))
            return
        except KalshiError as exc:  # transport: outcome unknown after the client's retries
            await self._in_doubt(coid, ticker, exc)
            self._later(coid, str(exc))
            return
        took = time.perf_counter() - t0
        metrics.ROUND_TRIP.observe(took)
        await self.accepted(coid, ack, took * 1000)

    async def _in_doubt(self, coid: str, ticker: str, exc: Exception) -> None:
        """The write's outcome is unknown after the client's retries (an earlier attempt may
        have made the order): the leg is marked in doubt, so rec-trade-manager refuses opens
        on its market until the exchange's record of the client_order_id settles it."""
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(IN_DOUBT_MARK, (coid,))
                marked = cur.rowcount == 1
        except Exception as db_exc:  # the retry and the in-doubt lookup still settle it
            self.log.warning("order %s: could not mark it in doubt: %s", coid, db_exc)
            return
        if marked:
            self.log.warning("order %s on %s: outcome unknown (%s): in doubt, no open on %s "
                             "until the exchange's record settles it", coid, ticker, exc,
                             ticker)

    async def settle_refused(self, coid: str, ticker: str, state: str, code: str | None,
                             text: str) -> None:
        """A leg the answer says failed (rejected, a 409, or expired waiting out a pause) is
        settled from the exchange's record of its client_order_id, never from the error: an
        earlier attempt whose answer was lost may have made the order (a 409, or a
        ``market_closed`` met by the retry). Found: the leg is accepted as that order; not
        found: it ends ``state`` with the error."""
        found = await self.rest.find_order_by_client_id(coid, ticker=ticker)
        if found is not None:
            self.log.warning("order %s: answered %s but the exchange holds it as %s (%s): "
                             "recorded accepted", coid, code, found.order_id, found.status)
            await self.accepted(coid, OrderAck.from_order(found), None)
            return
        await self.finish(coid, state, error_code=code, error_text=text)

    async def _cancel(self, coid: str, oid: str, ticker: str) -> None:
        """Cancel a resting leg (retried like a read: cancelling twice is harmless), then read
        the order back for its final fill count."""
        try:
            await self.rest.cancel_order(oid, ticker=ticker)
        except KalshiNotFound:
            pass  # no longer resting (filled or canceled meanwhile): the order says which
        except KalshiError as exc:
            self._later(coid, f"cancel: {exc}")
            return
        order = await self.rest.get_order(oid)
        if order.status == "resting":
            self._later(coid, "cancel: the order still rests")
            return
        await self._record(
            coid, "canceled", "cancel", "state = 'canceled', fill_count = %s, "
            "remaining_count = 0, error_code = 'canceled', error_text = %s",
            (order.fill_count_fp, f"canceled by rec ({order.status} at the exchange)"
             f"{'' if self.trading_active else ' during a trading pause'}"))
        self.log.warning("order %s (%s) canceled: %s filled%s", coid, oid, order.fill_count_fp,
                         "" if self.trading_active else " (during a trading pause)")

    async def _record(self, coid: str, stat: str, from_state: str, sets: str,
                      args: tuple) -> None:
        """A leg's result: its row (``sets`` while it is ``from_state``) and the manager's
        NOTIFY, in one statement."""
        self._settled(coid, stat)
        async with self.pool.connection() as conn:
            await conn.execute(
                f"WITH u AS (UPDATE trade_orders SET {sets} WHERE client_order_id = %s "
                "AND state = %s RETURNING client_order_id) "
                "SELECT pg_notify(%s, client_order_id) FROM u",
                (*args, coid, from_state, tc.CH_RESULTS))

    def _settled(self, coid: str, stat: str) -> None:
        self.stats[stat] += 1
        self.retry_at.pop(coid, None)
        self.failures.pop(coid, None)

    async def _report(self, coid: str, ack: OrderAck, ms: float) -> bool:
        """Report an accepted open leg straight to rec-trade-manager, which writes it with the
        trade's pending -> submitted in one statement (the hop through this service's own
        write and NOTIFY saved on the intent's way). False when the manager is not reached,
        refuses or is slow: the leg is then written here and announced as any result."""
        body = json.dumps({"order_id": ack.order_id, "fill_count": str(ack.fill_count),
                           "remaining_count": str(ack.remaining_count),
                           "ack_ms": f"{ms:.3f}"}).encode()
        target = f"/legs/{quote(coid, safe='')}/accepted"
        try:
            async with asyncio.timeout(REPORT_TIMEOUT_SEC):
                try:
                    r = await self.manager.request("POST", target, {}, body)
                except httpx.TransportError:  # a kept-alive connection closed as it was used:
                    r = await self.manager.request("POST", target, {}, body)  # the same again
        except (TimeoutError, httpx.HTTPError, OSError) as exc:
            self.log.warning("order %s: rec-trade-manager not reached (%s); the leg is "
                             "written here", coid, exc or type(exc).__name__)
            return False
        if r.status_code != 200:
            self.log.warning("order %s: rec-trade-manager answered %d to the report (%s); the "
                             "leg is written here", coid, r.status_code, r.text[:200])
            return False
        return True

    def _later(self, coid: str, why: str, delay: float | None = None) -> None:
        n = self.failures[coid] = self.failures.get(coid, 0) + 1
        wait = delay if delay is not None else min(10.0, 0.2 * 2 ** min(n, 6))
        self.retry_at[coid] = clock.monotonic() + wait
        self.stats["retries_later"] += 1
        self.stats["last_error"] = why
        self.log.warning("order %s: %s; again in %.1fs (same client_order_id)", coid, why, wait)

    async def accepted(self, coid: str, ack: OrderAck, ms: float | None) -> None:
        metrics.ORDERS_ACCEPTED.inc()
        if ack.recovered:
            self.stats["recovered"] += 1
        if ms is not None and coid.endswith("-open") and await self._report(coid, ack, ms):
            self._settled(coid, "accepted")
            self.stats["reported"] += 1
        else:
            await self._record(coid, "accepted", "new", tc.LEG_ACCEPTED,
                               (ack.order_id, ack.fill_count, ack.remaining_count, ms))
        self.log.info("order %s accepted as %s: filled %s, remaining %s%s%s", coid,
                      ack.order_id, ack.fill_count, ack.remaining_count,
                      f" in {ms:.1f} ms" if ms is not None else "",
                      " (found by client_order_id after a lost answer)" if ack.recovered else "")

    async def finish(self, coid: str, state: str, *, error_code: str | None,
                     error_text: str) -> None:
        await self._record(coid, state, "new", "state = %s, error_code = %s, error_text = %s, "
                           "acked_at = now(), attempts = attempts + 1",
                           (state, error_code, error_text))
        if state == "rejected":
            metrics.ORDERS_REJECTED.labels(reason=error_code or "unknown").inc()
        self.log.warning("order %s %s by the exchange: %s: %s", coid, state, error_code,
                         error_text)

    # ------------------------------------------------------------------ HTTP

    def app(self) -> Starlette:
        return Starlette(exception_handlers=self.exception_handlers(),
                         routes=[*self.health_routes(),
                                 Route("/status", self.status_answer)])

    async def status_answer(self, request: Request) -> Response:
        return Json({**self.stats, "trading_active": self.trading_active,
                     "inflight": sorted(self.inflight), "order_groups": self.groups,
                     "order_groups_supported": self.groups_supported,
                     "waiting": sorted(c for c, t in self.retry_at.items()
                                       if t > clock.monotonic())})
