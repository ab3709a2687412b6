"""rec-web's side of a trade intent typed by the trader: the JSON bodies of
``POST /api/trades/open|close`` and the forms of the Manual trading page.

Every bound comes from the one intent schema, :mod:`app.trading.intents`, which rec-trade-manager
applies too: the ticker and key patterns, a whole positive count no larger than the highest
``max_contracts_per_trade`` a user may set, a Decimal price strictly between $0 and $1. What rec-web
adds is only the form's convenience: a price may be typed in cents ("55c", "55¢").
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.trading import intents
from app.trading.intents import MAX_COUNT, BadInput

TICKER_RE = intents.TICKER_RE.pattern
KEY_RE = intents.KEY_RE.pattern  # an idempotency key
PRICE_FORM_HINT = "in dollars (0.55) or cents (55c)"


class OpenTradeIn(BaseModel):
    market: str = Field(pattern=TICKER_RE, description="market ticker")
    side: Literal["yes", "no"]
    count: int = Field(ge=1, le=int(MAX_COUNT), description="contracts")
    limit_price: Decimal = Field(gt=0, lt=1, allow_inf_nan=False,
                                 description="limit in dollars of the side, e.g. 0.55")


class CloseTradeIn(BaseModel):
    trade_id: int = Field(ge=1)
    limit_price: Decimal | None = Field(default=None, gt=0, lt=1, allow_inf_nan=False)


def parse_price(v: Any, name: str, required: bool = True) -> tuple[Any, str | None]:
    """A limit price typed in dollars ("0.55") or cents ("55c", "55¢"), checked by the
    shared schema; returns (value, None) or (what was typed, the error)."""
    typed = str(v or "").strip().lower()
    if not typed:
        return (None, f"{name}: required, {PRICE_FORM_HINT}") if required else (None, None)
    cents = typed.endswith(("c", "¢"))
    try:
        value = Decimal(typed.rstrip("¢c").strip())
    except InvalidOperation:
        return v, f"{name}: not a price; give {PRICE_FORM_HINT}"
    if cents:
        value = value / 100
    try:
        return intents.price({name: value}, name), None
    except BadInput as exc:
        return v, f"{exc}, {PRICE_FORM_HINT}"


def validate_open(form: dict) -> tuple[dict, dict[str, str]]:
    """``{"market", "side", "count", "limit_price"}`` of an open form, and the errors by
    field (the shared schema's messages)."""
    limit_price, price_err = parse_price(form.get("limit_price"), "limit_price")
    raw = {"market": str(form.get("market") or "").strip(), "side": form.get("side"),
           "count": str(form.get("count") or "").strip() or None, "limit_price": limit_price}
    errs = intents.field_errors({**raw, "idempotency_key": "form"}, intent="open")
    errs = {k: v for k, v in errs.items() if k in raw}
    if price_err:
        errs["limit_price"] = price_err
    out = dict(raw)
    if "count" not in errs:
        out["count"] = int(Decimal(raw["count"]))
    else:
        out["count"] = form.get("count")
    return out, errs


def validate_close(form: dict) -> tuple[dict, dict[str, str]]:
    """``{"trade_id", "limit_price"}`` of a close form, and the errors by field."""
    errs: dict[str, str] = {}
    try:
        trade_id: int | None = int(str(form.get("trade_id") or ""))
        intents.validate_close({"idempotency_key": "form", "trade_id": trade_id})
    except (ValueError, BadInput):
        errs["trade_id"] = "trade_id: a positive trade number"
        trade_id = None
    limit, e = parse_price(form.get("limit_price"), "limit_price", required=False)
    if e:
        errs["limit_price"] = e
    return {"trade_id": trade_id, "limit_price": limit}, errs
