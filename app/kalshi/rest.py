"""Async REST client for Kalshi Trade API v2 (httpx).

Every call has a timeout, is signed (RSA-PSS over timestamp + METHOD + path with
the ``/trade-api/v2`` prefix and without the query string) and parses JSON with
Decimal numbers. Retries follow one rule, decided per call:

* 429 means the exchange refused the request before doing anything, and a
  connection that was never established means nothing was sent: both are
  retried for every call.
* 5xx, timeouts and broken connections leave the outcome unknown: only calls
  whose repetition cannot do anything twice are retried - reads (GET), cancels
  (DELETE) and order creation, which always carries a client_order_id so a
  repeat is recognised by the exchange (a 409 on a repeat is resolved by
  looking the order up by that client_order_id); batch creates likewise, item
  by item. Amend and decrease are never repeated after an unknown outcome.

Delays are exponential with full jitter; a Retry-After header is honoured.

Order writes go only to the V2 endpoints under ``/portfolio/events/orders``
(Trade API v3.31.0); ``/portfolio/orders`` is read-only here and a write to it
is refused before anything is sent. Callers speak outcome side + action
(:mod:`app.kalshi.direction` translates to the YES book), every price is checked
against the market's price grid (:mod:`app.kalshi.prices`) before it is sent, and
after :meth:`KalshiRest.start` requests are paced by the account's token buckets
(:mod:`app.kalshi.ratelimit`).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import httpx

from app.kalshi import signing
from app.kalshi.direction import to_book
from app.kalshi.errors import (
    KalshiConflict,
    KalshiError,
    KalshiHTTPError,
    KalshiNotFound,
    KalshiProtocolError,
    KalshiRateLimited,
    KalshiServerError,
    KalshiTimeout,
    KalshiTransportError,
    error_class,
    parse_error_body,
)
from app.kalshi.http1 import Http1Pool, RawResponse
from app.kalshi.models import (
    AccountLimits,
    AmendAck,
    Balance,
    BatchCancelItem,
    BatchCreateItem,
    CancelAck,
    DecreaseAck,
    EndpointCosts,
    Event,
    EventWithMarkets,
    ExchangeStatus,
    Fill,
    Market,
    MarketPosition,
    Order,
    OrderAck,
    Orderbook,
    Page,
    Positions,
    Series,
    Settlement,
    Trade,
    fmt_count,
    fmt_dollars,
    loads,
    to_decimal,
)
from app.kalshi.prices import PriceGrid
from app.kalshi.ratelimit import RateBudget, items_in
from app.kalshi.urls import Endpoints

log = logging.getLogger(__name__)

T = TypeVar("T")

# How a call may be repeated (see module docstring).
IDEMPOTENT = "idempotent"  # retry on 429, 5xx, timeouts, transport errors
UNSAFE = "unsafe"  # retry only on 429 and connections never established


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_retry_after: float = 30.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential delay before retry number ``attempt`` (1-based)."""
        cap = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return rng.uniform(cap / 2, cap)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def _outcome_unknown(exc: KalshiError) -> bool:
    """True when the exchange may have acted on a request that failed with ``exc``."""
    if isinstance(exc, KalshiRateLimited):
        return False
    if isinstance(exc, KalshiTransportError):
        return not exc.never_sent
    return isinstance(exc, KalshiServerError)


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), default=str).encode()


def _is_duplicate(item: BatchCreateItem) -> bool:
    return item.error is not None and item.error.code == "order_already_exists"


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


ORDERS_V2 = "/portfolio/events/orders"
LEGACY_ORDERS = "/portfolio/orders"
TIME_IN_FORCE = ("good_till_canceled", "immediate_or_cancel", "fill_or_kill")
SELF_TRADE_PREVENTION = ("taker_at_cross", "maker")
# headers signed ahead (``KalshiRest.keep_presigned``): each set is used once and never when
# older than this (the exchange takes timestamps within its window: the simulator's is 30 s)
PRESIGN_MAX_AGE_MS = 1000


