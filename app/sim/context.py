"""What every REST handler shares: the request context and Kalshi's error bodies.

Kept apart from app.py (assembly) and rest.py (handlers) so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request
from starlette.responses import Response

from app.sim.ratelimit import RateLimited
from app.sim.wire import WireError

__all__ = ["RateLimited"]

if TYPE_CHECKING:
    from app.sim.accounts import Account
    from app.sim.sim import Sim

PREFIX = "/trade-api/v2"
SERVICE = "exchange-sim"
MAX_BODY = 1 << 20  # request bodies above 1 MiB are refused with 413


def error_body(code: str, message: str, details: str = "") -> dict:
    """Kalshi's error body: the spec's ErrorResponse fields, also nested under "error"
    the way the production API wraps them, so clients of either shape can read it."""
    inner = {"code": code, "message": message, "details": details}
    return {**inner, "error": dict(inner)}


def json_response(status: int, body: object) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def error_response(status: int, code: str, message: str, details: str = "") -> Response:
    return json_response(status, error_body(code, message, details))


STATUS_CODES = {429: ("too_many_requests", "too many requests"),
                500: ("internal_server_error", "internal server error"),
                502: ("bad_gateway", "bad gateway"),
                503: ("service_unavailable", "service unavailable"),
                504: ("gateway_timeout", "gateway timeout")}


def injected(status: int) -> Response:
    code, msg = STATUS_CODES.get(status, ("injected_fault", "injected fault"))
    return error_response(status, code, msg, "injected by the simulator's fault control")


class BodyTooLarge(Exception):
    pass


@dataclass
class Ctx:
    sim: Sim
    request: Request
    key_id: str | None

    @property
    def account(self) -> Account:
        assert self.key_id is not None
        return self.sim.account(self.key_id)

    def q(self, name: str) -> str | None:
        v = self.request.query_params.get(name)
        return v if v not in (None, "") else None

    def q_int(self, name: str, default: int | None, lo: int | None = None,
              hi: int | None = None) -> int | None:
        v = self.q(name)
        if v is None:
            return default
        if len(v) > 20 or not v.lstrip("-").isascii() or not v.lstrip("-").isdigit():
            raise WireError("invalid_parameters", f"{name} must be an integer")
        n = int(v)
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise WireError("invalid_parameters", f"{name} must be between {lo} and {hi}")
        return n

    def q_bool(self, name: str) -> bool:
        return (self.q(name) or "").lower() in ("true", "1")

    def charge(self, bucket: str, cost: int) -> None:
        """Take `cost` tokens from this caller's read or write bucket (429 when short)."""
        client = self.request.client
        self.sim.rate_check(self.key_id or (client.host if client else "?"), bucket, cost)

    async def body(self) -> dict:
        length = self.request.headers.get("content-length")
        if length is not None and length.isascii() and length.isdigit() \
                and int(length) > MAX_BODY:
            raise BodyTooLarge()
        raw = b""
        async for chunk in self.request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise BodyTooLarge()
        try:
            data = orjson.loads(raw or b"null")
        except orjson.JSONDecodeError:
            raise WireError("invalid_request_body", "the request body is not JSON") from None
        if not isinstance(data, dict):
            raise WireError("invalid_request_body", "the request body must be a JSON object")
        return data


Handler = Callable[[Ctx], Awaitable[tuple[int, object]]]
