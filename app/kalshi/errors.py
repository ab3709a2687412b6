"""Exceptions raised by the Kalshi clients; each carries Kalshi's error body."""

from __future__ import annotations

from typing import Any

from app.kalshi.models import ErrorBody


class KalshiError(Exception):
    """A request that did not succeed.

    ``status`` is the HTTP status (None when no response arrived); ``code``,
    ``error_message`` and ``details`` come from Kalshi's ErrorResponse body.
    ``after_unknown_outcome`` is True when an earlier attempt of the same call
    ended without a known outcome (5xx, timeout), so the exchange may have acted.
    """

    after_unknown_outcome: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: ErrorBody | None = None,
        method: str | None = None,
        path: str | None = None,
        raw: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or ErrorBody()
        self.method = method
        self.path = path
        self.raw = raw

    @property
    def code(self) -> str | None:
        return self.body.code

    @property
    def error_message(self) -> str | None:
        return self.body.message

    @property
    def details(self) -> str | None:
        return self.body.details


class KalshiTransportError(KalshiError):
    """No usable response: connection refused/reset, protocol error.

    ``never_sent`` is True when the connection was never established, so the
    exchange cannot have acted on the request.
    """

    never_sent: bool = False


class KalshiTimeout(KalshiTransportError):
    """The call did not finish within its timeout."""


class KalshiHTTPError(KalshiError):
    """The exchange answered with a non-2xx status."""


class KalshiBadRequest(KalshiHTTPError):  # 400
    pass


class KalshiAuthError(KalshiHTTPError):  # 401, 403
    pass


class KalshiNotFound(KalshiHTTPError):  # 404
    pass


class KalshiConflict(KalshiHTTPError):  # 409
    pass


class KalshiGone(KalshiHTTPError):  # 410
    """An endpoint Kalshi has retired (e.g. ``deprecated_v1_order_endpoint``)."""


class KalshiRejected(KalshiHTTPError):  # a 2xx answer to an order write without the order
    """An order write answered with a success status but no order (e.g. the 410
    ``deprecated_v1_order_endpoint`` inside a 2xx body): the write did not happen."""


class KalshiRateLimited(KalshiHTTPError):  # 429
    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class KalshiServerError(KalshiHTTPError):  # 5xx
    pass


class KalshiProtocolError(KalshiError):
    """A response that does not match the API contract (unparseable body, cursor loop)."""


_BY_STATUS: dict[int, type[KalshiHTTPError]] = {
    400: KalshiBadRequest,
    401: KalshiAuthError,
    403: KalshiAuthError,
    404: KalshiNotFound,
    409: KalshiConflict,
    410: KalshiGone,
    429: KalshiRateLimited,
}


def error_class(status: int) -> type[KalshiHTTPError]:
    if status >= 500:
        return KalshiServerError
    return _BY_STATUS.get(status, KalshiHTTPError)


def parse_error_body(data: Any) -> ErrorBody:
    """Kalshi's error JSON, flat (``{"code", "message"}``) or wrapped (``{"error": {...}}``)."""
    if isinstance(data, dict):
        inner = data.get("error")
        if isinstance(inner, dict):
            data = inner
        elif isinstance(inner, str) and "message" not in data:
            data = {**data, "message": inner}
        fields = {
            k: str(v) for k, v in data.items() if k in ErrorBody.model_fields and v is not None
        }
        return ErrorBody(**fields)
    if isinstance(data, str) and data:
        return ErrorBody(message=data[:500])
    return ErrorBody()
