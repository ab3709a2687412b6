"""KalshiRest's base: one signed request with its retries, errors, pacing and pagination.

The areas (:mod:`.market`, :mod:`.portfolio`, :mod:`.orders`, :mod:`.order_groups`,
:mod:`.account`) build on :class:`RestBase`; :class:`app.kalshi.rest.KalshiRest` composes them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode, urlsplit

import httpx

from app.kalshi import signing
from app.kalshi.errors import (
    KalshiError,
    KalshiProtocolError,
    KalshiRateLimited,
    KalshiTimeout,
    KalshiTransportError,
    error_class,
    parse_error_body,
)
from app.kalshi.http.presign import Presigner
from app.kalshi.http.retry import (
    IDEMPOTENT,
    UNSAFE,
    RetryPolicy,
    outcome_unknown,
    parse_retry_after,
)
from app.kalshi.http1 import Http1Pool, RawResponse
from app.kalshi.models import AccountLimits, Market, Page, loads
from app.kalshi.prices import PriceGrid
from app.kalshi.ratelimit import RateBudget, items_in
from app.kalshi.urls import Endpoints

log = logging.getLogger("app.kalshi.rest")

T = TypeVar("T")

ORDERS_V2 = "/portfolio/events/orders"
LEGACY_ORDERS = "/portfolio/orders"


class LegacyOrderWrite(KalshiError):
    """A write to the legacy ``/portfolio/orders`` endpoints (refused before sending)."""


def is_legacy_order_write(method: str, path: str) -> bool:
    """True for any non-GET under ``/portfolio/orders`` (Kalshi answers those with 410)."""
    p = urlsplit(path).path.rstrip("/")
    return method.upper() not in ("GET", "HEAD") and (
        p == LEGACY_ORDERS or p.startswith(LEGACY_ORDERS + "/")
    )


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), default=str).encode()


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    """Drop unset query params; lists become Kalshi's comma-separated form."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list | tuple | set | frozenset):
            if value:
                out[key] = ",".join(str(v) for v in value)
        else:
            out[key] = value
    return out


class HttpPool(Protocol):
    """What carries KalshiRest's requests: keep-alive connections to the exchange's origin.
    Failures are httpx's exceptions (``ConnectError``: nothing was sent)."""

    async def request(self, method: str, target: str, headers: dict[str, str],
                      body: bytes | None, *, resend_if_stale: bool = True) -> RawResponse:
        """``resend_if_stale``: a repeat is harmless, so a request whose kept-alive
        connection the server closed may be sent again on a new one."""

    async def aclose(self) -> None: ...


