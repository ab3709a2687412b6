"""rec-trade-manager's HTTP API: trade intents in, trades and settings out, the kill switch,
rec-trade-executor's report of an accepted open, and ``/status`` (a mixin of
:class:`~app.services.trade_manager.TradeManagerService`, whose state and statements it uses).
Every refusal names its reason: 422 a field, 403 a risk limit, 409 a state or key, 429 a close
that must wait."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.ledger.standing import last_check
from app.runtime import metrics
from app.services import trade_common as tc
from app.services.trade_common import PENDING, BadInput, Json, error
from app.trading import intents, settings_ranges
from app.trading import statements as sql
from app.trading.closes import Conflict
from app.trading.risk import RiskRefused

# the trades adopted for fills no trade owned (app/ledger/adopt.py), for /status
UNOWNED_SQL = ("SELECT id, ticker, side, status, quantity, entry_cost, fees, pnl_cents, reason "
               "FROM trades WHERE strategy = 'unowned' ORDER BY id")


class TradeManagerApi(tc.TradingService):
    # ------------------------------------------------------------------ HTTP

    def app(self) -> Starlette:
        return Starlette(exception_handlers=self.exception_handlers(), routes=[
            *self.health_routes(),
            Route("/trades", self.post_trade_answer, methods=["POST"]),
            Route("/trades", self.list_answer),
            Route("/trades/{trade_id:int}", self.trade_answer),
            Route("/trades/{trade_id:int}/cancel", self.cancel_answer, methods=["POST"]),
            Route("/settings", self.settings_answer),
            Route("/settings", self.put_settings_answer, methods=["PUT"]),
            Route("/kill-switch", self.kill_switch_answer, methods=["POST"]),
            Route("/legs/{coid}/accepted", self.leg_accepted_answer, methods=["POST"]),
            Route("/status", self.status_answer),
        ])

    async def status_answer(self, request: Request) -> Response:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT status, count(*) FROM trades GROUP BY status")
            counts = dict(await cur.fetchall())
            cur = await conn.execute(UNOWNED_SQL)
            unowned = [tc.row_dict(cur, r) for r in await cur.fetchall()]
            ledger = await last_check(conn)
        return Json({"trades": counts, "unowned": unowned, "ledger": ledger, **self.stats,
                     "transitions": self.stats["transitions"] + self.machine.transitions})

    async def post_trade_answer(self, request: Request) -> Response:
        self.stats["intents"] += 1
        wait = request.query_params.get("wait")
        waiter = asyncio.get_running_loop().create_future() if wait else None
        try:
            kind, req = intents.validate_intent(await tc.json_body(request))
            metrics.INTENTS.labels(kind=kind).inc()
            if kind == "open":
                trade, created = await self.open_trade(req, waiter)
            else:
                trade, created = await self.close_trade(req)
        except (BadInput, RiskRefused, Conflict) as exc:
            return self._refused(exc)
        if wait and trade["status"] == PENDING:
            trade = await self._wait(trade["id"], min(float(wait), 30.0),
                                     waiter if created else None)
        return Json({"trade": trade, "created": created}, status_code=201 if created else 200)

    def _refused(self, exc: BadInput | RiskRefused | Conflict) -> Response:
        """An intent refused: 422 a field, 403 a risk limit, 409 the trade's state or the key,
        429 a close that must wait (``retry_after_sec``); each logged with its reason."""
        self.stats["refused"] += 1
        if isinstance(exc, BadInput):
            self.log.warning("trade intent refused: %s: %s", exc.field, exc.message)
            return error(422, "invalid_field", f"{exc.field}: {exc.message}", field=exc.field)
        if isinstance(exc, RiskRefused):
            self.log.warning("trade intent refused by risk limit %s: %s", exc.limit, exc.message)
            return error(403, "risk_limit", exc.message, limit=exc.limit,
                         **{k: str(v) for k, v in exc.detail.items()})
        self.log.warning("trade intent refused: %s", exc.message)
        return error(exc.http_status, exc.code, exc.message, **exc.detail)

    async def leg_accepted_answer(self, request: Request) -> Response:
        """rec-trade-executor's report of an open leg the exchange acknowledged: written here
        with the trade's pending -> submitted and its event, in one statement, and the request
        waiting for it answered (the executor writes the leg itself when this fails)."""
        coid = request.path_params["coid"]
        try:
            body = await tc.json_body(request)
            args = (intents.text(body, "order_id"), intents.amount(body, "fill_count"),
                    intents.amount(body, "remaining_count"), intents.amount(body, "ack_ms"),
                    coid)
        except BadInput as exc:
            return error(422, "invalid_field", f"{exc.field}: {exc.message}", field=exc.field)
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql.REPORTED_OPEN, args)
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

    async def list_answer(self, request: Request) -> Response:
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

    async def trade_answer(self, request: Request) -> Response:
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

    async def settings_answer(self, request: Request) -> Response:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT key, value, description, updated_at "
                                     "FROM trading_settings ORDER BY key")
            rows = await cur.fetchall()
        ranges = settings_ranges.RANGES
        return Json({"settings": {k: {"value": v, "description": d, "updated_at": u,
                                      **({"range": ranges[k].as_dict()} if k in ranges else {})}
                                  for k, v, d, u in rows}})

    async def put_settings_answer(self, request: Request) -> Response:
        try:
            body = await tc.json_body(request)
            changed = await self.put_settings(body, request.query_params.get("by", "api"))
        except BadInput as exc:
            return error(422, "invalid_field", f"{exc.field}: {exc.message}", field=exc.field)
        return Json({"changed": changed})

    async def put_settings(self, body: dict[str, Any], by: str) -> list[str]:
        """Write the settings of ``body`` (each checked against its range first: nothing is
        written if one is out of range), an audit row per change."""
        values = {key: _checked_setting(key, value) for key, value in body.items()}
        changed = []
        async with self.pool.connection() as conn, conn.transaction():
            current = await tc.load_settings(conn)
            for key, value in values.items():
                if key not in current or value == current[key]:
                    continue
                old = current[key]
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

    async def cancel_answer(self, request: Request) -> Response:
        """Give up a resting entry: rec-trade-executor cancels it at the exchange; what
        filled before stays (the trade opens with it), else the trade ends canceled. 202 with
        the leg, or 409 when the trade has no entry resting."""
        trade_id = request.path_params["trade_id"]
        by = request.query_params.get("by", "api")
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql.CANCEL_ENTRY, {"trade_id": trade_id, "by": by,
                                                        "channel": tc.CH_ORDERS})
            row = await cur.fetchone()
            cur = await conn.execute("SELECT * FROM trades WHERE id = %s", (trade_id,))
            found = await cur.fetchone()
            trade = tc.row_dict(cur, found) if found else None
        if row is None:
            status = trade["status"] if trade else None
            return error(409 if trade else 404, "not_resting" if trade else "unknown_trade",
                         f"trade {trade_id} has no entry resting" + (
                             f" (it is {status})" if trade else ": it does not exist"),
                         status=status)
        self.log.warning("trade %d: its resting entry %s is canceled (manual, by %s)",
                         trade_id, row[1], by)
        return Json({"trade": trade, "client_order_id": row[1], "cancel": "requested"},
                    status_code=202)

    async def kill_switch_answer(self, request: Request) -> Response:
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


def _checked_setting(key: str, value: Any) -> Any:
    """``value`` as stored if it is in ``key``'s documented range, else BadInput naming the
    field and the range (NaN and Infinity included)."""
    try:
        return settings_ranges.check(key, value)
    except KeyError:
        raise BadInput(key, "is not a trading setting") from None
    except ValueError as exc:
        raise BadInput(key, str(exc)) from None