class LegacyOrderWrite(KalshiError):
    """A write to the legacy ``/portfolio/orders`` endpoints (refused before sending)."""


def is_legacy_order_write(method: str, path: str) -> bool:
    """True for any non-GET under ``/portfolio/orders`` (Kalshi answers those with 410)."""
    p = urlsplit(path).path.rstrip("/")
    return method.upper() not in ("GET", "HEAD") and (
        p == LEGACY_ORDERS or p.startswith(LEGACY_ORDERS + "/")
    )


def _count(value: int | Decimal | str, what: str = "count") -> str:
    qty = to_decimal(value)
    if qty <= 0:
        raise ValueError(f"{what} must be positive, not {value!r}")
    return fmt_count(qty)


def order_body(
    ticker: str,
    side: str,
    action: str,
    count: int | Decimal | str,
    price: Decimal | str,
    *,
    client_order_id: str | None = None,
    time_in_force: str = "good_till_canceled",
    self_trade_prevention_type: str = "taker_at_cross",
    post_only: bool | None = None,
    reduce_only: bool | None = None,
    expiration_time: int | None = None,
    order_group_id: str | None = None,
    cancel_order_on_pause: bool | None = None,
    subaccount: int | None = None,
    exchange_index: int | None = None,
) -> dict[str, Any]:
    """A CreateOrderV2Request body from rec's view of an order.

    ``side`` (yes/no) and ``action`` (buy/sell) with ``price`` in that side's
    dollars become the YES-book ``side`` (bid/ask) and YES ``price``
    (:func:`app.kalshi.direction.to_book`). A client_order_id is generated when
    none is given, so every order can be retried safely.
    """
    quote_ = to_book(side, action, price)
    if time_in_force not in TIME_IN_FORCE:
        raise ValueError(f"time_in_force must be one of {', '.join(TIME_IN_FORCE)}")
    if self_trade_prevention_type not in SELF_TRADE_PREVENTION:
        raise ValueError(
            f"self_trade_prevention_type must be one of {', '.join(SELF_TRADE_PREVENTION)}"
        )
    body: dict[str, Any] = {
        "ticker": ticker,
        "client_order_id": client_order_id or str(uuid.uuid4()),
        "side": quote_.book_side,
        "count": _count(count),
        "price": fmt_dollars(quote_.price),
        "time_in_force": time_in_force,
        "self_trade_prevention_type": self_trade_prevention_type,
    }
    optional = {
        "post_only": post_only,
        "reduce_only": reduce_only,
        "expiration_time": expiration_time,
        "order_group_id": order_group_id,
        "cancel_order_on_pause": cancel_order_on_pause,
        "subaccount": subaccount,
        "exchange_index": exchange_index,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def _age_ms(headers: dict[str, str]) -> float:
    return time.time() * 1000 - int(headers[signing.HEADER_TIMESTAMP])


CancelRef = str | tuple[str, str]  # order_id, or (order_id, market_ticker) for auto-routing


class KalshiRest:
    """One signed httpx.AsyncClient against a Trade API v2 base URL."""

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
        self._fast = (Http1Pool(self.base_url, max_connections, {"Accept": "application/json"})
                      if transport is None else None)
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.stats: dict[str, float] = {"requests": 0, "retries": 0, "paced_s": 0.0}
        self.validate_prices = validate_prices
        self.budget = budget
        self.limits: AccountLimits | None = None
        self._grids: dict[str, PriceGrid] = {}
        self._grid_reads: dict[str, asyncio.Future[Market]] = {}
        self._presigned: dict[tuple[str, str], dict[str, str] | None] = {}
        self._presign_task: asyncio.Task | None = None

    @classmethod
    def from_endpoints(cls, endpoints: Endpoints, signer: signing.Signer | None, **kw: Any):
        return cls(endpoints.rest_base, signer, **kw)

    async def start(self, *, pace: bool = True) -> RateBudget | None:
        """Read the account's rate limits and endpoint costs; pace requests by them.

        Call once before trading. Returns the budget (None when ``pace`` is False).
        """
        self.limits = await self.get_account_limits()
        if not pace:
            return None
        costs = await self.get_endpoint_costs()
        budget = RateBudget.build(self.limits, costs)
        # the two reads above were not paced: take their tokens now
        if budget.read is not None:
            for path in ("/account/limits", "/account/endpoint_costs"):
                budget.read.tokens -= budget.cost("GET", path)
        self.budget = budget
        log.info(
            "kalshi rate budget: tier %s, reads %d/s (burst %d), writes %d/s (burst %d), "
            "default cost %d",
            self.limits.usage_tier,
            self.limits.read.refill_rate,
            self.limits.read.bucket_capacity,
            self.limits.write.refill_rate,
            self.limits.write.bucket_capacity,
            costs.default_cost,
        )
        return self.budget

    def keep_presigned(self, method: str, path: str) -> None:
        """Keep one set of signed headers ready for ``method path`` (the order entry): the
        RSA-PSS signature (~0.2 ms) is then made while nothing waits for it, not on the order's
        way out. A set is used by one request only, and not when older than
        PRESIGN_MAX_AGE_MS; the next is signed as soon as the loop is free (while the request
        is on the wire), and a resting set is renewed at half that age."""
        if self.signer is None:
            return
        key = (method.upper(), self._prefix + path)
        self._presigned[key] = self.signer.headers(*key)
        if self._presign_task is None:
            self._presign_task = asyncio.get_running_loop().create_task(
                self._renew_presigned(), name="kalshi-presign")

    def _headers(self, method: str, path: str) -> dict[str, str]:
        if self.signer is None:
            return {}
        key = (method, self._prefix + path)
        if key in self._presigned:
            ready, self._presigned[key] = self._presigned[key], None
            asyncio.get_running_loop().call_soon(self._presign, key)
            if ready is not None and _age_ms(ready) <= PRESIGN_MAX_AGE_MS:
                return ready
        return self.signer.headers(*key)

    def _presign(self, key: tuple[str, str]) -> None:
        if self._presigned[key] is None:  # not signed meanwhile (by the renewal)
            self._presigned[key] = self.signer.headers(*key)

    async def _renew_presigned(self) -> None:
        try:
            while True:
                await asyncio.sleep(PRESIGN_MAX_AGE_MS / 4000)
                for key, ready in self._presigned.items():
                    if ready is not None and _age_ms(ready) > PRESIGN_MAX_AGE_MS / 2:
                        self._presigned[key] = self.signer.headers(*key)
        except Exception:  # requests then sign their own headers, as without it
            log.exception("renewing the signed-ahead headers stopped")

    async def aclose(self) -> None:
        if self._presign_task is not None:
            self._presign_task.cancel()
            self._presign_task = None
        if self._fast is not None:
            await self._fast.aclose()
        await self._http.aclose()

    async def __aenter__(self) -> KalshiRest:
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
        attempt = 0
        unknown = False
        while True:
            attempt += 1
            try:
                return await self._once(method, path, params, json, call_timeout)
            except KalshiError as exc:
                exc.after_unknown_outcome = unknown
                delay = self._retry_delay(exc, safety, attempt)
                if delay is None:
                    raise
                unknown = unknown or _outcome_unknown(exc)
                self.stats["retries"] += 1
                log.warning(
                    "kalshi %s %s: %s; retry %d/%d in %.2fs",
                    method,
                    path,
                    exc,
                    attempt,
                    self.retry.max_attempts - 1,
                    delay,
                )
                await self.sleep(delay)

    def _retry_delay(self, exc: KalshiError, safety: str, attempt: int) -> float | None:
        if attempt >= self.retry.max_attempts:
            return None
        if isinstance(exc, KalshiRateLimited):
            if exc.retry_after is not None:
                if exc.retry_after > self.retry.max_retry_after:
                    return None
                return exc.retry_after + self._rng.uniform(0, self.retry.base_delay)
            return self.retry.backoff(attempt, self._rng)
        if isinstance(exc, KalshiTransportError) and exc.never_sent:
            return self.retry.backoff(attempt, self._rng)
        if safety == IDEMPOTENT and isinstance(exc, KalshiServerError | KalshiTransportError):
            return self.retry.backoff(attempt, self._rng)
        return None

    async def _once(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        body: Any,
        call_timeout: float | None,
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
        url = self.base_url + path
        headers = self._headers(method, path)
        limit = call_timeout if call_timeout is not None else self.timeout
        self.stats["requests"] += 1
        try:
            async with asyncio.timeout(limit):
                if self._fast is not None:
                    query = _clean(params) if params else None
                    resp = await self._fast.request(
                        method,
                        self._prefix + path + ("?" + urlencode(query) if query else ""),
                        headers,
                        None if body is None else _dumps(body),
                    )
                else:
                    resp = await self._http.request(
                        method,
                        url,
                        params=_clean(params or {}),
                        json=body,
                        headers=headers,
                        timeout=httpx.Timeout(limit),
                    )
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

    # ------------------------------------------------------------------ exchange

    async def get_exchange_status(self) -> ExchangeStatus:
        return ExchangeStatus.model_validate(await self._get("/exchange/status"))

    # ------------------------------------------------------------------ series & events

    async def get_series_list(
        self, *, category: str | None = None, tags: str | None = None, **extra: Any
    ) -> list[Series]:
        data = await self._get("/series", category=category, tags=tags, **extra)
        return [Series.model_validate(x) for x in data.get("series") or []]

    async def get_series(self, series_ticker: str) -> Series:
        data = await self._get(f"/series/{quote(series_ticker, safe='')}")
        return Series.model_validate(data["series"])

    async def get_events(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        status: str | None = None,
        series_ticker: str | None = None,
        with_nested_markets: bool | None = None,
        min_close_ts: int | None = None,
        **extra: Any,
    ) -> Page[Event]:
        data = await self._get(
            "/events",
            limit=limit,
            cursor=cursor,
            status=status,
            series_ticker=series_ticker,
            with_nested_markets=with_nested_markets,
            min_close_ts=min_close_ts,
            **extra,
        )
        return self._page(data, "events", Event)

    def iter_events(self, **filters: Any) -> AsyncIterator[Event]:
        return self.paginate(lambda c: self.get_events(cursor=c, **filters))

    async def get_event(
        self, event_ticker: str, *, with_nested_markets: bool | None = None
    ) -> EventWithMarkets:
        data = await self._get(
            f"/events/{quote(event_ticker, safe='')}", with_nested_markets=with_nested_markets
        )
        out = EventWithMarkets.model_validate(data)
        for m in [*out.markets, *(out.event.markets or [])]:
            self.remember_market(m)
        return out

    # ------------------------------------------------------------------ markets

    async def get_markets(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        event_ticker: str | None = None,
        series_ticker: str | None = None,
        status: str | None = None,
        tickers: Iterable[str] | None = None,
        min_close_ts: int | None = None,
        max_close_ts: int | None = None,
        **extra: Any,
    ) -> Page[Market]:
        data = await self._get(
            "/markets",
            limit=limit,
            cursor=cursor,
            event_ticker=event_ticker,
            series_ticker=series_ticker,
            status=status,
            tickers=list(tickers) if tickers is not None else None,
            min_close_ts=min_close_ts,
            max_close_ts=max_close_ts,
            **extra,
        )
        page = self._page(data, "markets", Market)
        for m in page.items:
            self.remember_market(m)
        return page

    def iter_markets(self, **filters: Any) -> AsyncIterator[Market]:
        return self.paginate(lambda c: self.get_markets(cursor=c, **filters))

    async def get_market(self, ticker: str) -> Market:
        data = await self._get(f"/markets/{quote(ticker, safe='')}")
        market = Market.model_validate(data["market"])
        self.remember_market(market)
        return market

    async def get_orderbook(self, ticker: str, *, depth: int | None = None) -> Orderbook:
        data = await self._get(f"/markets/{quote(ticker, safe='')}/orderbook", depth=depth)
        return Orderbook.from_response(ticker, data)

    async def get_trades(
        self,
        *,
        ticker: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
    ) -> Page[Trade]:
        data = await self._get(
            "/markets/trades",
            ticker=ticker,
            limit=limit,
            cursor=cursor,
            min_ts=min_ts,
            max_ts=max_ts,
        )
        return self._page(data, "trades", Trade)

    def iter_trades(self, **filters: Any) -> AsyncIterator[Trade]:
        return self.paginate(lambda c: self.get_trades(cursor=c, **filters))

    # ------------------------------------------------------------------ portfolio

    async def get_balance(self) -> Balance:
        return Balance.model_validate(await self._get("/portfolio/balance"))

    async def get_positions(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        count_filter: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Positions:
        data = await self._get(
            "/portfolio/positions",
            ticker=ticker,
            event_ticker=event_ticker,
            count_filter=count_filter,
            limit=limit,
            cursor=cursor,
        )
        out = Positions.model_validate(data)
        out.cursor = out.cursor or None
        return out

    async def iter_market_positions(self, **filters: Any) -> AsyncIterator[MarketPosition]:
        async def fetch(cursor: str | None) -> Page[MarketPosition]:
            pos = await self.get_positions(cursor=cursor, **filters)
            return Page(items=pos.market_positions, cursor=pos.cursor)

        async for item in self.paginate(fetch):
            yield item

    async def get_fills(
        self,
        *,
        ticker: str | None = None,
        order_id: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Fill]:
        data = await self._get(
            "/portfolio/fills",
            ticker=ticker,
            order_id=order_id,
            min_ts=min_ts,
            max_ts=max_ts,
            limit=limit,
            cursor=cursor,
        )
        return self._page(data, "fills", Fill)

    def iter_fills(self, **filters: Any) -> AsyncIterator[Fill]:
        return self.paginate(lambda c: self.get_fills(cursor=c, **filters))

    async def get_settlements(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Settlement]:
        data = await self._get(
            "/portfolio/settlements",
            ticker=ticker,
            event_ticker=event_ticker,
            min_ts=min_ts,
            max_ts=max_ts,
            limit=limit,
            cursor=cursor,
        )
        return self._page(data, "settlements", Settlement)

    def iter_settlements(self, **filters: Any) -> AsyncIterator[Settlement]:
        return self.paginate(lambda c: self.get_settlements(cursor=c, **filters))

    # ------------------------------------------------------------------ account

    async def get_account_limits(self) -> AccountLimits:
        return AccountLimits.model_validate(await self._get("/account/limits"))

    async def get_endpoint_costs(self) -> EndpointCosts:
        return EndpointCosts.model_validate(await self._get("/account/endpoint_costs"))

    # ------------------------------------------------------------------ price grids

    def remember_market(self, market: Market) -> None:
        """Keep ``market``'s price grid (every market read through this client does this)."""
        if market.price_ranges or market.price_level_structure:
            self._grids[market.ticker] = PriceGrid.from_market(market)

    def set_price_grid(self, ticker: str, grid: PriceGrid) -> None:
        """E.g. from a WS ``price_level_structure_updated`` lifecycle message."""
        self._grids[ticker] = grid

    async def price_grid(self, ticker: str) -> PriceGrid:
        """The market's valid prices (read once with GET /markets/{ticker}, then kept).

        Concurrent first orders on one market share a single read.
        """
        grid = self._grids.get(ticker)
        if grid is None:
            read = self._grid_reads.get(ticker)
            if read is None:
                read = self._grid_reads[ticker] = asyncio.ensure_future(self.get_market(ticker))
                read.add_done_callback(lambda f: self._grid_reads.pop(ticker, None))
            await asyncio.shield(read)
            grid = self._grids.get(ticker) or PriceGrid.from_structure("", ticker)
        return grid

    async def check_price(self, ticker: str, yes_price: Decimal | str) -> None:
        """Raise :class:`~app.kalshi.prices.InvalidPrice` unless the market takes the price."""
        if self.validate_prices:
            (await self.price_grid(ticker)).check(yes_price)

    # ------------------------------------------------------------------ orders (V2 writes)

    async def create_order(
        self,
        ticker: str,
        side: str,
        action: str,
        count: int | Decimal | str,
        price: Decimal | str,
        **kw: Any,
    ) -> OrderAck:
        """Place an order: buy/sell ``side`` (yes/no) at ``price`` in that side's dollars.

        Keywords as :func:`order_body`. Retried after an unknown outcome with the
        same client_order_id; if the exchange then answers 409 (it already has
        that id), the order is looked up by its client_order_id and returned
        (``recovered=True``), so one call never makes two orders.
        """
        return await self.submit_order(order_body(ticker, side, action, count, price, **kw))

    async def submit_order(self, body: dict[str, Any]) -> OrderAck:
        """POST a prepared CreateOrderV2Request body (must carry client_order_id)."""
        coid = body.get("client_order_id")
        if not coid:
            raise ValueError("an order needs a client_order_id to be retried safely")
        await self.check_price(body["ticker"], body["price"])
        try:
            data, _ = await self._post_with_same_ids(ORDERS_V2, body, what=f"order {coid}")
        except KalshiConflict as exc:
            if exc.after_unknown_outcome:
                found = await self.find_order_by_client_id(coid, ticker=body["ticker"])
                if found is not None:
                    log.info("order %s already accepted by an earlier attempt", coid)
                    return OrderAck.from_order(found)
            raise
        return OrderAck.model_validate(data)

    async def _post_with_same_ids(self, path: str, body: Any, *, what: str) -> tuple[Any, bool]:
        """POST order creation(s), repeating the same body (same client_order_ids).

        Retried like a read: every order in it carries a client_order_id, so the
        exchange recognises a repeat. Returns the answer and whether an earlier
        attempt ended with an unknown outcome; an error raised after such an
        attempt has ``after_unknown_outcome`` set.
        """
        attempt = 0
        ambiguous = False
        while True:
            attempt += 1
            try:
                return await self._once("POST", path, None, body, None), ambiguous
            except KalshiError as exc:
                exc.after_unknown_outcome = ambiguous
                delay = None if isinstance(exc, KalshiConflict) else self._retry_delay(
                    exc, IDEMPOTENT, attempt
                )
                if delay is None:
                    raise
                ambiguous = ambiguous or _outcome_unknown(exc)
                self.stats["retries"] += 1
                log.warning(
                    "kalshi create %s: %s; retry %d with the same client_order_id",
                    what,
                    exc,
                    attempt,
                )
                await self.sleep(delay)

    async def find_order_by_client_id(
        self, client_order_id: str, *, ticker: str | None = None
    ) -> Order | None:
        """The order whose client_order_id is ``client_order_id`` (None if there is none).

        The list endpoint cannot filter by client_order_id; ``ticker`` narrows the
        listing, the match is always on the client_order_id itself.
        """
        async for order in self.iter_orders(ticker=ticker, limit=200):
            if order.client_order_id == client_order_id:
                return order
        return None

    async def get_order(self, order_id: str) -> Order:
        data = await self._get(f"{LEGACY_ORDERS}/{quote(order_id, safe='')}")
        return Order.model_validate(data["order"])

    async def get_orders(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        status: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        subaccount: int | None = None,
    ) -> Page[Order]:
        data = await self._get(
            LEGACY_ORDERS,
            ticker=ticker,
            event_ticker=event_ticker,
            status=status,
            min_ts=min_ts,
            max_ts=max_ts,
            limit=limit,
            cursor=cursor,
            subaccount=subaccount,
        )
        return self._page(data, "orders", Order)

    def iter_orders(self, **filters: Any) -> AsyncIterator[Order]:
        return self.paginate(lambda c: self.get_orders(cursor=c, **filters))

    async def cancel_order(
        self,
        order_id: str,
        *,
        ticker: str | None = None,
        subaccount: int | None = None,
        exchange_index: int | None = None,
    ) -> CancelAck:
        """Cancel a resting order (V2); retried like a read, since cancelling twice is harmless.

        ``ticker`` lets the exchange route the cancel to the market's shard. When
        an earlier attempt may have cancelled the order and the retry then
        answers 404, the order is fetched and, if it is canceled, returned with
        ``reduced_by`` None (unknown).
        """
        path = f"{ORDERS_V2}/{quote(order_id, safe='')}"
        params = {
            "market_ticker": ticker,
            "subaccount": subaccount,
            "exchange_index": exchange_index,
        }
        try:
            data = await self.request("DELETE", path, params=params)
        except KalshiNotFound as exc:
            if not exc.after_unknown_outcome:
                raise
            order = await self.get_order(order_id)
            if order.status != "canceled":
                raise
            return CancelAck(order_id=order.order_id, client_order_id=order.client_order_id)
        return CancelAck.model_validate(data)

    async def cancel_all_orders(self, *, subaccount: int | None = None) -> None:
        """Cancel every resting order (of ``subaccount`` when given) on every shard."""
        await self.request("DELETE", ORDERS_V2, params={"subaccount": subaccount})

    async def amend_order(
        self,
        order_id: str,
        *,
        ticker: str,
        side: str,
        action: str,
        price: Decimal | str,
        count: int | Decimal | str,
        client_order_id: str | None = None,
        updated_client_order_id: str | None = None,
        expiration_time: int | None = None,
        subaccount: int | None = None,
        exchange_index: int | None = None,
    ) -> AmendAck:
        """Change price and/or size (never retried after an unknown outcome).

        ``side``/``action``/``price`` as for :meth:`create_order`; ``count`` is the
        new total (already filled + desired resting), as Kalshi defines it.
        """
        quote_ = to_book(side, action, price)
        await self.check_price(ticker, quote_.price)
        body: dict[str, Any] = {
            "ticker": ticker,
            "side": quote_.book_side,
            "price": fmt_dollars(quote_.price),
            "count": _count(count),
        }
        optional = {
            "client_order_id": client_order_id,
            "updated_client_order_id": updated_client_order_id,
            "expiration_time": expiration_time,
            "exchange_index": exchange_index,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        data = await self.request(
            "POST",
            f"{ORDERS_V2}/{quote(order_id, safe='')}/amend",
            params={"subaccount": subaccount},
            json=body,
            safety=UNSAFE,
        )
        return AmendAck.model_validate(data)

    async def decrease_order(
        self,
        order_id: str,
        *,
        reduce_by: int | Decimal | str | None = None,
        reduce_to: int | Decimal | str | None = None,
        ticker: str | None = None,
        subaccount: int | None = None,
        exchange_index: int | None = None,
    ) -> DecreaseAck:
        if (reduce_by is None) == (reduce_to is None):
            raise ValueError("give exactly one of reduce_by or reduce_to")
        body: dict[str, Any] = {}
        if reduce_by is not None:
            body["reduce_by"] = _count(reduce_by, "reduce_by")
        if reduce_to is not None:
            qty = to_decimal(reduce_to)
            if qty < 0:
                raise ValueError(f"reduce_to must not be negative, not {reduce_to!r}")
            body["reduce_to"] = fmt_count(qty)
        if ticker is not None:
            body["market_ticker"] = ticker
        if exchange_index is not None:
            body["exchange_index"] = exchange_index
        data = await self.request(
            "POST",
            f"{ORDERS_V2}/{quote(order_id, safe='')}/decrease",
            params={"subaccount": subaccount},
            json=body,
            safety=UNSAFE,
        )
        return DecreaseAck.model_validate(data)

    async def batch_create_orders(self, orders: list[dict[str, Any]]) -> list[BatchCreateItem]:
        """POST /portfolio/events/orders/batched with bodies from :func:`order_body`.

        Every price is checked before anything is sent; the answer has one item
        per order, in order, each with the order's ids or its error. Like
        :meth:`create_order`, the batch is repeated with the same client_order_ids
        after an unknown outcome, and items the exchange then refuses as duplicates
        are looked up by client_order_id (``recovered=True``).
        """
        for body in orders:
            if not body.get("client_order_id"):
                raise ValueError("every order in a batch needs a client_order_id")
            await self.check_price(body["ticker"], body["price"])
        data, ambiguous = await self._post_with_same_ids(
            f"{ORDERS_V2}/batched", {"orders": orders}, what=f"batch of {len(orders)}"
        )
        items = [BatchCreateItem.model_validate(x) for x in data.get("orders") or []]
        if ambiguous:
            for n, (body, item) in enumerate(zip(orders, items, strict=False)):
                if _is_duplicate(item):
                    found = await self.find_order_by_client_id(
                        body["client_order_id"], ticker=body["ticker"]
                    )
                    if found is not None:
                        items[n] = BatchCreateItem.from_order(found)
        return items

    # ------------------------------------------------------------------ order groups

    async def create_order_group(self, contracts_limit: int | Decimal | str) -> str:
        """POST /portfolio/order_groups/create: a group that cancels its orders once fills
        pass ``contracts_limit`` in a rolling 15-second window. Returns its id."""
        data = await self.request("POST", "/portfolio/order_groups/create",
                                  json={"contracts_limit_fp": _count(contracts_limit,
                                                                     "contracts_limit")})
        return str(data["order_group_id"])

    async def get_order_groups(self) -> list[dict[str, Any]]:
        data = await self._get("/portfolio/order_groups")
        return list(data.get("order_groups") or [])

    async def get_order_group(self, order_group_id: str) -> dict[str, Any]:
        return await self._get(f"/portfolio/order_groups/{quote(order_group_id, safe='')}")

    async def trigger_order_group(self, order_group_id: str) -> None:
        """Cancel every order of the group and refuse new ones until it is reset."""
        await self.request("PUT", f"/portfolio/order_groups/{quote(order_group_id, safe='')}"
                           "/trigger", json={}, safety=IDEMPOTENT)

    async def reset_order_group(self, order_group_id: str) -> None:
        await self.request("PUT", f"/portfolio/order_groups/{quote(order_group_id, safe='')}"
                           "/reset", json={}, safety=IDEMPOTENT)

    async def set_order_group_limit(self, order_group_id: str,
                                    contracts_limit: int | Decimal | str) -> None:
        await self.request("PUT", f"/portfolio/order_groups/{quote(order_group_id, safe='')}"
                           "/limit", json={"contracts_limit_fp": _count(contracts_limit,
                                                                        "contracts_limit")},
                           safety=IDEMPOTENT)

    async def delete_order_group(self, order_group_id: str) -> None:
        await self.request("DELETE", f"/portfolio/order_groups/{quote(order_group_id, safe='')}")

    async def batch_cancel_orders(
        self, orders: Iterable[CancelRef], *, subaccount: int | None = None
    ) -> list[BatchCancelItem]:
        """DELETE /portfolio/events/orders/batched: order ids or (order_id, ticker) pairs."""
        items: list[dict[str, Any]] = []
        for ref in orders:
            oid, ticker = (ref, None) if isinstance(ref, str) else ref
            item: dict[str, Any] = {"order_id": oid}
            if ticker:
                item["market_ticker"] = ticker
            if subaccount is not None:
                item["subaccount"] = subaccount
            items.append(item)
        data = await self.request("DELETE", f"{ORDERS_V2}/batched", json={"orders": items})
        return [BatchCancelItem.model_validate(x) for x in data.get("orders") or []]


__all__ = [
    "IDEMPOTENT",
    "ORDERS_V2",
    "UNSAFE",
    "KalshiHTTPError",
    "KalshiRest",
    "LegacyOrderWrite",
    "RetryPolicy",
    "is_legacy_order_write",
    "order_body",
    "parse_retry_after",
]
