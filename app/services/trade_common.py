"""What the four trading services share: trade states, the derived client_order_id, the
trading settings table, Kalshi's fee formula, the risk limits and small HTTP helpers.

Money: prices are Decimal dollars in the trade's own side; P&L and fees are booked in cents
(whole cents for P&L, which is what the account's cash moved by).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.runtime.http import HttpService

# --- states -----------------------------------------------------------------------------------
PENDING, SUBMITTED, OPEN, CLOSING, CLOSED = "pending", "submitted", "open", "closing", "closed"
REJECTED, CANCELED, EXPIRED = "rejected", "canceled", "expired"
ACTIVE_STATES = (PENDING, SUBMITTED, OPEN, CLOSING)  # a trade that still holds or may hold
FINAL_STATES = (CLOSED, REJECTED, CANCELED, EXPIRED)
TRANSITIONS = {
    PENDING: {SUBMITTED, REJECTED, CANCELED, EXPIRED},
    SUBMITTED: {OPEN, REJECTED, CANCELED, EXPIRED},
    OPEN: {CLOSING, EXPIRED},
    CLOSING: {OPEN, CLOSED, EXPIRED},
    EXPIRED: set(),
    CLOSED: set(),
    REJECTED: set(),
    CANCELED: set(),
}

ENTRY_METHODS = ("manual", "auto")
CLOSE_METHODS = ("manual", "auto", "kill_switch")
TIFS = ("fill_or_kill", "immediate_or_cancel", "good_till_canceled")

# NOTIFY channels
CH_ORDERS = "trade_orders"  # manager -> executor: a leg to send (payload: client_order_id)
CH_RESULTS = "trade_order_results"  # executor -> manager: a leg's outcome (client_order_id)
CH_TRADES = "trades"  # manager -> everyone: a trade changed (payload: trade id)
# a leg the exchange acknowledged, as written by rec-trade-executor or, for an open leg it
# reports, by rec-trade-manager: the same columns either way (parameters: exchange order id,
# fill count, remaining count, milliseconds from send to acknowledgement)
LEG_ACCEPTED = ("state = 'accepted', exchange_order_id = %s, fill_count = %s, "
                "remaining_count = %s, acked_at = now(), ack_ms = %s, attempts = attempts + 1")


def client_order_id(install_id: str, trade_id: int, leg: str) -> str:
    """The one client_order_id of a trade's leg: the same on every retry, restart or
    resend, so the exchange can never accept a second order for it."""
    return f"rec-{install_id}-{trade_id}-{leg}"


# --- money --------------------------------------------------------------------------------------
CENT = Decimal("0.01")
TAKER_RATE = Decimal("0.07")


def fee_dollars(count: Decimal, price: Decimal, rate: Decimal = TAKER_RATE) -> Decimal:
    """Kalshi's trading fee for one order: rate x C x P x (1 - P), rounded up to $0.0001 per
    order (the exchange's own rounding of a balance to the cent is booked from the fills)."""
    raw = rate * count * price * (1 - price)
    return raw.quantize(Decimal("0.0001"), rounding=ROUND_CEILING)


def fee_cents_estimate(count: Decimal, price: Decimal) -> int:
    """The fee rounded up to a whole cent: what a risk check must assume."""
    return int((fee_dollars(count, price) / CENT).to_integral_value(rounding=ROUND_CEILING))


def cents(d: Decimal) -> int:
    return int((d / CENT).to_integral_value(rounding=ROUND_HALF_EVEN))


def dec(v: Any) -> Decimal | None:
    if v is None:
        return None
    return v if isinstance(v, Decimal) else Decimal(str(v))


# --- trading settings ---------------------------------------------------------------------------

async def load_settings(conn) -> dict[str, Any]:
    cur = await conn.execute("SELECT key, value FROM trading_settings")
    return {k: v for k, v in await cur.fetchall()}


async def setting(conn, key: str, default: Any = None) -> Any:
    cur = await conn.execute("SELECT value FROM trading_settings WHERE key = %s", (key,))
    row = await cur.fetchone()
    return default if row is None else row[0]


def strategy_conf(settings: dict[str, Any], strategy: str) -> dict[str, Any]:
    strategies = settings.get("strategies") or {}
    conf = strategies.get(strategy) or strategies.get("manual") or {}
    return {"contracts_limit": conf.get("contracts_limit", 100),
            "cancel_order_on_pause": bool(conf.get("cancel_order_on_pause", True))}


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


def error(status: int, code: str, message: str, field: str | None = None,
          **extra: Any) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return Json(body, status_code=status)


class BadInput(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null", parse_float=Decimal)
    except ValueError:
        raise BadInput("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadInput("body", "must be a JSON object")
    return body


def row_dict(cur, row) -> dict[str, Any]:
    """A row of ``cur``'s current result by column name. The names come from the result itself
    (``cur.description`` builds a Column object per column on every call: ~0.1 ms for a trade)."""
    res = cur.pgresult
    names = [res.fname(i).decode() for i in range(res.nfields)]
    return dict(zip(names, row, strict=True))


def seconds_between(a: datetime, b: datetime) -> int:
    return math.floor((b - a).total_seconds())


class TradingService(HttpService):
    """The trading services' common shape: a database pool, an HTTP API with /healthz and
    /readyz (the database answers within 2 s), and the pool closed on stop."""

    pool: Any = None

    def health_routes(self) -> list[Route]:
        return [Route("/healthz", self.h_health), Route("/readyz", self.h_ready)]

    async def h_health(self, request: Request) -> Response:
        return Json({"status": "ok"})

    async def h_ready(self, request: Request) -> Response:
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
