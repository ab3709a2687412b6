"""rec-web's way to rec-trade-manager: every trade and trading setting goes through its HTTP
API (rec-web never writes one itself); its answer is passed on as it came."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import httpx
from fastapi.responses import JSONResponse

from app.web.state import WebState

WAIT = {"wait": "10"}  # the manager answers once the intent is settled, or after 10 s


def new_key() -> str:
    """An idempotency key for one intent."""
    return "web-" + secrets.token_hex(8)


def open_intent(key: str, market: str, side: str, count: int, limit_price: Decimal) -> dict:
    return {"intent": "open", "idempotency_key": key, "market": market, "side": side,
            "count": count, "limit_price": str(limit_price), "strategy": "manual",
            "entry_method": "manual"}


def close_intent(key: str, trade_id: int, limit_price: Decimal | None) -> dict:
    body: dict[str, Any] = {"intent": "close", "idempotency_key": key, "trade_id": trade_id,
                            "close_method": "manual"}
    if limit_price is not None:
        body["limit_price"] = str(limit_price)
    return body


async def call(state: WebState, user: str, method: str, path: str, body: dict | None,
               params: dict | None = None) -> tuple[int, Any]:
    """rec-trade-manager's status and answer (``by`` names the user), or 502/503 with why."""
    if state.client is None:
        return 503, {"code": "no_manager",
                     "message": "rec-trade-manager is not part of this build"}
    try:
        r = await state.client.request(method, state.manager_url + path, json=body,
                                       params={"by": f"web:{user}", **(params or {})},
                                       timeout=35)
    except httpx.HTTPError as exc:
        return 502, {"code": "manager_unreachable",
                     "message": f"rec-trade-manager did not answer: "
                                f"{type(exc).__name__}: {exc}"}
    try:
        payload = r.json()
    except ValueError:
        payload = {"code": "manager_error", "message": r.text[:2000]}
    return r.status_code, payload


def passed_on(status: int, answer: Any) -> JSONResponse:
    """rec-trade-manager's answer: on success ``{"status", "body"}``; on an error its own
    ``code`` and ``message`` as they came (the exchange's words included), with its status."""
    if status < 400:
        return JSONResponse({"status": status, "body": answer})
    a = answer if isinstance(answer, dict) else {}
    return JSONResponse({"code": str(a.get("code") or "manager_error"),
                         "message": str(a.get("message") or answer), "manager": answer},
                        status_code=status)
