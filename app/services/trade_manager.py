"""rec-trade-manager (port 4000): the one writer of trades.

``POST /trades`` takes an intent (open or close) with an idempotency key. An open is checked
(the market, its price grid, the risk limits, the kill switch) before anything can reach the
exchange; then, in one transaction, the trade (``pending``), its ``trade_events`` row and the
order leg for rec-trade-executor (``trade_orders``, with the client_order_id derived from the
trade and the leg) are written and the executor is woken by NOTIFY.

The state machine (every transition a ``trade_events`` row in the transaction that makes it):

    pending -> submitted -> open -> closing -> closed
    pending -> rejected | canceled | expired;  submitted -> canceled (nothing filled)
    open/closing -> expired (the market closed; the settlement is booked when it is known)

Opens and closes are confirmed from the fills rec-account-sync stores (``account_fills``):
a leg the exchange acknowledged becomes a position only when its fills are in the ledger.
Fees are the fills' own fees; P&L is cash in minus cash out, in cents.

The way of an open (one statement per hop): ``OPEN_SQL`` writes the trade, its leg, its event
and the intent and wakes the executor (NOTIFY); the executor reports the exchange's
acknowledgement to ``POST /legs/{coid}/accepted``, where the leg's result and the trade's
``pending -> submitted`` are written by one statement, and a ``POST /trades?wait=`` waiting for
it is answered. Results the executor writes itself arrive by NOTIFY (``results_loop``).

Other endpoints: ``GET /trades``, ``GET /trades/{id}`` (with its events), ``GET/PUT
/settings`` (the trading settings table, an audit row per change), ``POST /kill-switch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from psycopg import AsyncConnection
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.db.pool import conninfo, open_pool
from app.kalshi.prices import InvalidPrice, PriceGrid
from app.runtime.service import Phase
from app.services import trade_common as tc
from app.services.trade_common import (
    CANCELED,
    CLOSED,
    CLOSING,
    EXPIRED,
    OPEN,
    PENDING,
    REJECTED,
    SUBMITTED,
    BadInput,
    Json,
    error,
)

KEY_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
TICKER_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
OPEN_MARKET_STATES = ("active", "open")
EXIT_GROUP = "supervisor"  # the order group of every close
SWEEP_SEC = 0.5
WRITER_LOCK = 13013  # session advisory lock: one rec-trade-manager per database


ACTIVE_SQL = "('pending', 'submitted', 'open', 'closing')"
# An open intent in one statement (one round trip). ``c``: the idempotency key, the trading
# settings, the market's trading fields and the risk figures. The trade, its open leg
# (client_order_id = rec-<install>-<trade>-open), its first event, the intent and the
# executor's NOTIFY are written only if the key is new, the settings and the market are exactly
# the ones the manager checked the request against (its last copies, as jsonb text) and the
# risk figures are within the bounds it computed from them (``_risk_bounds``). Otherwise nothing
# is written and ``c`` is returned: the manager checks again with it (a refusal names the rule)
# and retries.
OPEN_SQL = f"""
WITH c AS (
    SELECT (SELECT intent FROM trade_intents WHERE idempotency_key = %(key)s) AS c_known,
           (SELECT jsonb_object_agg(key, value) FROM trading_settings)::text AS c_settings,
           (SELECT jsonb_build_object(
                'ticker', m.ticker, 'status', m.status, 'event_ticker', m.event_ticker,
                'price_level_structure', m.price_level_structure,
                'raw', jsonb_build_object('price_level_structure', m.raw->'price_level_structure',
                                          'price_ranges', m.raw->'price_ranges'))
            FROM markets m WHERE m.ticker = %(ticker)s)::text AS c_market,
           (SELECT coalesce(sum(quantity), 0) FROM trades WHERE ticker = %(ticker)s
            AND status IN {ACTIVE_SQL}) AS c_held,
           (SELECT coalesce(sum(CASE WHEN entry_cost IS NOT NULL THEN entry_cost + fees
                                     ELSE quantity * limit_price END), 0)
            FROM trades WHERE status IN {ACTIVE_SQL}) AS c_exposure,
           (SELECT coalesce(sum(pnl_cents), 0) FROM trades
            WHERE closed_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
               AS c_pnl),
ok AS (
    SELECT 1 FROM c WHERE c_known IS NULL AND c_settings = %(settings)s
       AND c_market = %(market)s AND c_held <= %(max_held)s
       AND c_exposure <= %(max_exposure)s AND c_pnl > %(min_pnl)s),
t AS (
    INSERT INTO trades (ticker, side, status, quantity, requested_count, limit_price, strategy,
                        entry_method, open_key, event_ticker)
    SELECT %(ticker)s, %(side)s, 'pending', %(count)s, %(count)s, %(price)s, %(strategy)s,
           %(entry_method)s, %(key)s, %(event_ticker)s FROM ok
    RETURNING *),
o AS (
    INSERT INTO trade_orders (client_order_id, trade_id, leg, ticker, side, action, count, price,
                              time_in_force, strategy, cancel_on_pause)
    SELECT %(prefix)s || t.id || '-open', t.id, 'open', t.ticker, t.side, 'buy', t.quantity,
           t.limit_price, %(tif)s, t.strategy, %(on_pause)s FROM t
    RETURNING client_order_id),
e AS (
    INSERT INTO trade_events (trade_id, kind, to_status, detail)
    SELECT t.id, 'created', 'pending',
           %(created)s::jsonb || jsonb_build_object('client_order_id', o.client_order_id)
    FROM t, o),
i AS (
    INSERT INTO trade_intents (idempotency_key, intent, trade_id, request)
    SELECT %(key)s, 'open', t.id, %(request)s::jsonb FROM t)
SELECT c.*, t.*, (SELECT pg_notify(%(channel)s, json_build_object(
    'coid', o.client_order_id, 'ticker', t.ticker, 'side', t.side, 'action', 'buy',
    'count', t.quantity::text, 'price', t.limit_price::text, 'tif', %(tif)s,
    'strategy', t.strategy, 'on_pause', %(on_pause)s)::text) FROM t, o) AS c_notified
FROM c LEFT JOIN t ON true
"""
# acknowledged open legs ``o``: their trades pending -> submitted, each with its event; the
# trades returned (the common result, on the intent -> acknowledgement path). ``{locked}``:
# where several trades move, ``l`` holds them locked in id order, the order every transaction
# here that moves several trades locks them in (so none waits on another in a cycle)
_SUBMITTED = """
u AS (
    UPDATE trades t SET status = 'submitted', updated_at = now() FROM o{locked}
    WHERE t.id = o.trade_id AND t.status = 'pending' RETURNING t.*),
e AS (
    INSERT INTO trade_events (trade_id, kind, from_status, to_status, detail)
    SELECT u.id, 'order accepted', 'pending', 'submitted', jsonb_build_object(
        'client_order_id', o.client_order_id, 'exchange_order_id', o.exchange_order_id,
        'fill_count', o.fill_count::text, 'remaining_count', o.remaining_count::text)
    FROM u JOIN o ON o.trade_id = u.id)
"""
# legs the executor wrote as accepted (and announced by NOTIFY)
ACCEPTED_OPENS = f"""
WITH o AS (
    SELECT trade_id, client_order_id, exchange_order_id, fill_count, remaining_count
    FROM trade_orders WHERE client_order_id = ANY(%s) AND leg = 'open' AND state = 'accepted'),
l AS MATERIALIZED (
    SELECT t.id FROM trades t JOIN o ON o.trade_id = t.id WHERE t.status = 'pending'
    ORDER BY t.id FOR UPDATE OF t),
{_SUBMITTED.format(locked=" JOIN l ON l.id = o.trade_id")}
SELECT * FROM u
"""
# an open leg the executor reports accepted straight to the manager (``POST
# /legs/{coid}/accepted``): the leg's acknowledgement and the trade's move written together;
# ``c_written`` is 0 when the leg was no longer new (already written: nothing done)
REPORTED_OPEN = f"""
WITH o AS (
    UPDATE trade_orders SET {tc.LEG_ACCEPTED}
    WHERE client_order_id = %s AND leg = 'open' AND state = 'new'
    RETURNING trade_id, client_order_id, exchange_order_id, fill_count, remaining_count),
{_SUBMITTED.format(locked="")}
SELECT (SELECT count(*) FROM o) AS c_written, u.* FROM (SELECT 1) AS one LEFT JOIN u ON true
"""
# the legs whose result can move their trade: an acknowledged open, a rejected, expired or
# canceled leg, an order that ended (nothing remaining, or account-sync saw it executed or
# canceled); a resting order is left alone until one of those holds
RESULTS = """
SELECT t.id, t.status, t.side, t.quantity, t.ticker, o.client_order_id, o.leg, o.state,
       o.exchange_order_id, o.fill_count, o.remaining_count, o.error_code, o.error_text
FROM trades t JOIN trade_orders o ON o.trade_id = t.id
 AND o.leg = CASE WHEN t.status IN ('pending', 'submitted') THEN 'open'
                  ELSE 'close' || t.close_attempts END
WHERE t.status IN ('pending', 'submitted', 'closing') AND o.state <> 'new'
  AND (t.status = 'pending' OR o.state IN ('rejected', 'expired', 'canceled')
       OR o.remaining_count = 0
       OR EXISTS (SELECT 1 FROM account_orders a WHERE a.order_id = o.exchange_order_id
                  AND a.status IN ('executed', 'canceled')))
"""


# entries that rest and are given up: with the kill switch's close flag, or resting longer than
# open_order_max_rest_sec; the leg becomes 'cancel' (rec-trade-executor cancels it at the
# exchange, during a trading pause too), with a 'cancel requested' event naming the rule
CANCEL_RESTING = """
WITH s AS (
    SELECT coalesce((SELECT value FROM trading_settings WHERE key = 'kill_switch')::text::boolean
                    AND (SELECT value FROM trading_settings
                         WHERE key = 'kill_switch_close_open')::text::boolean, false) AS kill,
           coalesce((SELECT value FROM trading_settings
                     WHERE key = 'open_order_max_rest_sec')::text::numeric, 0) AS max_rest),
c AS (
    SELECT o.client_order_id, o.trade_id,
           CASE WHEN s.kill THEN 'kill_switch_close_open' ELSE 'open_order_max_rest_sec' END
               AS rule
    FROM trade_orders o JOIN trades t ON t.id = o.trade_id CROSS JOIN s
    WHERE t.status = 'submitted' AND o.leg = 'open' AND o.state = 'accepted'
      AND o.remaining_count > 0
      AND (s.kill OR (s.max_rest > 0
                      AND o.acked_at < now() - make_interval(secs => s.max_rest::float8)))
      AND NOT EXISTS (SELECT 1 FROM account_orders a WHERE a.order_id = o.exchange_order_id
                      AND a.status IN ('executed', 'canceled'))),
u AS (
    UPDATE trade_orders o SET state = 'cancel' FROM c
    WHERE o.client_order_id = c.client_order_id AND o.state = 'accepted'
    RETURNING o.client_order_id),
e AS (
    INSERT INTO trade_events (trade_id, kind, detail)
    SELECT c.trade_id, 'cancel requested',
           jsonb_build_object('client_order_id', c.client_order_id, 'rule', c.rule)
    FROM c JOIN u USING (client_order_id))
SELECT c.trade_id, c.client_order_id, c.rule, pg_notify(%s, c.client_order_id)
FROM c JOIN u USING (client_order_id)
"""


class RiskRefused(Exception):
    def __init__(self, limit: str, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.limit, self.message, self.detail = limit, message, detail


class Conflict(Exception):
    def __init__(self, code: str, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.detail = code, message, detail


# --- input ------------------------------------------------------------------------------------

def _str(body: dict, name: str, pattern: re.Pattern | None = None, required: bool = True,
         choices: tuple[str, ...] | None = None, default: str | None = None) -> str | None:
    v = body.get(name)
    if v is None:
        if required:
            raise BadInput(name, "is required")
        return default
    if not isinstance(v, str) or not v:
        raise BadInput(name, "must be a non-empty string")
    if choices is not None and v not in choices:
        raise BadInput(name, f"must be one of {', '.join(choices)}")
    if pattern is not None and not pattern.match(v):
        raise BadInput(name, f"has an invalid format ({pattern.pattern})")
    return v


def _count(body: dict, name: str = "count") -> Decimal:
    v = body.get(name)
    if v is None:
        raise BadInput(name, "is required")
    if isinstance(v, bool) or not isinstance(v, int | str | Decimal):
        raise BadInput(name, "must be a positive whole number of contracts")
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise BadInput(name, "must be a number") from None
    if not d.is_finite() or d <= 0 or d != d.to_integral_value() or d > 1_000_000:
        raise BadInput(name, "must be a positive whole number of contracts")
    return d


def _price(body: dict, name: str, required: bool = True) -> Decimal | None:
    v = body.get(name)
    if v is None:
        if required:
            raise BadInput(name, "is required")
        return None
    if isinstance(v, bool) or not isinstance(v, int | str | Decimal | float):
        raise BadInput(name, "must be a price in dollars, e.g. \"0.55\"")
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise BadInput(name, "must be a price in dollars, e.g. \"0.55\"") from None
    if not d.is_finite() or not (0 < d < 1):
        raise BadInput(name, f"{v} is out of range: a price is above $0 and below $1")
    return d


def _amount(body: dict, name: str) -> Decimal:
    """A non-negative number (a count or milliseconds) in a report from rec-trade-executor."""
    v = body.get(name)
    if v is None:
        raise BadInput(name, "is required")
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise BadInput(name, "must be a number") from None
    if isinstance(v, bool) or not d.is_finite() or d < 0:
        raise BadInput(name, "must be a non-negative number")
    return d


def parse_open(body: dict) -> dict[str, Any]:
    return {
        "idempotency_key": _str(body, "idempotency_key", KEY_RE),
        "market": _str(body, "market", TICKER_RE),
        "side": _str(body, "side", choices=("yes", "no")),
        "count": _count(body),
        "limit_price": _price(body, "limit_price"),
        "strategy": _str(body, "strategy", KEY_RE, required=False, default="manual"),
        "entry_method": _str(body, "entry_method", choices=tc.ENTRY_METHODS, required=False,
                             default="manual"),
    }


def parse_close(body: dict) -> dict[str, Any]:
    trade_id = body.get("trade_id")
    if trade_id is None:
        raise BadInput("trade_id", "is required")
    if isinstance(trade_id, bool) or not isinstance(trade_id, int) or trade_id <= 0:
        raise BadInput("trade_id", "must be a positive integer")
    return {
        "idempotency_key": _str(body, "idempotency_key", KEY_RE),
        "trade_id": trade_id,
        "limit_price": _price(body, "limit_price", required=False),
        "close_method": _str(body, "close_method", choices=tc.CLOSE_METHODS, required=False,
                             default="manual"),
        "close_rule": _str(body, "close_rule", required=False),
    }


def _cost(req: dict[str, Any]) -> Decimal:
    """What an open intent adds to the open exposure: its contracts at the limit, with fees."""
    count, price = req["count"], req["limit_price"]
    return count * price + tc.fee_dollars(count, price)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in d.items()}


# --- the service --------------------------------------------------------------------------------

class TradeManagerService(tc.TradingService):
    name = "trade-manager"
    pool = None
    writer_conn = None

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.wake = asyncio.Event()  # the sweep loop: legs left by results_loop
        self.waiters: dict[int, list[asyncio.Future]] = {}
        self.results: set[str] = set()  # legs the executor announced, for results_loop
        self.results_ready = asyncio.Event()
        self.leftover: set[str] = set()  # announced legs that are not accepted opens
        self.stats = {"intents": 0, "refused": 0, "transitions": 0, "reported_acks": 0}
        self._open_lock = asyncio.Lock()
        # OPEN_SQL's last reading of the trading settings and of each market: (jsonb text, parsed)
        self._settings: tuple[str, dict[str, Any]] | None = None
        self._markets: dict[str, tuple[str, dict[str, Any]]] = {}

    async def start(self, phase: Phase) -> None:
        s = self.settings
        self.pool = await phase("connect to database", open_pool(s, "rec-trade-manager",
                                                                   autocommit=True))
        await phase("take the one-writer lock", self._one_writer())
        await phase("check the trading schema", self._check_schema())
        await phase("first reconcile", self.reconcile())
        self.spawn(self.listen(), "manager-listen")
        self.spawn(self.loop(), "manager-loop")
        self.spawn(self.results_loop(), "manager-results")
        await self.serve_http(phase, self.app(), s.trade_manager_port)

    async def _one_writer(self) -> None:
        """Hold a session advisory lock for the service's life: a second manager on the same
        database waits here (then fails its start) instead of writing trades too. Opens are
        then serialised by ``_open_lock`` alone, without a lock per transaction."""
        self.writer_conn = await AsyncConnection.connect(
            conninfo(self.settings, "rec-trade-manager-writer"), autocommit=True)
        deadline = time.monotonic() + max(5.0, self.settings.db_connect_timeout_sec)
        while True:
            cur = await self.writer_conn.execute("SELECT pg_try_advisory_lock(%s)",
                                                 (WRITER_LOCK,))
            if (await cur.fetchone())[0]:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("another rec-trade-manager holds the database's writer lock")
            self.log.warning("another rec-trade-manager holds the writer lock; waiting")
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        await super().stop()
        if self.writer_conn is not None:
            await self.writer_conn.close()

    async def _check_schema(self) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("SELECT 1 FROM trade_orders LIMIT 0")
            self.install_id = await tc.setting(conn, "install_id")
        if not self.install_id:
            raise RuntimeError("trading_settings has no install_id: run `rec db migrate`")

    # ------------------------------------------------------------------ background

    async def listen(self) -> None:
        """Results from the executor and fills from account-sync wake the reconcile."""
        while True:
            try:
                conn = await AsyncConnection.connect(
                    conninfo(self.settings, "rec-trade-manager-listen"), autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {tc.CH_RESULTS}")
                    async for n in conn.notifies():
                        self.results.add(n.payload)
                        self.results_ready.set()
            except Exception as exc:
                self.log.warning("LISTEN connection lost (%s); reconnecting", exc)
                await asyncio.sleep(1)

    async def results_loop(self) -> None:
        """The legs the executor announced, at once and never behind a sweep: accepted opens
        in one statement here (it moves only trades still pending, so a sweep applying the
        same leg meanwhile is harmless); any other result goes to the sweep loop, now."""
        while True:
            await self.results_ready.wait()
            self.results_ready.clear()
            coids, self.results = list(self.results), set()
            try:
                rest = await self._accepted_opens(coids)
            except Exception:
                self.log.exception("applying accepted orders failed; the sweep retries")
                rest = coids
            if rest:
                self.leftover.update(rest)
                self.wake.set()

    async def loop(self) -> None:
        """Results that are not accepted opens (only those legs) as soon as they are handed
        over; everything else (fills arriving, markets closing, settlements, the kill switch)
        every sweep."""
        last = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), SWEEP_SEC)
            self.wake.clear()
            try:
                if self.leftover:
                    coids, self.leftover = list(self.leftover), set()
                    await self.reconcile(coids)
                if time.monotonic() - last >= SWEEP_SEC:
                    last = time.monotonic()
                    await self.reconcile()
            except Exception:
                self.log.exception("reconcile failed; retrying")
                await asyncio.sleep(1)

    def _notify_waiters(self, trade_id: int, trade: dict[str, Any] | None = None) -> None:
        """Wake the requests waiting for the trade (with its new row if at hand)."""
        for fut in self.waiters.pop(trade_id, []):
            if not fut.done():
                fut.set_result(trade)

    async def _accepted_opens(self, coids: list[str]) -> list[str]:
        """Apply the acknowledged open legs among ``coids`` in one statement and answer their
        waiters with the submitted trade; returns the legs left for the full reconcile."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(ACCEPTED_OPENS, (coids,))
            trades = [tc.row_dict(cur, r) for r in await cur.fetchall()]
        done = {self._submitted(trade) for trade in trades}
        return [c for c in coids if c not in done]

    def _submitted(self, trade: dict[str, Any]) -> str:
        """A trade moved pending -> submitted: logged, and its waiters answered."""
        coid = tc.client_order_id(self.install_id, trade["id"], "open")
        self.stats["transitions"] += 1
        self.log.info("trade %d: pending -> submitted (order accepted) %s", trade["id"], coid)
        self._notify_waiters(trade["id"], trade)
        return coid

    async def transition(self, cur, trade_id: int, old: str, new: str, kind: str,
                         detail: dict[str, Any], **columns: Any) -> bool:
        """Move a trade from ``old`` to ``new`` (nothing if it is no longer ``old``) and write
        its event, in the caller's transaction."""
        assert new in tc.TRANSITIONS[old], (old, new)
        sets = ", ".join(f"{k} = %s" for k in columns)
        sql = (f"UPDATE trades SET status = %s, updated_at = now()"
               f"{', ' + sets if sets else ''} WHERE id = %s AND status = %s")
        await cur.execute(sql, (new, *columns.values(), trade_id, old))
        if cur.rowcount != 1:
            return False
        await cur.execute(
            "INSERT INTO trade_events (trade_id, kind, from_status, to_status, detail) "
            "VALUES (%s, %s, %s, %s, %s)",
            (trade_id, kind, old, new, json.dumps(detail, default=str)))
        self.stats["transitions"] += 1
        self.log.info("trade %d: %s -> %s (%s) %s", trade_id, old, new, kind,
                      json.dumps(detail, default=str))
        return True

    async def event(self, cur, trade_id: int, kind: str, detail: dict[str, Any]) -> None:
        await cur.execute("INSERT INTO trade_events (trade_id, kind, detail) VALUES (%s,%s,%s)",
                          (trade_id, kind, json.dumps(detail, default=str)))

    async def reconcile(self, coids: list[str] | None = None) -> None:
        """Apply what the executor, the account ledger and the markets say (``coids``: only
        those legs' results)."""
        if coids is not None and not coids:
            return
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                RESULTS + (" AND o.client_order_id = ANY(%s)" if coids is not None else ""),
                (coids,) if coids is not None else None)
            rows = await cur.fetchall()
        for row in rows:
            try:
                await self._apply(*row)
            except Exception:
                self.log.exception("trade %s: applying its order result failed", row[0])
        if coids is not None:
            return
        await self._expire_and_settle()
        await self._cancel_resting()
        await self._kill_switch_closes()

    async def _apply(self, trade_id, status, side, quantity, ticker, coid, leg, state, oid,
                     fill_count, remaining, err_code, err_text) -> None:
        try:
            await self._apply_tx(trade_id, status, side, coid, state, oid, fill_count,
                                 remaining, err_code, err_text)
        finally:
            self._notify_waiters(trade_id)  # after the commit: a waiter reads the new state

    async def _apply_tx(self, trade_id, status, side, coid, state, oid, fill_count, remaining,
                        err_code, err_text) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            if status == PENDING:
                if state in ("rejected", "expired"):
                    new = REJECTED if state == "rejected" else EXPIRED
                    reason = (f"{err_code}: {err_text}" if err_code else err_text) or state
                    await self.transition(cur, trade_id, PENDING, new, f"order {state}",
                                          {"client_order_id": coid, "error_code": err_code,
                                           "error": err_text}, reason=reason)
                else:
                    await self.transition(cur, trade_id, PENDING, SUBMITTED, "order accepted",
                                          {"client_order_id": coid, "exchange_order_id": oid,
                                           "fill_count": fill_count,
                                           "remaining_count": remaining})
                return
            filled = await self._final_fill(cur, oid, fill_count, remaining)
            if filled is None:
                return  # still resting
            if status == SUBMITTED:
                if filled == 0:
                    await self.transition(cur, trade_id, SUBMITTED, CANCELED, "not filled",
                                          {"exchange_order_id": oid},
                                          reason="the order ended without a fill")
                    return
                got = await self._fills(cur, oid, side)
                if got is None or got[0] < filled:
                    return  # wait for account-sync to store the fills
                n, value, fees = got
                await self.transition(
                    cur, trade_id, SUBMITTED, OPEN, "open confirmed by fills",
                    {"exchange_order_id": oid, "filled": n, "cost": value, "fees": fees},
                    quantity=n, entry_price=(value / n).quantize(Decimal("0.0001")),
                    entry_cost=value, fees=fees, fees_cents=tc.cents(fees),
                    opened_at=_now_sql())
                return
            # closing
            if state in ("rejected", "expired") or filled == 0:
                await self.transition(cur, trade_id, CLOSING, OPEN, "close failed",
                                      {"client_order_id": coid, "state": state,
                                       "error_code": err_code, "error": err_text,
                                       "filled": filled})
                return
            got = await self._fills(cur, oid, side)
            if got is None or got[0] < filled:
                return
            n, value, fees = got
            await cur.execute("SELECT quantity, entry_cost, fees, coalesce(exit_proceeds, 0) "
                              "FROM trades WHERE id = %s", (trade_id,))
            qty, cost, fees_before, proceeds = await cur.fetchone()
            proceeds, total_fees = proceeds + value, fees_before + fees
            if n < qty:  # a partial close: the rest stays open
                await self.transition(cur, trade_id, CLOSING, OPEN, "partial close",
                                      {"closed": n, "proceeds": value, "fees": fees},
                                      quantity=qty - n, exit_proceeds=proceeds,
                                      fees=total_fees, fees_cents=tc.cents(total_fees))
                return
            pnl = proceeds - cost - total_fees
            await self.transition(
                cur, trade_id, CLOSING, CLOSED, "close confirmed by fills",
                {"exchange_order_id": oid, "closed": n, "proceeds": value, "fees": fees,
                 "pnl_cents": tc.cents(pnl)},
                exit_price=(value / n).quantize(Decimal("0.0001")), exit_proceeds=proceeds,
                fees=total_fees, fees_cents=tc.cents(total_fees), pnl_cents=tc.cents(pnl),
                win=pnl > 0, closed_at=_now_sql())

    async def _final_fill(self, cur, oid, fill_count, remaining) -> Decimal | None:
        """How many contracts the leg filled in the end, or None while it still rests."""
        if remaining is not None and remaining == 0:
            return fill_count or Decimal(0)
        await cur.execute("SELECT status, fill_count FROM account_orders WHERE order_id = %s",
                          (oid,))
        row = await cur.fetchone()
        if row is None or row[0] not in ("executed", "canceled"):
            return None
        return row[1]

    @staticmethod
    async def _fills(cur, oid, side) -> tuple[Decimal, Decimal, Decimal] | None:
        """(contracts, dollars at the trade side's price, fees) of an order from the ledger."""
        await cur.execute(
            "SELECT sum(count), sum(count * CASE WHEN %s = 'yes' THEN yes_price "
            "ELSE coalesce(no_price, 1 - yes_price) END), coalesce(sum(fee), 0) "
            "FROM account_fills WHERE order_id = %s", (side, oid))
        row = await cur.fetchone()
        if row is None or row[0] is None:
            return None
        return row[0], row[1], row[2]

    async def _expire_and_settle(self) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            # a market that is no longer open: its trades expire (orders are canceled there)
            await cur.execute(
                "SELECT t.id, t.status, m.status FROM trades t JOIN markets m "
                "ON m.ticker = t.ticker WHERE t.status IN ('pending', 'open', 'closing') "
                "AND m.status IN ('closed', 'determined', 'settled', 'finalized') "
                "ORDER BY t.id")  # trades are locked in id order (no deadlock with others)
            for trade_id, status, mstatus in await cur.fetchall():
                await self.transition(cur, trade_id, status, EXPIRED, "market closed",
                                      {"market_status": mstatus},
                                      reason=f"the market closed ({mstatus})")
            # the settlement of expired trades that held contracts
            await cur.execute(
                "SELECT t.id, t.side, t.quantity, t.entry_cost, t.fees, "
                "coalesce(t.exit_proceeds, 0), s.market_result FROM trades t "
                "JOIN account_settlements s ON s.ticker = t.ticker "
                "WHERE t.status = 'expired' AND t.market_result IS NULL "
                "AND t.entry_cost IS NOT NULL")
            for trade_id, side, qty, cost, fees, proceeds, result in await cur.fetchall():
                revenue = qty if result == side else Decimal(0)
                total = proceeds + revenue
                pnl = total - cost - fees
                await cur.execute(
                    "UPDATE trades SET market_result = %s, exit_proceeds = %s, pnl_cents = %s, "
                    "win = %s, close_method = coalesce(close_method, 'settlement'), "
                    "exit_price = coalesce(exit_price, %s), closed_at = now(), "
                    "updated_at = now() WHERE id = %s",
                    (result, total, tc.cents(pnl), pnl > 0,
                     Decimal(1) if result == side else Decimal(0), trade_id))
                await self.event(cur, trade_id, "settled",
                                 {"result": result, "revenue": revenue,
                                  "pnl_cents": tc.cents(pnl)})
                self.log.info("trade %d settled: %s, P&L %d cents", trade_id, result,
                              tc.cents(pnl))

    async def _cancel_resting(self) -> None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(CANCEL_RESTING, (tc.CH_ORDERS,))
            for trade_id, coid, rule in await cur.fetchall():
                self.log.warning("trade %d: its resting entry %s is canceled (%s)", trade_id,
                                 coid, rule)

    async def _kill_switch_closes(self) -> None:
        async with self.pool.connection() as conn:
            s = await tc.load_settings(conn)
            if not (s.get("kill_switch") and s.get("kill_switch_close_open")):
                return
            cur = await conn.execute("SELECT id, close_attempts FROM trades WHERE status = 'open'")
            rows = await cur.fetchall()
        for trade_id, attempts in rows:
            try:
                await self.close_trade({"trade_id": trade_id, "limit_price": None,
                                        "close_method": "kill_switch", "close_rule": None,
                                        "idempotency_key": f"kill-{trade_id}-{attempts + 1}"})
            except (Conflict, RiskRefused) as exc:
                self.log.warning("kill switch: trade %d not closed: %s", trade_id, exc)

    # ------------------------------------------------------------------ intents

    async def open_trade(self, req: dict[str, Any], waiter: asyncio.Future | None = None
                         ) -> tuple[dict[str, Any], bool]:
        """Check and record an open intent. Returns (trade, created). ``waiter`` is resolved
        when the executor's result for the new trade is applied (registered as the write
        returns, before this task yields: applying a result takes one more round trip).

        One open at a time (``_open_lock``; this is the only manager, ``_one_writer``), one
        statement (``OPEN_SQL``) when the manager's last copies of the trading settings and the
        market still hold: the request is checked against them, and the statement writes only
        if they are unchanged and the risk figures within bounds. Otherwise (the first intent
        on a market, a settings change, a refusal) it writes nothing and returns what it read;
        the request is checked against that (a refusal raises, naming the rule) and sent again.
        """
        key = req["idempotency_key"]
        async with self._open_lock, self.pool.connection() as conn:
            cur = conn.cursor()
            for _ in range(3):
                await cur.execute(OPEN_SQL, self._open_params(req))
                row = tc.row_dict(cur, await cur.fetchone())
                if row["id"] is not None:
                    break
                if row["c_known"] is not None:
                    return await self._known_intent(cur, key, "open"), False
                s, market = self._remember(req["market"], row["c_settings"], row["c_market"])
                self._check_market(market, req)
                self._check_risk(s, req, row["c_held"], row["c_exposure"], row["c_pnl"])
            else:
                raise Conflict("open_not_written", "the trading settings or the market changed "
                               "while the intent was checked, three times: send it again")
            trade = {k: v for k, v in row.items() if not k.startswith("c_")}
            coid = tc.client_order_id(self.install_id, trade["id"], "open")
            if waiter is not None:
                self.waiters.setdefault(trade["id"], []).append(waiter)
        self.log.info("trade %d: open %s %s x%s @ %s (%s, %s): pending, order %s", trade["id"],
                      req["market"], req["side"], req["count"], req["limit_price"],
                      req["strategy"], req["entry_method"], coid)
        return trade, True

    def _remember(self, ticker: str, settings: str, market: str | None
                  ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Keep the settings and the market as ``OPEN_SQL`` read them (text, parsed)."""
        if self._settings is None or self._settings[0] != settings:
            self._settings = (settings, json.loads(settings))
        if market is None:
            self._markets.pop(ticker, None)
            return self._settings[1], None
        if len(self._markets) >= 2048:
            self._markets.clear()
        self._markets[ticker] = (market, json.loads(market))
        return self._settings[1], self._markets[ticker][1]

    def _open_params(self, req: dict[str, Any]) -> dict[str, Any]:
        """``OPEN_SQL``'s parameters. Without copies of the settings and the market that pass the
        checks, the guards are NULL: the statement only reads."""
        p: dict[str, Any] = {
            "key": req["idempotency_key"], "ticker": req["market"], "side": req["side"],
            "count": req["count"], "price": req["limit_price"], "strategy": req["strategy"],
            "entry_method": req["entry_method"], "prefix": f"rec-{self.install_id}-",
            "channel": tc.CH_ORDERS, "settings": None, "market": None, "max_held": None,
            "max_exposure": None, "min_pnl": None, "event_ticker": None, "tif": None,
            "on_pause": None, "created": None, "request": None}
        copy = self._markets.get(req["market"])
        if self._settings is None or copy is None:
            return p
        s, market = self._settings[1], copy[1]
        try:
            self._check_market(market, req)
            bounds = self._risk_bounds(s, req)
        except (BadInput, RiskRefused):
            return p  # refused on the copies: read again before refusing
        conf = tc.strategy_conf(s, req["strategy"])
        tif = s.get("open_time_in_force", "fill_or_kill")
        p.update(bounds, settings=self._settings[0], market=copy[0],
                 event_ticker=market["event_ticker"], tif=tif,
                 on_pause=conf["cancel_order_on_pause"],
                 request=json.dumps(_jsonable(req)), created=json.dumps({
                     **_jsonable(req), "to_status": PENDING, "time_in_force": tif,
                     "cancel_order_on_pause": conf["cancel_order_on_pause"],
                     "order_group_contracts_limit": conf["contracts_limit"]}))
        return p

    async def close_trade(self, req: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            known = await self._known_intent(cur, req["idempotency_key"], "close")
            if known is not None:
                return known, False
            await cur.execute("SELECT status, ticker, side, quantity, close_attempts, strategy "
                              "FROM trades WHERE id = %s FOR UPDATE", (req["trade_id"],))
            row = await cur.fetchone()
            if row is None:
                raise Conflict("unknown_trade", f"trade {req['trade_id']} does not exist",
                               field="trade_id")
            status, ticker, side, qty, attempts, _strategy = row
            if status != OPEN:
                raise Conflict("not_open", f"trade {req['trade_id']} is {status}, not open",
                               status=status)
            s = await tc.load_settings(conn)
            price = req["limit_price"] or Decimal("0.01")  # no limit given: sell at any price
            if req["limit_price"] is not None:
                await cur.execute("SELECT * FROM markets WHERE ticker = %s", (ticker,))
                mrow = await cur.fetchone()
                if mrow is not None:
                    self._check_price(tc.row_dict(cur, mrow), price)
            leg = f"close{attempts + 1}"
            coid = tc.client_order_id(self.install_id, req["trade_id"], leg)
            tif = s.get("close_time_in_force", "fill_or_kill")
            # every exit goes in the exits' order group ("supervisor"), which the kill switch
            # never triggers: closing must stay possible when entries are stopped
            conf = tc.strategy_conf(s, EXIT_GROUP)
            await cur.execute(
                "INSERT INTO trade_orders (client_order_id, trade_id, leg, ticker, side, action, "
                "count, price, time_in_force, strategy, cancel_on_pause) "
                "VALUES (%s,%s,%s,%s,%s,'sell',%s,%s,%s,%s,%s)",
                (coid, req["trade_id"], leg, ticker, side, qty, price, tif, EXIT_GROUP,
                 conf["cancel_order_on_pause"]))
            await self.transition(cur, req["trade_id"], OPEN, CLOSING, "close requested",
                                  {**_jsonable(req), "client_order_id": coid, "limit": price,
                                   "time_in_force": tif,
                                   "cancel_order_on_pause": conf["cancel_order_on_pause"]},
                                  close_attempts=attempts + 1,
                                  close_method=req["close_method"],
                                  close_rule=req["close_rule"], close_limit_price=price)
            await cur.execute(
                "INSERT INTO trade_intents (idempotency_key, intent, trade_id, request) "
                "VALUES (%s, 'close', %s, %s)",
                (req["idempotency_key"], req["trade_id"], json.dumps(_jsonable(req))))
            await cur.execute("SELECT pg_notify(%s, %s)", (tc.CH_ORDERS, coid))
            trade = await self._trade(cur, req["trade_id"])
        return trade, True

    async def _known_intent(self, cur, key: str, intent: str) -> dict[str, Any] | None:
        await cur.execute("SELECT intent, trade_id FROM trade_intents WHERE idempotency_key = %s",
                          (key,))
        row = await cur.fetchone()
        if row is None:
            return None
        if row[0] != intent:
            raise Conflict("idempotency_key_reused",
                           f"idempotency_key {key!r} was used for a {row[0]} intent",
                           field="idempotency_key")
        return await self._trade(cur, row[1])

    @classmethod
    def _check_market(cls, market: dict[str, Any] | None, req: dict[str, Any]) -> None:
        """The market exists, is open, and the limit price is on its price grid."""
        if market is None:
            raise BadInput("market", f"unknown market {req['market']}")
        if market["status"] not in OPEN_MARKET_STATES:
            raise BadInput("market", f"market {req['market']} is {market['status']}, "
                                     "not open for trading")
        cls._check_price(market, req["limit_price"])

    @staticmethod
    def _check_price(market: dict[str, Any], price: Decimal) -> None:
        raw = market.get("raw") or {}
        try:
            grid = PriceGrid.from_ranges(market.get("price_level_structure")
                                         or raw.get("price_level_structure") or "linear_cent",
                                         raw.get("price_ranges") or [], market["ticker"])
            grid.check(price)
        except InvalidPrice as exc:
            raise BadInput("limit_price", str(exc)) from None

    @staticmethod
    def _limits(s: dict[str, Any]) -> dict[str, Decimal]:
        return {k: Decimal(str(s.get(k, 0))) for k in (
            "max_contracts_per_trade", "max_contracts_per_market", "max_open_exposure_dollars",
            "max_daily_loss_dollars")}

    @classmethod
    def _risk_bounds(cls, s: dict[str, Any], req: dict[str, Any]) -> dict[str, Decimal]:
        """The risk rules that depend on the request alone (raise), and the bounds the risk
        figures must stay within for it: contracts held or pending in the market, open
        exposure in dollars, and today's realised P&L in cents (above ``min_pnl``)."""
        count, lim = req["count"], cls._limits(s)
        if s.get("kill_switch"):
            raise RiskRefused("kill_switch", "the kill switch is on: no new entries")
        if count > lim["max_contracts_per_trade"]:
            raise RiskRefused("max_contracts_per_trade",
                              f"{count} contracts is over max_contracts_per_trade "
                              f"{lim['max_contracts_per_trade']}", field="count")
        return {"max_held": lim["max_contracts_per_market"] - count,
                "max_exposure": lim["max_open_exposure_dollars"] - _cost(req),
                "min_pnl": -lim["max_daily_loss_dollars"] * 100}

    @classmethod
    def _check_risk(cls, s: dict[str, Any], req: dict[str, Any], held: Decimal,
                    exposure: Decimal, pnl: int) -> None:
        """Every risk rule against the figures ``OPEN_SQL`` read (the refusal names the rule)."""
        b, lim, count = cls._risk_bounds(s, req), cls._limits(s), req["count"]
        if held > b["max_held"]:
            raise RiskRefused("max_contracts_per_market",
                              f"{held} held/pending + {count} is over max_contracts_per_market "
                              f"{lim['max_contracts_per_market']} in {req['market']}",
                              held=held)
        if exposure > b["max_exposure"]:
            raise RiskRefused("max_open_exposure_dollars",
                              f"open exposure ${exposure:.2f} + ${_cost(req):.2f} is over "
                              f"max_open_exposure_dollars ${lim['max_open_exposure_dollars']}",
                              exposure=exposure)
        if pnl <= b["min_pnl"]:
            raise RiskRefused("max_daily_loss_dollars",
                              f"today's realised P&L {pnl} cents reached max_daily_loss_dollars "
                              f"${lim['max_daily_loss_dollars']}", pnl_cents=pnl)

    async def _trade(self, cur, trade_id: int) -> dict[str, Any]:
        await cur.execute("SELECT * FROM trades WHERE id = %s", (trade_id,))
        return tc.row_dict(cur, await cur.fetchone())

    # ------------------------------------------------------------------ HTTP

    def app(self) -> Starlette:
        return Starlette(routes=[
            *self.health_routes(),
            Route("/trades", self.h_post_trade, methods=["POST"]),
            Route("/trades", self.h_list),
            Route("/trades/{trade_id:int}", self.h_get),
            Route("/settings", self.h_settings),
            Route("/settings", self.h_put_settings, methods=["PUT"]),
            Route("/kill-switch", self.h_kill, methods=["POST"]),
            Route("/legs/{coid}/accepted", self.h_leg_accepted, methods=["POST"]),
            Route("/status", self.h_status),
        ])

    async def h_status(self, request: Request) -> Response:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT status, count(*) FROM trades GROUP BY status")
            counts = dict(await cur.fetchall())
        return Json({"trades": counts, **self.stats})

    async def h_post_trade(self, request: Request) -> Response:
        self.stats["intents"] += 1
        wait = request.query_params.get("wait")
        waiter = asyncio.get_running_loop().create_future() if wait else None
        try:
            body = await tc.json_body(request)
            intent = _str(body, "intent", choices=("open", "close"))
            unknown = set(body) - {"intent", "idempotency_key", "market", "side", "count",
                                   "limit_price", "strategy", "entry_method", "trade_id",
                                   "close_method", "close_rule"}
            if unknown:
                raise BadInput(sorted(unknown)[0], "is not a field of a trade intent")
            if intent == "open":
                trade, created = await self.open_trade(parse_open(body), waiter)
            else:
                trade, created = await self.close_trade(parse_close(body))
        except BadInput as exc:
            self.stats["refused"] += 1
            self.log.warning("trade intent refused: %s: %s", exc.field, exc.message)
            return error(422, "invalid_field", f"{exc.field}: {exc.message}", field=exc.field)
        except RiskRefused as exc:
            self.stats["refused"] += 1
            self.log.warning("trade intent refused by risk limit %s: %s", exc.limit, exc.message)
            return error(403, "risk_limit", exc.message, limit=exc.limit,
                         **{k: str(v) for k, v in exc.detail.items()})
        except Conflict as exc:
            self.stats["refused"] += 1
            self.log.warning("trade intent refused: %s", exc.message)
            return error(409, exc.code, exc.message, **exc.detail)
        if wait and trade["status"] == PENDING:
            trade = await self._wait(trade["id"], min(float(wait), 30.0),
                                     waiter if created else None)
        return Json({"trade": trade, "created": created}, status_code=201 if created else 200)

    async def h_leg_accepted(self, request: Request) -> Response:
        """rec-trade-executor's report of an open leg the exchange acknowledged: written here
        with the trade's pending -> submitted and its event, in one statement, and the request
        waiting for it answered (the executor writes the leg itself when this fails)."""
        coid = request.path_params["coid"]
        try:
            body = await tc.json_body(request)
            args = (_str(body, "order_id"), _amount(body, "fill_count"),
                    _amount(body, "remaining_count"), _amount(body, "ack_ms"), coid)
        except BadInput as exc:
            return error(422, "invalid_field", f"{exc.field}: {exc.message}", field=exc.field)
        async with self.pool.connection() as conn:
            cur = await conn.execute(REPORTED_OPEN, args)
            row = tc.row_dict(cur, await cur.fetchone())
        if not row.pop("c_written"):
            return error(409, "not_new", f"leg {coid} is not a new open leg")
        self.stats["reported_acks"] += 1
        if row["id"] is not None:
            self._submitted(row)
        return Json({"written": True, "trade_id": row["id"]})

    async def _wait(self, trade_id: int, timeout: float,
                    fut: asyncio.Future | None) -> dict[str, Any]:
        """The trade once its order's result is applied (or after ``timeout``). ``fut``: a
        waiter registered with the new trade; else (a repeated intent) one is registered now
        and the result looked for again, as it may have been applied already."""
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self.waiters.setdefault(trade_id, []).append(fut)
            self.results.add(tc.client_order_id(self.install_id, trade_id, "open"))
            self.results_ready.set()
        with contextlib.suppress(TimeoutError):
            trade = await asyncio.wait_for(fut, timeout)
            if trade is not None:
                return trade
        async with self.pool.connection() as conn:
            return await self._trade(conn.cursor(), trade_id)

    async def h_list(self, request: Request) -> Response:
        status = request.query_params.get("status")
        ticker = request.query_params.get("market")
        limit = min(int(request.query_params.get("limit", "200")), 1000)
        where, args = [], []
        if status:
            where.append("status = ANY(%s)")
            args.append(status.split(","))
        if ticker:
            where.append("ticker = %s")
            args.append(ticker)
        sql = ("SELECT * FROM trades" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY id DESC LIMIT %s")
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, (*args, limit))
            rows = [tc.row_dict(cur, r) for r in await cur.fetchall()]
        return Json({"trades": rows})

    async def h_get(self, request: Request) -> Response:
        trade_id = request.path_params["trade_id"]
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT * FROM trades WHERE id = %s", (trade_id,))
            row = await cur.fetchone()
            if row is None:
                return error(404, "not_found", f"trade {trade_id} does not exist")
            trade = tc.row_dict(cur, row)
            cur = await conn.execute("SELECT * FROM trade_events WHERE trade_id = %s "
                                     "ORDER BY id", (trade_id,))
            events = [tc.row_dict(cur, r) for r in await cur.fetchall()]
            cur = await conn.execute("SELECT * FROM trade_orders WHERE trade_id = %s "
                                     "ORDER BY created_at", (trade_id,))
            orders = [tc.row_dict(cur, r) for r in await cur.fetchall()]
        return Json({"trade": trade, "events": events, "orders": orders})

    async def h_settings(self, request: Request) -> Response:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT key, value, description, updated_at "
                                     "FROM trading_settings ORDER BY key")
            rows = await cur.fetchall()
        return Json({"settings": {k: {"value": v, "description": d, "updated_at": u}
                                  for k, v, d, u in rows}})

    async def h_put_settings(self, request: Request) -> Response:
        try:
            body = await tc.json_body(request)
            changed = await self.put_settings(body, request.query_params.get("by", "api"))
        except BadInput as exc:
            return error(422, "invalid_field", f"{exc.field}: {exc.message}", field=exc.field)
        return Json({"changed": changed})

    async def put_settings(self, body: dict[str, Any], by: str) -> list[str]:
        changed = []
        async with self.pool.connection() as conn, conn.transaction():
            current = await tc.load_settings(conn)
            for key, value in body.items():
                if key not in current or key == "install_id":
                    raise BadInput(key, "is not a trading setting")
                old = current[key]
                value = json.loads(json.dumps(value, default=float))  # Decimal: a number
                if not _same_type(old, value):
                    raise BadInput(key, f"must be a {type(old).__name__} like {old!r}")
                if value == old:
                    continue
                await conn.execute("UPDATE trading_settings SET value = %s, updated_at = now() "
                                   "WHERE key = %s", (json.dumps(value), key))
                await conn.execute("INSERT INTO trading_settings_audit (key, old_value, "
                                   "new_value, changed_by) VALUES (%s, %s, %s, %s)",
                                   (key, json.dumps(old), json.dumps(value), by))
                self.log.warning("trading setting %s: %s -> %s (by %s)", key,
                                 json.dumps(old), json.dumps(value), by)
                changed.append(key)
            if "kill_switch" in changed:
                await conn.execute("SELECT pg_notify('trade_kill', %s)",
                                   ("on" if body["kill_switch"] else "off",))
        if changed:
            self.wake.set()
        return changed

    async def h_kill(self, request: Request) -> Response:
        try:
            body = await tc.json_body(request)
            on = body.get("on", True)
            close_open = body.get("close_open", False)
            if not isinstance(on, bool):
                raise BadInput("on", "must be true or false")
            if not isinstance(close_open, bool):
                raise BadInput("close_open", "must be true or false")
        except BadInput as exc:
            return error(422, "invalid_field", f"{exc.field}: {exc.message}", field=exc.field)
        changed = await self.put_settings({"kill_switch": on, "kill_switch_close_open": close_open},
                                          request.query_params.get("by", "kill-switch"))
        return Json({"kill_switch": on, "close_open": close_open, "changed": changed})


def _same_type(old: Any, new: Any) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, int | float):
        return isinstance(new, int | float)
    return type(old) is type(new)


def _now_sql() -> datetime:
    return datetime.now(UTC)