class RestBase:
    """Signed requests against a Trade API v2 base URL, on a keep-alive pool."""

    def __init__(
        self,
        base_url: str,
        signer: signing.Signer | None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        max_connections: int = 16,
        transport: httpx.AsyncBaseTransport | None = None,
        validate_prices: bool = True,
        budget: RateBudget | None = None,
        pool: HttpPool | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._prefix = urlsplit(self.base_url).path.rstrip("/")
        self.signer = signer
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"Accept": "application/json"},
            transport=transport,
        )
        # the hot path: a lean HTTP/1.1 keep-alive pool (app.kalshi.http1); httpx stays for a
        # caller-supplied transport (tests' MockTransport)
        self._fast = pool or (
            Http1Pool(self.base_url, max_connections, {"Accept": "application/json"})
            if transport is None else None)
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.stats: dict[str, float] = {"requests": 0, "retries": 0, "paced_s": 0.0}
        self.validate_prices = validate_prices
        self.budget = budget
        self.limits: AccountLimits | None = None
        self._grids: dict[str, PriceGrid] = {}
        self._grid_reads: dict[str, asyncio.Future[Market]] = {}
        self._presigner = Presigner(signer) if signer is not None else None

    @classmethod
    def from_endpoints(cls, endpoints: Endpoints, signer: signing.Signer | None, **kw: Any):
        return cls(endpoints.rest_base, signer, **kw)

    def keep_presigned(self, method: str, path: str) -> None:
        """Keep one set of signed headers ready for ``method path`` (the order entry; see
        :mod:`app.kalshi.http.presign`)."""
        if self._presigner is not None:
            self._presigner.keep((method.upper(), self._prefix + path))

    def _headers(self, method: str, path: str) -> dict[str, str]:
        if self._presigner is None:
            return {}
        return self._presigner.headers((method, self._prefix + path))

    async def aclose(self) -> None:
        if self._presigner is not None:
            self._presigner.close()
        if self._fast is not None:
            await self._fast.aclose()
        await self._http.aclose()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ core

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        safety: str | None = None,
        call_timeout: float | None = None,
    ) -> Any:
        """Send one API call (with retries per ``safety``) and return the parsed JSON."""
        method = method.upper()
        if safety is None:
            safety = IDEMPOTENT if method in ("GET", "HEAD", "DELETE") else UNSAFE
        data, _ = await self._with_retries(method, path, params, json, safety, call_timeout)
        return data

    async def _with_retries(self, method: str, path: str, params: dict[str, Any] | None,
                            body: Any, safety: str,
                            call_timeout: float | None = None) -> tuple[Any, bool]:
        """The parsed answer of one call, repeated as ``safety`` allows, and whether an
        earlier attempt ended with an unknown outcome (then also set on an error raised as
        ``after_unknown_outcome``)."""
        attempt = 0
        unknown = False
        while True:
            attempt += 1
            try:
                return await self._once(method, path, params, body, call_timeout, safety), unknown
            except KalshiError as exc:
                exc.after_unknown_outcome = unknown
                delay = self._retry_delay(exc, safety, attempt)
                if delay is None:
                    raise
                unknown = unknown or outcome_unknown(exc)
                self.stats["retries"] += 1
                log.warning("kalshi %s %s: %s; retry %d/%d in %.2fs", method, path, exc,
                            attempt, self.retry.max_attempts - 1, delay)
                await self.sleep(delay)

    def _retry_delay(self, exc: KalshiError, safety: str, attempt: int) -> float | None:
        return self.retry.delay(exc, safety, attempt, self._rng)

    async def _once(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        body: Any,
        call_timeout: float | None,
        safety: str = IDEMPOTENT,
    ) -> Any:
        if is_legacy_order_write(method, path):
            raise LegacyOrderWrite(
                f"{method} {path}: order writes go to {ORDERS_V2} (V2); the legacy "
                f"{LEGACY_ORDERS} endpoints are read-only",
                method=method,
                path=path,
            )
        if self.budget is not None:
            self.stats["paced_s"] += await self.budget.spend(method, path, items_in(body))
        limit = call_timeout if call_timeout is not None else self.timeout
        self.stats["requests"] += 1
        try:
            async with asyncio.timeout(limit):
                resp = await self._send(method, path, params, body, limit, safety)
        except (TimeoutError, httpx.TimeoutException) as exc:
            err = KalshiTimeout(
                f"{method} {path}: no answer within {limit:g}s", method=method, path=path
            )
            err.never_sent = isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            raise err from None
        except httpx.TransportError as exc:
            err = KalshiTransportError(
                f"{method} {path}: {type(exc).__name__}: {exc}", method=method, path=path
            )
            err.never_sent = isinstance(exc, httpx.ConnectError)
            raise err from None
        if resp.status_code == 429 and self.budget is not None:
            self.budget.refused(method)  # the exchange's bucket is empty: ours is too
        return self._handle(method, path, resp)

    async def _send(self, method: str, path: str, params: dict[str, Any] | None, body: Any,
                    limit: float, safety: str) -> httpx.Response | RawResponse:
        """One request on the pool (or on httpx, with a caller's transport)."""
        headers = self._headers(method, path)
        if self._fast is None:
            return await self._http.request(method, self.base_url + path,
                                            params=_clean(params or {}), json=body,
                                            headers=headers, timeout=httpx.Timeout(limit))
        query = _clean(params) if params else None
        return await self._fast.request(
            method, self._prefix + path + ("?" + urlencode(query) if query else ""), headers,
            None if body is None else _dumps(body), resend_if_stale=safety == IDEMPOTENT)

    def _handle(self, method: str, path: str, resp: httpx.Response | RawResponse) -> Any:
        data: Any
        try:
            data = loads(resp.content) if resp.content else {}
        except ValueError:
            data = resp.text
        if resp.is_success:
            if isinstance(data, str):
                raise KalshiProtocolError(
                    f"{method} {path}: {resp.status_code} with a body that is not JSON",
                    status=resp.status_code,
                    method=method,
                    path=path,
                    raw=data[:500],
                )
            return data
        body = parse_error_body(data)
        cls = error_class(resp.status_code)
        text = f"{method} {path}: HTTP {resp.status_code}"
        if body.code or body.message:
            text += f" {body.code or ''}: {body.message or ''}".rstrip()
        kwargs: dict[str, Any] = dict(
            status=resp.status_code, body=body, method=method, path=path, raw=data
        )
        if cls is KalshiRateLimited:
            raise KalshiRateLimited(
                text, retry_after=parse_retry_after(resp.headers.get("retry-after")), **kwargs
            )
        raise cls(text, **kwargs)

    async def _get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params)

    async def paginate(
        self, fetch: Callable[[str | None], Awaitable[Page[T]]], *, max_pages: int | None = None
    ) -> AsyncIterator[T]:
        """Yield every item across pages; ``fetch(cursor)`` returns one Page."""
        cursor: str | None = None
        seen: set[str] = set()
        pages = 0
        while True:
            page = await fetch(cursor)
            pages += 1
            for item in page.items:
                yield item
            if not page.cursor or (max_pages is not None and pages >= max_pages):
                return
            if page.cursor in seen:
                raise KalshiProtocolError(f"pagination cursor repeated: {page.cursor!r}")
            seen.add(page.cursor)
            cursor = page.cursor

    @staticmethod
    def _page(data: dict[str, Any], key: str, model: type[Any]) -> Page[Any]:
        items = [model.model_validate(x) for x in data.get(key) or []]
        return Page(items=items, cursor=data.get("cursor") or None, raw=data)
