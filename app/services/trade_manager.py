"""rec-trade-manager (port 4000): the one writer of trades.

``POST /trades`` takes an intent (open or close) with an idempotency key. An open is checked
(the market, its price grid, the risk limits, the kill switch) before anything can reach the
exchange; then, in one transaction, the trade (``pending``), its ``trade_events`` row and the
order leg for rec-trade-executor (``trade_orders``, with the client_order_id derived from the
trade and the leg) are written and the executor is woken by NOTIFY.

The pieces without HTTP live in app/trading: the intent's schema (``intents``), the risk checks
(``risk``), the statements (``statements``), the settings' ranges (``settings_ranges``) and the
state machine (``machine``: opens and closes confirmed from the fills rec-account-sync stores,
expiry and settlement from the markets and the exchange's settlement records). This module holds
the service: its loops, the intents' writes and the HTTP handlers.

A close is paced per trade (``close_orders_per_minute``, and a doubling wait after each close
that did not fill, up to ``close_backoff_max_sec``): a close that must wait answers 429 with
``retry_after_sec`` and the reason.

The way of an open (one statement per hop): ``OPEN_SQL`` writes the trade, its leg, its event
and the intent and wakes the executor (NOTIFY); the executor reports the exchange's
acknowledgement to ``POST /legs/{coid}/accepted``, where the leg's result and the trade's
``pending -> submitted`` are written by one statement, and a ``POST /trades?wait=`` waiting for
it is answered. Results the executor writes itself arrive by NOTIFY (``results_loop``).

Other endpoints: ``GET /trades``, ``GET /trades/{id}`` (with its events), ``GET/PUT
/settings`` (the trading settings table, an audit row per change), ``POST /kill-switch``,
``GET /status`` (trades by status, the ``unowned`` trades, the last ledger result).

The books equal the exchange, always: the manager runs the ledger comparison at start and every
``ledger_reconcile_interval_sec`` (app/ledger/standing.py), stores each result in
``ledger_checks`` and adopts fills no trade owns into ``unowned`` trades (app/ledger/adopt.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection

from app import exchange_client
from app.db import retention
from app.db.pool import conninfo, open_pool
from app.ledger.standing import StandingLedger
from app.runtime import lockstep, metrics
from app.runtime.service import Phase, close
from app.services import trade_common as tc
from app.services.trade_common import OPEN, PENDING, BadInput
from app.services.trade_manager_api import TradeManagerApi
from app.trading import closes, risk
from app.trading import statements as sql
from app.trading.closes import Conflict
from app.trading.machine import TradeMachine
from app.trading.risk import RiskRefused

EXIT_GROUP = "supervisor"  # the order group of every close
SWEEP_SEC = 0.5
WRITER_LOCK = 13013  # session advisory lock: one rec-trade-manager per database


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in d.items()}


# --- the service --------------------------------------------------------------------------------

class TradeManagerService(TradeManagerApi):
    pool = None
    writer_conn = None
    rest = None

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.wake = asyncio.Event()  # the sweep loop: legs left by results_loop
        self.waiters: dict[int, list[asyncio.Future]] = {}
        self.results: set[str] = set()  # legs the executor announced, for results_loop
        self.results_ready = asyncio.Event()
        self.leftover: set[str] = set()  # announced legs that are not accepted opens
        self.stats = {"intents": 0, "refused": 0, "transitions": 0, "reported_acks": 0}
        metrics.use(metrics.TRADES)
        self.machine: TradeMachine = TradeMachine(None, self.log)
        self._open_lock = asyncio.Lock()
        self._kill_waits: dict[int, str] = {}  # kill-switch closes waiting: the last reason
        # OPEN_SQL's last reading of the trading settings and of each market: (jsonb text, parsed)
        self._settings: tuple[str, dict[str, Any]] | None = None
        self._markets: dict[str, tuple[str, dict[str, Any]]] = {}

    async def start(self, phase: Phase) -> None:
        s = self.settings
        self.pool = await phase("connect to database", open_pool(s, "rec-trade-manager",
                                                                   autocommit=True))
        self.machine.pool = self.pool
        await phase("take the one-writer lock", self._one_writer())
        await phase("check the trading schema", self._check_schema())
        await phase("first reconcile", self.reconcile())
        self.spawn(self.listen(), "manager-listen")
        self.spawn(self.loop(), "manager-loop")
        if not lockstep.active():  # under it, the turns' sweeps take them (turn())
            self.spawn(self.results_loop(), "manager-results")
        self.rest = exchange_client.rest_client(s, timeout=10.0)
        self.ledger = StandingLedger(self.pool, self.rest, s.ledger_reconcile_interval_sec,
                                     self.log, self.reconcile)
        self.spawn(self.ledger.loop(), "manager-ledger")
        self.spawn(retention.prune_loop(
            self.pool, [sql.finished_trade_events(s.trade_events_retention_days)], self.log),
            "manager-retention")
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
        await close(self.writer_conn, self.rest)

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
        if lockstep.active():
            return await lockstep.serve(self.turn, self.log)
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

    async def turn(self) -> None:
        """A backtest lockstep's turn (app/runtime/lockstep.py): one whole sweep, every
        result the executor has written included, whenever its NOTIFY came."""
        self.results.clear()
        self.leftover.clear()
        await self.reconcile()

    def _notify_waiters(self, trade_id: int, trade: dict[str, Any] | None = None) -> None:
        """Wake the requests waiting for the trade (with its new row if at hand)."""
        for fut in self.waiters.pop(trade_id, []):
            if not fut.done():
                fut.set_result(trade)

    async def _accepted_opens(self, coids: list[str]) -> list[str]:
        """Apply the acknowledged open legs among ``coids`` in one statement and answer their
        waiters with the submitted trade; returns the legs left for the full reconcile."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql.ACCEPTED_OPENS, (coids,))
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

    async def reconcile(self, coids: list[str] | None = None) -> None:
        """Apply what the executor, the account ledger and the markets say (``coids``: only
        those legs' results)."""
        if coids is not None and not coids:
            return
        for r in await self.machine.results(coids):
            try:
                await self.machine.apply(r)
            except Exception:
                self.log.exception("trade %s: applying its order result failed", r["id"])
            finally:
                self._notify_waiters(r["id"])  # after the commit: a waiter reads the new state
        if coids is not None:
            return
        await self.machine.expire_and_settle()
        await self._cancel_resting()
        await self._kill_switch_closes()

    async def _cancel_resting(self) -> None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql.CANCEL_RESTING, (tc.CH_ORDERS,))
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
            except (Conflict, RiskRefused) as exc:  # a paced close: said once a wait
                level = logging.DEBUG if exc.message == self._kill_waits.get(trade_id) else (
                    logging.WARNING)
                self._kill_waits[trade_id] = exc.message
                self.log.log(level, "kill switch: trade %d not closed: %s", trade_id, exc)

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
                await cur.execute(sql.OPEN_SQL, self._open_params(req))
                row = tc.row_dict(cur, await cur.fetchone())
                if row["id"] is not None:
                    break
                if row["c_known"] is not None:
                    return await self._known_intent(cur, key, "open"), False
                if row["c_in_doubt"] is not None:
                    raise Conflict("market_in_doubt", f"order {row['c_in_doubt']} on "
                                   f"{req['market']} has an unknown outcome (its answer was "
                                   f"lost); no open on this market until the exchange's "
                                   f"record settles it: send the intent again shortly",
                                   in_doubt=row["c_in_doubt"])
                s, market = self._remember(req["market"], row["c_settings"], row["c_market"])
                risk.check_market(market, req)
                risk.check_risk(s, req, row["c_held"], row["c_exposure"], row["c_pnl"])
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
            risk.check_market(market, req)
            bounds = risk.risk_bounds(s, req)
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
            await cur.execute("SELECT status, ticker, side, quantity, close_attempts "
                              "FROM trades WHERE id = %s FOR UPDATE", (req["trade_id"],))
            row = await cur.fetchone()
            if row is None:
                raise Conflict("unknown_trade", f"trade {req['trade_id']} does not exist",
                               field="trade_id")
            status, ticker, side, qty, attempts = row
            if status != OPEN:
                raise Conflict("not_open", f"trade {req['trade_id']} is {status}, not open",
                               status=status)
            s = await tc.load_settings(conn)
            await closes.close_pace(cur, req["trade_id"], s)
            price = await closes.close_price(cur, req, ticker)
            leg = f"close{attempts + 1}"
            coid = tc.client_order_id(self.install_id, req["trade_id"], leg)
            tif = s.get("close_time_in_force", "fill_or_kill")
            # every exit goes in the exits' order group ("supervisor"), which the kill switch
            # never triggers: closing must stay possible when entries are stopped
            on_pause = tc.strategy_conf(s, EXIT_GROUP)["cancel_order_on_pause"]
            await cur.execute(sql.CLOSE_LEG, (coid, req["trade_id"], leg, ticker, side, qty,
                                              price, tif, EXIT_GROUP, on_pause))
            await self.machine.transition(
                cur, req["trade_id"], OPEN, tc.CLOSING, "close requested",
                {**_jsonable(req), "client_order_id": coid, "limit": price,
                 "time_in_force": tif, "cancel_order_on_pause": on_pause},
                close_attempts=attempts + 1, close_method=req["close_method"],
                close_rule=req["close_rule"], close_limit_price=price)
            await cur.execute(sql.INTENT, (req["idempotency_key"], "close", req["trade_id"],
                                           json.dumps(_jsonable(req))))
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

    async def _trade(self, cur, trade_id: int) -> dict[str, Any]:
        await cur.execute("SELECT * FROM trades WHERE id = %s", (trade_id,))
        return tc.row_dict(cur, await cur.fetchone())
