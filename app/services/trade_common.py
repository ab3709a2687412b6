"""What the four trading services share: the HTTP helpers and the service shape, and (from
app/trading, where they are defined) the trade states, the derived client_order_id, the trading
settings, Kalshi's fee formula and money in cents, so a service reaches them as ``tc.X``."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import psycopg
import psycopg_pool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.runtime.http import HttpService
from app.trading.intents import CLOSE_METHODS, ENTRY_METHODS, BadInput
from app.trading.money import CENT, cents, dec, fee_cents_estimate, fee_dollars
from app.trading.rows import load_settings, row_dict, setting, strategy_conf
from app.trading.states import (
    ACTIVE_STATES,
    CANCELED,
    CH_ORDERS,
    CH_RESULTS,
    CH_TRADES,
    CLOSED,
    CLOSING,
    EXPIRED,
    FINAL_STATES,
    LEG_ACCEPTED,
    OPEN,
    PENDING,
    REJECTED,
    SUBMITTED,
    TIFS,
    TRANSITIONS,
    client_order_id,
)

__all__ = [
    "ACTIVE_STATES", "CANCELED", "CENT", "CH_ORDERS", "CH_RESULTS", "CH_TRADES", "CLOSED",
    "CLOSE_METHODS", "CLOSING", "ENTRY_METHODS", "EXPIRED", "FINAL_STATES", "LEG_ACCEPTED", "OPEN",
    "PENDING", "REJECTED", "SUBMITTED", "TIFS", "TRANSITIONS", "BadInput", "Json", "TradingService",
    "cents", "client_order_id", "dec", "error", "fee_cents_estimate", "fee_dollars", "json_body",
    "load_settings", "row_dict", "seconds_between", "setting", "strategy_conf",
]

# --- HTTP helpers -------------------------------------------------------------------------------

def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return str(o)
    if isinstance(o, datetime):
        return o.astimezone(UTC).isoformat()
    raise TypeError(f"not JSON: {type(o).__name__}")


class Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, default=_default,
                                option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError:  # what orjson refuses (a lone surrogate, a huge int)
            return json.dumps(content, default=_default, separators=(",", ":")).encode()


def error(status: int, code: str, message: str, /, field: str | None = None,
          **extra: Any) -> Response:
    """A JSON error answer: ``status`` is the HTTP status (positional only, so ``extra`` may
    carry a ``status`` of its own, e.g. a trade's)."""
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return Json(body, status_code=status)


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null", parse_float=Decimal)
    except ValueError:
        raise BadInput("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadInput("body", "must be a JSON object")
    return body


def seconds_between(a: datetime, b: datetime) -> int:
    return math.floor((b - a).total_seconds())


class TradingService(HttpService):
    """The trading services' common shape: a database pool, an HTTP API with /healthz and
    /readyz (the database answers within 2 s), and the pool closed on stop."""

    pool: Any = None

    def exception_handlers(self) -> dict:
        """A database that is down or restarting answers 503 ``database_unavailable`` (the
        intent may be sent again with its idempotency key), never a bare 500."""
        return {psycopg.OperationalError: self._database_unavailable,
                psycopg_pool.PoolTimeout: self._database_unavailable}

    async def _database_unavailable(self, request: Request, exc: Exception) -> Response:
        self.log.warning("%s %s: database unavailable (%s): answered 503", request.method,
                         request.url.path, type(exc).__name__)
        answer = error(503, "database_unavailable",
                       "the database is unavailable; send the request again shortly")
        answer.headers["Retry-After"] = "1"
        return answer

    def health_routes(self) -> list[Route]:
        return [Route("/healthz", self.health_answer), Route("/readyz", self.ready_answer)]

    async def health_answer(self, request: Request) -> Response:
        return Json({"status": "ok"})

    async def ready_answer(self, request: Request) -> Response:
        try:
            async with self.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
        except Exception as exc:
            return error(503, "database", f"database: {exc}")
        return Json({"status": "ready"})

    async def stop(self) -> None:
        await super().stop()
        if self.pool is not None:
            await self.pool.close()
