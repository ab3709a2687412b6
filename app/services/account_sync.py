"""rec-account-sync: the account's ledger (balance, positions, orders, fills, settlements)
kept exact in PostgreSQL.

Startup: the database, then the **initial sync** over REST - balance, positions, resting
orders, fills since the last stored one (minus ``account_sync_fill_overlap_sec``), and
settlements - every call with a timeout (``account_sync_call_timeout_sec``), the whole phase
within ``account_sync_initial_deadline_sec``. STATUS= names the step ("initial sync: fills
page 3"); past the deadline the hung step is named at err and the service exits 1 so systemd
restarts it. Then the WebSocket (``fill``, ``user_orders``, ``market_positions``) and one
REST reconcile to close the gap between the two; READY after that.

Live: each WS message is written as it comes; after every reconnect (a fill made while the
WebSocket was down only arrives over REST) and every ``account_sync_reconcile_interval_sec``
a REST reconcile runs. Every write is keyed on the exchange's ids (fills on trade id +
order id, orders on order id, positions and settlements on ticker), so repeats from WS and
REST, reconnects, restarts and kill -9 neither duplicate nor lose anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from app import exchange_client
from app.config import Settings
from app.db.pool import DatabaseWait, open_pool
from app.kalshi.errors import KalshiError
from app.kalshi.models import Fill, MarketPosition, Order, Settlement
from app.kalshi.rest import RetryPolicy
from app.kalshi.ws import KalshiWS
from app.runtime import metrics
from app.runtime.notify import Notifier
from app.runtime.service import Phase, Service, close

ONE = Decimal(1)
FEED, QUEUE = "account", "account-ws"  # labels of this service's metrics (app.runtime.metrics)
TERMINAL = frozenset({"canceled", "executed"})


class InitialSyncHung(Exception):
    """The initial sync overran its deadline; the message names the step."""


def _dec(v: Any) -> Decimal | None:
    if v is None or v == "":
        return None
    return v if isinstance(v, Decimal) else Decimal(str(v))


def _ms(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


FILL_SQL = (
    "INSERT INTO account_fills (trade_id, order_id, fill_id, client_order_id, ticker, "
    "outcome_side, book_side, count, yes_price, no_price, fee, is_taker, created_time, source) "
    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (trade_id, order_id) DO "
    "UPDATE SET fill_id = COALESCE(account_fills.fill_id, EXCLUDED.fill_id), "
    "client_order_id = COALESCE(account_fills.client_order_id, EXCLUDED.client_order_id) "
    "WHERE account_fills.fill_id IS NULL OR account_fills.client_order_id IS NULL "
    "RETURNING (xmax = 0) AS inserted")
ORDER_SQL = (
    "INSERT INTO account_orders AS o (order_id, client_order_id, ticker, outcome_side, "
    "book_side, type, status, yes_price, fill_count, remaining_count, initial_count, "
    "created_time, last_update_time, updated_at) "
    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,now()) ON CONFLICT (order_id) DO UPDATE SET "
    "client_order_id = COALESCE(EXCLUDED.client_order_id, o.client_order_id), "
    "status = EXCLUDED.status, yes_price = COALESCE(EXCLUDED.yes_price, o.yes_price), "
    "fill_count = EXCLUDED.fill_count, remaining_count = EXCLUDED.remaining_count, "
    "initial_count = COALESCE(EXCLUDED.initial_count, o.initial_count), "
    "type = COALESCE(EXCLUDED.type, o.type), "
    "created_time = COALESCE(o.created_time, EXCLUDED.created_time), "
    "last_update_time = COALESCE(EXCLUDED.last_update_time, o.last_update_time), "
    "updated_at = now() "
    # never let an older report overwrite a newer one
    "WHERE o.status NOT IN ('canceled', 'executed') AND EXCLUDED.fill_count >= o.fill_count "
    "AND (o.last_update_time IS NULL OR EXCLUDED.last_update_time IS NULL "
    "OR EXCLUDED.last_update_time >= o.last_update_time)")
POSITION_SQL = (
    "INSERT INTO account_positions AS p (ticker, position, market_exposure, realized_pnl, "
    "fees_paid, total_traded, resting_orders_count, updated_at) "
    "VALUES (%s,%s,%s,%s,%s,%s,%s,now()) ON CONFLICT (ticker) DO UPDATE SET "
    "position = EXCLUDED.position, "
    "market_exposure = COALESCE(EXCLUDED.market_exposure, p.market_exposure), "
    "realized_pnl = COALESCE(EXCLUDED.realized_pnl, p.realized_pnl), "
    "fees_paid = COALESCE(EXCLUDED.fees_paid, p.fees_paid), "
    "total_traded = COALESCE(EXCLUDED.total_traded, p.total_traded), "
    "resting_orders_count = COALESCE(EXCLUDED.resting_orders_count, p.resting_orders_count), "
    "updated_at = now()")
SETTLEMENT_SQL = (
    "INSERT INTO account_settlements (ticker, event_ticker, market_result, yes_count, "
    "no_count, yes_total_cost, no_total_cost, revenue_cents, value_cents, fee_cost, "
    "settled_time) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (ticker) DO UPDATE "
    "SET market_result = EXCLUDED.market_result, yes_count = EXCLUDED.yes_count, "
    "no_count = EXCLUDED.no_count, yes_total_cost = EXCLUDED.yes_total_cost, "
    "no_total_cost = EXCLUDED.no_total_cost, revenue_cents = EXCLUDED.revenue_cents, "
    "value_cents = EXCLUDED.value_cents, fee_cost = EXCLUDED.fee_cost, "
    "settled_time = EXCLUDED.settled_time")


def fill_row(f: Fill, source: str) -> tuple:
    no_price = f.no_price_dollars if f.no_price_dollars is not None else ONE - f.yes_price_dollars
    created = f.created_time or _ms(f.ts * 1000 if f.ts else None) or datetime.now(UTC)
    return (f.trade_id, f.order_id, f.fill_id, f.client_order_id, f.market_ticker or f.ticker,
            f.outcome_side, f.book_side, f.count_fp, f.yes_price_dollars, no_price, f.fee_cost,
            f.is_taker, created, source)


def ws_fill_row(m: dict[str, Any]) -> tuple:
    yes = _dec(m["yes_price_dollars"])
    assert yes is not None
    return (m["trade_id"], m["order_id"], m.get("fill_id"), m.get("client_order_id"),
            m["market_ticker"], m.get("outcome_side"), m.get("book_side"), _dec(m["count_fp"]),
            yes, ONE - yes, _dec(m.get("fee_cost")), m.get("is_taker"),
            _ms(m.get("ts_ms")) or _ms((m.get("ts") or 0) * 1000) or datetime.now(UTC), "ws")


def order_row(o: Order) -> tuple:
    return (o.order_id, o.client_order_id, o.ticker, o.outcome_side, o.book_side, o.type,
            o.status, o.yes_price_dollars, o.fill_count_fp, o.remaining_count_fp,
            o.initial_count_fp, o.created_time, o.last_update_time)


def ws_order_row(m: dict[str, Any]) -> tuple:
    return (m["order_id"], m.get("client_order_id"), m["ticker"], m.get("outcome_side"),
            m.get("book_side"), m.get("type"), m["status"], _dec(m.get("yes_price_dollars")),
            _dec(m.get("fill_count_fp")) or Decimal(0),
            _dec(m.get("remaining_count_fp")) or Decimal(0), _dec(m.get("initial_count_fp")),
            _ms(m.get("created_ts_ms")), _ms(m.get("last_updated_ts_ms")))


def position_row(p: MarketPosition) -> tuple:
    return (p.ticker, p.position_fp, p.market_exposure_dollars, p.realized_pnl_dollars,
            p.fees_paid_dollars, p.total_traded_dollars, p.resting_orders_count)


def ws_position_row(m: dict[str, Any]) -> tuple:
    return (m["market_ticker"], _dec(m["position_fp"]), _dec(m.get("position_cost_dollars")),
            _dec(m.get("realized_pnl_dollars")), _dec(m.get("fees_paid_dollars")), None, None)


def settlement_row(s: Settlement) -> tuple:
    return (s.ticker, s.event_ticker, s.market_result, s.yes_count_fp, s.no_count_fp,
            s.yes_total_cost_dollars, s.no_total_cost_dollars, s.revenue, s.value, s.fee_cost,
            s.settled_time)


class AccountSyncService(Service):
    pool = None
    rest = None
    ws: KalshiWS | None = None

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.notifier = Notifier()
        self.step = "not started"
        self.reconcile_wanted = asyncio.Event()
        self.reconcile_why = "periodic"
        self.balance_wanted = asyncio.Event()
        self.stats = {"fills_new": 0, "reconciles": 0}
        self._lock = asyncio.Lock()  # one reconcile at a time
        self.db = DatabaseWait(self.log, self.notifier.status)
        metrics.use(metrics.DATA_IN)
        metrics.queue_from(QUEUE, lambda: self.ws.lag() if self.ws else (0, 0.0))

    # ------------------------------------------------------------------ lifecycle

    async def start(self, phase: Phase) -> None:
        s = self.settings
        self.pool = await phase("connect to database", open_pool(s, "rec-account-sync"))
        self.rest = exchange_client.rest_client(
            s, timeout=s.account_sync_call_timeout_sec,
            retry=RetryPolicy(max_attempts=6, base_delay=0.2, max_delay=5.0))
        deadline = s.account_sync_initial_deadline_sec
        # the phase's own limit is a little longer: the sync's deadline fires first and names
        # the step that hung
        await phase("initial sync", self.initial_sync(deadline), timeout=deadline + 5)
        self.ws = exchange_client.ws_client(
            s, heartbeat_timeout=s.market_feed_heartbeat_timeout_sec)
        await phase("subscribe fill, user_orders, market_positions", self.open_ws())
        # anything that happened between the REST sync and the subscriptions
        await phase("reconcile after subscribing", self.reconcile("after subscribing"),
                    timeout=deadline + 5)
        self.spawn(self.consume(), "account-ws")
        self.spawn(self.reconcile_loop(), "account-reconcile")
        self.spawn(self.balance_loop(), "account-balance")

    async def stop(self) -> None:
        await super().stop()
        await close(self.ws, self.rest, self.pool)

    # ------------------------------------------------------------------ REST sync

    def _at(self, step: str, prefix: str = "initial sync") -> None:
        self.step = step
        self.notifier.status(f"{prefix}: {step}")
        self.log.debug("%s: %s", prefix, step)

    async def initial_sync(self, deadline: float) -> None:
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(deadline):
                counts = await self.sync("initial sync")
        except TimeoutError:
            raise InitialSyncHung(
                f"initial sync did not finish within {deadline:g}s: step {self.step!r} hung "
                f"(no answer from the exchange); exiting so systemd restarts the service"
            ) from None
        self.log.info("initial sync done in %.2fs: %s", time.monotonic() - t0,
                      ", ".join(f"{v} {k}" for k, v in counts.items()))

    async def sync(self, prefix: str) -> dict[str, int]:
        """Balance, positions, orders, fills and settlements over REST, written idempotently."""
        assert self.rest is not None and self.pool is not None
        rest = self.rest
        limit = self.settings.account_sync_page_limit
        counts: dict[str, int] = {}

        self._at("balance", prefix)
        bal = await rest.get_balance()
        await self._write_balance(bal.balance, bal.portfolio_value)

        # positions: every page; markets no longer listed are flat
        seen: set[str] = set()
        cursor: str | None = None
        page_no = 0
        while True:
            page_no += 1
            self._at(f"positions page {page_no}", prefix)
            pos = await rest.get_positions(limit=limit, cursor=cursor)
            rows = [position_row(p) for p in pos.market_positions]
            seen.update(r[0] for r in rows)
            await self._many(POSITION_SQL, rows)
            cursor = pos.cursor
            if not cursor:
                break
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE account_positions SET position = 0, "
                               "resting_orders_count = 0, updated_at = now() "
                               "WHERE NOT ticker = ANY(%s) AND position <> 0", (list(seen),))
        counts["positions"] = len(seen)

        # orders created since the last stored one (any status), the resting ones, then
        # the final state of stored orders that no longer rest
        overlap = self.settings.account_sync_fill_overlap_sec
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT max(created_time) FROM account_orders")
            last_order = (await cur.fetchone())[0]
        min_created = (int((last_order - timedelta(seconds=overlap)).timestamp())
                       if last_order else None)
        recent = await self._pages(
            "orders", prefix,
            lambda c: rest.get_orders(min_ts=min_created, limit=limit, cursor=c),
            lambda items: self._many(ORDER_SQL, [order_row(o) for o in items]))
        counts["orders"] = len(recent)
        resting = await self._pages(
            "resting orders", prefix,
            lambda c: rest.get_orders(status="resting", limit=limit, cursor=c),
            lambda items: self._many(ORDER_SQL, [order_row(o) for o in items]))
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT order_id FROM account_orders WHERE status NOT IN "
                "('canceled', 'executed') AND NOT order_id = ANY(%s)", (list(resting),))
            stale = [r[0] for r in await cur.fetchall()]
        for i, oid in enumerate(stale, 1):
            self._at(f"order {i} of {len(stale)} that stopped resting", prefix)
            try:
                o = await rest.get_order(oid)
            except KalshiError as exc:
                self.log.warning("order %s: cannot read it: %s", oid, exc)
                continue
            await self._many(ORDER_SQL, [order_row(o)])
        counts["resting orders"] = len(resting)

        # fills since the last stored one, minus a margin (repeats are ignored by id)
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT max(created_time) FROM account_fills")
            last = (await cur.fetchone())[0]
            cur = await conn.execute("SELECT max(settled_time) FROM account_settlements")
            last_settled = (await cur.fetchone())[0]
        min_ts = int((last - timedelta(seconds=overlap)).timestamp()) if last else None
        before = self.stats["fills_new"]
        fills = await self._pages(
            "fills", prefix,
            lambda c: rest.get_fills(min_ts=min_ts, limit=limit, cursor=c),
            lambda items: self._fills([fill_row(f, "rest") for f in items]))
        fills += await self._historical_fills(min_ts, prefix)
        counts["fills read"] = len(fills)
        counts["fills new"] = self.stats["fills_new"] - before

        min_settled = (int((last_settled - timedelta(seconds=overlap)).timestamp())
                       if last_settled else None)
        settled = await self._pages(
            "settlements", prefix,
            lambda c: rest.get_settlements(min_ts=min_settled, limit=limit, cursor=c),
            lambda items: self._many(SETTLEMENT_SQL, [settlement_row(s) for s in items]))
        counts["settlements"] = len(settled)
        self._at("done", prefix)
        return counts

    async def _pages(self, what: str, prefix: str, fetch, write) -> list[str]:
        """Every page of a list call, each written as it arrives; returns the items' ids."""
        ids: list[str] = []
        cursor: str | None = None
        seen: set[str] = set()
        n = 0
        while True:
            n += 1
            self._at(f"{what} page {n}", prefix)
            page = await fetch(cursor)
            await write(page.items)
            for item in page.items:
                ids.append(getattr(item, "order_id", None) or getattr(item, "trade_id", None)
                           or getattr(item, "ticker", ""))
            if not page.cursor or page.cursor in seen:
                return ids
            seen.add(page.cursor)
            cursor = page.cursor

    # ------------------------------------------------------------------ writes

    async def _historical_fills(self, min_ts: int | None, prefix: str) -> list:
        """The fills before the exchange's history cutoff (about two weeks: they are only in
        /historical/fills) when the mirror reaches back past it: a fresh install on an
        account with a history, or a sync that was away longer than that."""
        assert self.rest is not None
        rest = self.rest
        if min_ts is not None:
            self._at("historical cutoff", prefix)
            cutoff = (await rest.get_historical_cutoff()).trades_created_ts
            if min_ts >= cutoff.timestamp():
                return []
        return await self._pages(
            "historical fills", prefix,
            lambda c: rest.get_historical_fills(
                min_ts=min_ts, limit=self.settings.account_sync_page_limit, cursor=c),
            lambda items: self._fills([fill_row(f, "rest") for f in items]))

    async def _many(self, sql: str, rows: list[tuple]) -> None:
        if not rows:
            return
        async with self.pool.connection() as conn, conn.cursor() as cur:  # type: ignore[union-attr]
            await cur.executemany(sql, rows)

    async def _fills(self, rows: list[tuple]) -> None:
        if not rows:
            return
        new = 0
        async with self.pool.connection() as conn, conn.cursor() as cur:  # type: ignore[union-attr]
            await cur.executemany(FILL_SQL, rows, returning=True)
            while True:
                got = await cur.fetchone()
                if got is not None and got[0]:
                    new += 1
                if not cur.nextset():
                    break
        self.stats["fills_new"] += new

    async def _write_balance(self, cents: int, portfolio_cents: int | None) -> None:
        async with self.pool.connection() as conn:  # type: ignore[union-attr]
            cur = await conn.execute(
                "INSERT INTO account_balance (id, balance_cents, portfolio_value_cents, "
                "updated_at) VALUES (true, %s, %s, now()) ON CONFLICT (id) DO UPDATE SET "
                "balance_cents = EXCLUDED.balance_cents, "
                "portfolio_value_cents = EXCLUDED.portfolio_value_cents, updated_at = now() "
                "RETURNING (SELECT balance_cents FROM balances ORDER BY id DESC LIMIT 1)",
                (cents, portfolio_cents))
            prev = (await cur.fetchone())[0]
            if prev != cents:  # history: a row only when the balance changed
                await conn.execute("INSERT INTO balances (balance_cents, portfolio_value_cents) "
                                   "VALUES (%s, %s)", (cents, portfolio_cents))

    # ------------------------------------------------------------------ live

    async def open_ws(self) -> None:
        assert self.ws is not None
        for channel in ("fill", "user_orders", "market_positions", "market_lifecycle_v2"):
            await self.ws.subscribe(channel)
        await self.ws.start()
        await self.ws.wait_connected()

    async def consume(self) -> None:
        assert self.ws is not None
        ws = self.ws
        handlers = {
            "fill": self._on_fill, "user_order": self._on_order,
            "market_position": self._on_position, "market_lifecycle_v2": self._on_lifecycle,
            "client.connected": self._on_connected, "client.disconnected": self._on_disconnected,
            "client.seq_gap": self._on_seq_gap, "error": self._on_error,
        }
        received = metrics.RECEIVED.labels(feed=FEED)
        while True:
            m = await ws.recv()
            received.inc()
            handler = handlers.get(m.type)
            if handler is not None:
                await handler(m.msg if isinstance(m.msg, dict) else {})

    async def _on_fill(self, body: dict[str, Any]) -> None:
        await self.db.run("writing a fill", self._fills, [ws_fill_row(body)])
        self.balance_wanted.set()

    async def _on_order(self, body: dict[str, Any]) -> None:
        await self.db.run("writing an order", self._many, ORDER_SQL, [ws_order_row(body)])

    async def _on_position(self, body: dict[str, Any]) -> None:
        await self.db.run("writing a position", self._many, POSITION_SQL,
                          [ws_position_row(body)])
        self.balance_wanted.set()

    async def _on_lifecycle(self, body: dict[str, Any]) -> None:
        # settlements have no WS channel: a settled market we hold is read over REST
        if body.get("event_type") == "settled" and await self.db.run(
                "reading positions", self._holds, body.get("market_ticker")):
            self._want_reconcile("settlement")

    async def _on_connected(self, body: dict[str, Any]) -> None:
        if body.get("reconnect"):
            self.log.info("websocket reconnected: reconciling over REST")
            self._want_reconcile("after reconnect")

    async def _on_disconnected(self, body: dict[str, Any]) -> None:
        self.log.warning("websocket disconnected; reconnecting with backoff")

    async def _on_seq_gap(self, body: dict[str, Any]) -> None:
        self.log.warning("seq gap on %s: reconciling over REST", body.get("channel"))
        self._want_reconcile("seq gap")

    async def _on_error(self, body: dict[str, Any]) -> None:
        self.log.warning("exchange error message: %s", body)

    def _want_reconcile(self, why: str) -> None:
        if not self.reconcile_wanted.is_set():
            self.reconcile_why = why
        self.reconcile_wanted.set()

    async def _holds(self, ticker: str | None) -> bool:
        if not ticker:
            return False
        async with self.pool.connection() as conn:  # type: ignore[union-attr]
            cur = await conn.execute("SELECT 1 FROM account_positions WHERE ticker = %s AND "
                                     "(position <> 0 OR total_traded <> 0 OR realized_pnl <> 0)"
                                     " UNION ALL SELECT 1 FROM account_fills WHERE ticker = %s "
                                     "LIMIT 1", (ticker, ticker))
            return await cur.fetchone() is not None

    async def reconcile(self, why: str) -> dict[str, int]:
        async with self._lock:
            t0 = time.monotonic()
            counts = await self.sync(f"reconcile ({why})")
            self.stats["reconciles"] += 1
            self.log.info("reconcile (%s) done in %.2fs: %s", why, time.monotonic() - t0,
                          ", ".join(f"{v} {k}" for k, v in counts.items()))
            self.notifier.status(f"live: fills, orders, positions over WebSocket; last reconcile "
                                 f"({why}) {time.monotonic() - t0:.2f}s, "
                                 f"{counts.get('fills new', 0)} new fills")
            return counts

    async def _reconcile_within(self, why: str) -> None:
        await asyncio.wait_for(self.reconcile(why),
                               self.settings.account_sync_initial_deadline_sec)

    async def reconcile_loop(self) -> None:
        interval = self.settings.account_sync_reconcile_interval_sec
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.reconcile_wanted.wait(), interval)
            why = self.reconcile_why if self.reconcile_wanted.is_set() else "periodic"
            self.reconcile_wanted.clear()
            try:
                # the whole reconcile again once the database is back (every write is keyed)
                await self.db.run(f"reconcile ({why})", self._reconcile_within, why)
            except (KalshiError, TimeoutError) as exc:
                self.log.warning("reconcile (%s) failed at step %r: %s; retrying", why,
                                 self.step, exc or type(exc).__name__)
                await asyncio.sleep(1.0)
                self._want_reconcile(why)

    async def balance_loop(self) -> None:
        """The WS carries no balance: read it over REST shortly after fills/positions."""
        assert self.rest is not None
        while True:
            await self.balance_wanted.wait()
            await asyncio.sleep(0.2)  # one read for a burst of fills
            self.balance_wanted.clear()
            try:
                bal = await self.rest.get_balance()
                await self.db.run("writing the balance", self._write_balance, bal.balance,
                                  bal.portfolio_value)
            except KalshiError as exc:
                self.log.warning("balance refresh failed: %s", exc)
                self._want_reconcile("balance refresh failed")
