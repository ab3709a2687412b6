"""rec-web's checks of a trade intent typed by the trader: the JSON bodies of
``POST /api/trades/open|close`` and the forms of the Manual trading page. Kept together, as
they were in ``app.py``, so that one shared intent schema can replace them in one place."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

TICKER_RE = r"^[A-Za-z0-9_.\-]{1,128}$"
KEY_RE = r"^[A-Za-z0-9_.:\-]{1,128}$"  # an idempotency key


class OpenTradeIn(BaseModel):
    market: str = Field(pattern=TICKER_RE, description="market ticker")
    side: Literal["yes", "no"]
    count: int = Field(ge=1, le=100_000, description="contracts")
    limit_price: float = Field(gt=0, lt=1, description="limit in dollars of the side, e.g. 0.55")


class CloseTradeIn(BaseModel):
    trade_id: int = Field(ge=1)
    limit_price: float | None = Field(default=None, gt=0, lt=1)


def parse_price(v: Any, name: str, required: bool = True) -> tuple[Any, str | None]:
    """A limit price in dollars ("0.55") or cents ("55c", "55¢")."""
    text = str(v or "").strip().lower().rstrip("¢c").strip()
    if not text:
        return (None, f"{name}: required, in dollars (0.55) or cents (55c)") if required \
            else (None, None)
    try:
        value = float(text)
    except ValueError:
        return v, f"{name}: not a price; give dollars (0.55) or cents (55c)"
    if str(v).strip().lower().endswith(("c", "¢")):
        value = value / 100
    if not 0 < value < 1:
        return v, f"{name}: a price is above $0 and below $1 (dollars 0.55, or cents 55c)"
    return round(value, 4), None


def validate_open(form: dict) -> tuple[dict, dict[str, str]]:
    errs: dict[str, str] = {}
    out: dict[str, Any] = {}
    market = str(form.get("market") or "").strip()
    if not re.match(TICKER_RE, market):
        errs["market"] = "market: a market ticker is required (letters, digits, . _ -)"
    out["market"] = market
    side = form.get("side")
    if side not in ("yes", "no"):
        errs["side"] = "side: must be yes or no"
    out["side"] = side
    try:
        count = int(str(form.get("count") or ""))
        if not 1 <= count <= 100_000:
            raise ValueError
        out["count"] = count
    except ValueError:
        errs["count"] = "count: a whole number of contracts from 1 to 100000"
        out["count"] = form.get("count")
    out["limit_price"], e = parse_price(form.get("limit_price"), "limit_price")
    if e:
        errs["limit_price"] = e
    return out, errs


def validate_close(form: dict) -> tuple[dict, dict[str, str]]:
    """``{"trade_id", "limit_price"}`` of a close form, and the errors by field."""
    errs: dict[str, str] = {}
    try:
        trade_id: int | None = int(str(form.get("trade_id") or ""))
        if trade_id < 1:
            raise ValueError
    except ValueError:
        errs["trade_id"] = "trade_id: a positive trade number"
        trade_id = None
    limit, e = parse_price(form.get("limit_price"), "limit_price", required=False)
    if e:
        errs["limit_price"] = e
    return {"trade_id": trade_id, "limit_price": limit}, errs
