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
  looking the order up). Amend, decrease and batch create are never repeated
  after an unknown outcome.

Delays are exponential with full jitter; a Retry-After header is honoured.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from app.kalshi import signing
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
from app.kalshi.models import (
    AmendResult,
    Balance,
    BatchCancelItem,
    BatchCreateItem,
    CancelResult,
    Event,
    EventWithMarkets,
    ExchangeStatus,
    Fill,
    Market,
    MarketPosition,
    Order,
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


def order_body(
    ticker: str,
    side: str,
    action: str,
    count: int | Decimal | str,
    *,
    yes_price: Decimal | str | None = None,
    no_price: Decimal | str | None = None,
    client_order_id: str | None = None,
    time_in_force: str | None = None,
    post_only: bool | None = None,
    reduce_only: bool | None = None,
    expiration_ts: int | None = None,
    buy_max_cost: int | None = None,
    self_trade_prevention_type: str | None = None,
    order_group_id: str | None = None,
    cancel_order_on_pause: bool | None = None,
    subaccount: int | None = None,
) -> dict[str, Any]:
    """A CreateOrderRequest body. Prices are dollars (Decimal or fixed-point string).

    A client_order_id is generated when none is given, so every order can be
    retried safely.
    """
    if side not in ("yes", "no"):
        raise ValueError(f"side must be 'yes' or 'no', not {side!r}")
    if action not in ("buy", "sell"):
        raise ValueError(f"action must be 'buy' or 'sell', not {action!r}")
    if (yes_price is None) == (no_price is None) and buy_max_cost is None:
        raise ValueError("give exactly one of yes_price or no_price")
    qty = to_decimal(count)
    if qty <= 0:
        raise ValueError(f"count must be positive, not {count!r}")
    body: dict[str, Any] = {
        "ticker": ticker,
        "side": side,
        "action": action,
        "client_order_id": client_order_id or str(uuid.uuid4()),
        "count_fp": fmt_count(qty),
    }
    if qty == qty.to_integral_value():
        body["count"] = int(qty)
    if yes_price is not None:
        body["yes_price_dollars"] = fmt_dollars(yes_price)
    if no_price is not None:
        body["no_price_dollars"] = fmt_dollars(no_price)
    optional = {
        "time_in_force": time_in_force,
        "post_only": post_only,
        "reduce_only": reduce_only,
        "expiration_ts": expiration_ts,
        "buy_max_cost": buy_max_cost,
        "self_trade_prevention_type": self_trade_prevention_type,
        "order_group_id": order_group_id,
        "cancel_order_on_pause": cancel_order_on_pause,
        "subaccount": subaccount,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


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
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.stats = {"requests": 0, "retries": 0}

    @classmethod
    def from_endpoints(cls, endpoints: Endpoints, signer: signing.Signer | None, **kw: Any):
        return cls(endpoints.rest_base, signer, **kw)

    async def aclose(self) -> None:
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
        url = self.base_url + path
        headers = (
            self.signer.headers(method, self._prefix + path) if self.signer is not None else {}
        )
        limit = call_timeout if call_timeout is not None else self.timeout
        self.stats["requests"] += 1
        try:
            async with asyncio.timeout(limit):
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
        return self._handle(method, path, resp)

    def _handle(self, method: str, path: str, resp: httpx.Response) -> Any:
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
                text, retry_after=parse_retry_after(resp.headers.get("Retry-After")), **kwargs
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
        return EventWithMarkets.model_validate(data)

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
        return self._page(data, "markets", Market)

    def iter_markets(self, **filters: Any) -> AsyncIterator[Market]:
        return self.paginate(lambda c: self.get_markets(cursor=c, **filters))

    async def get_market(self, ticker: str) -> Market:
        data = await self._get(f"/markets/{quote(ticker, safe='')}")
        return Market.model_validate(data["market"])

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

    # ------------------------------------------------------------------ orders

    async def create_order(
        self, ticker: str, side: str, action: str, count: int | Decimal | str, **kw: Any
    ) -> Order:
        """Place an order (see :func:`order_body` for the keywords).

        Retried after an unknown outcome with the same client_order_id; if the
        exchange then answers 409 (it already has that id), the existing order
        is looked up and returned, so one call never makes two orders.
        """
        body = order_body(ticker, side, action, count, **kw)
        return await self.submit_order(body)

    async def submit_order(self, body: dict[str, Any]) -> Order:
        """POST a prepared CreateOrderRequest body (must carry client_order_id)."""
        coid = body.get("client_order_id")
        if not coid:
            raise ValueError("an order needs a client_order_id to be retried safely")
        attempt = 0
        ambiguous = False
        while True:
            attempt += 1
            try:
                data = await self._once("POST", "/portfolio/orders", None, body, None)
                return Order.model_validate(data["order"])
            except KalshiConflict:
                if ambiguous:
                    found = await self.find_order_by_client_id(body["ticker"], coid)
                    if found is not None:
                        log.info("order %s already accepted by an earlier attempt", coid)
                        return found
                raise
            except KalshiError as exc:
                delay = self._retry_delay(exc, IDEMPOTENT, attempt)
                if delay is None:
                    raise
                ambiguous = ambiguous or _outcome_unknown(exc)
                self.stats["retries"] += 1
                log.warning(
                    "kalshi create order %s: %s; retry %d with the same client_order_id",
                    coid,
                    exc,
                    attempt,
                )
                await self.sleep(delay)

    async def find_order_by_client_id(self, ticker: str, client_order_id: str) -> Order | None:
        async for order in self.iter_orders(ticker=ticker, limit=200):
            if order.client_order_id == client_order_id:
                return order
        return None

    async def get_order(self, order_id: str) -> Order:
        data = await self._get(f"/portfolio/orders/{quote(order_id, safe='')}")
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
    ) -> Page[Order]:
        data = await self._get(
            "/portfolio/orders",
            ticker=ticker,
            event_ticker=event_ticker,
            status=status,
            min_ts=min_ts,
            max_ts=max_ts,
            limit=limit,
            cursor=cursor,
        )
        return self._page(data, "orders", Order)

    def iter_orders(self, **filters: Any) -> AsyncIterator[Order]:
        return self.paginate(lambda c: self.get_orders(cursor=c, **filters))

    async def cancel_order(self, order_id: str) -> CancelResult:
        """Cancel a resting order; retried like a read, since cancelling twice is harmless.

        When an earlier attempt may have cancelled the order and the retry then
        answers 404, the order is fetched and returned if it is canceled
        (``reduced_by_fp`` is then unknown: None).
        """
        path = f"/portfolio/orders/{quote(order_id, safe='')}"
        try:
            data = await self.request("DELETE", path)
        except KalshiNotFound as exc:
            if not exc.after_unknown_outcome:
                raise
            order = await self.get_order(order_id)
            if order.status != "canceled":
                raise
            return CancelResult(order=order, reduced_by_fp=None)
        return CancelResult.model_validate(data)

    async def amend_order(
        self,
        order_id: str,
        *,
        ticker: str,
        side: str,
        action: str,
        yes_price: Decimal | str | None = None,
        no_price: Decimal | str | None = None,
        count: int | Decimal | str | None = None,
        client_order_id: str | None = None,
        updated_client_order_id: str | None = None,
    ) -> AmendResult:
        """Change price and/or size of a resting order (never retried after an unknown outcome)."""
        body: dict[str, Any] = {"ticker": ticker, "side": side, "action": action}
        if yes_price is not None and no_price is not None:
            raise ValueError("give at most one of yes_price or no_price")
        if yes_price is not None:
            body["yes_price_dollars"] = fmt_dollars(yes_price)
        if no_price is not None:
            body["no_price_dollars"] = fmt_dollars(no_price)
        if count is not None:
            qty = to_decimal(count)
            body["count_fp"] = fmt_count(qty)
            if qty == qty.to_integral_value():
                body["count"] = int(qty)
        if client_order_id:
            body["client_order_id"] = client_order_id
        if updated_client_order_id:
            body["updated_client_order_id"] = updated_client_order_id
        data = await self.request(
            "POST",
            f"/portfolio/orders/{quote(order_id, safe='')}/amend",
            json=body,
            safety=UNSAFE,
        )
        return AmendResult.model_validate(data)

    async def decrease_order(
        self,
        order_id: str,
        *,
        reduce_by: int | Decimal | str | None = None,
        reduce_to: int | Decimal | str | None = None,
    ) -> Order:
        if (reduce_by is None) == (reduce_to is None):
            raise ValueError("give exactly one of reduce_by or reduce_to")
        body: dict[str, Any] = {}
        for name, value in (("reduce_by", reduce_by), ("reduce_to", reduce_to)):
            if value is not None:
                qty = to_decimal(value)
                body[f"{name}_fp"] = fmt_count(qty)
                if qty == qty.to_integral_value():
                    body[name] = int(qty)
        data = await self.request(
            "POST",
            f"/portfolio/orders/{quote(order_id, safe='')}/decrease",
            json=body,
            safety=UNSAFE,
        )
        return Order.model_validate(data["order"])

    async def batch_create_orders(self, orders: list[dict[str, Any]]) -> list[BatchCreateItem]:
        """POST /portfolio/orders/batched with bodies from :func:`order_body`."""
        data = await self.request(
            "POST", "/portfolio/orders/batched", json={"orders": orders}, safety=UNSAFE
        )
        return [BatchCreateItem.model_validate(x) for x in data.get("orders") or []]

    async def batch_cancel_orders(self, order_ids: Iterable[str]) -> list[BatchCancelItem]:
        body = {"orders": [{"order_id": oid} for oid in order_ids]}
        data = await self.request("DELETE", "/portfolio/orders/batched", json=body)
        return [BatchCancelItem.model_validate(x) for x in data.get("orders") or []]


__all__ = [
    "IDEMPOTENT",
    "UNSAFE",
    "KalshiHTTPError",
    "KalshiRest",
    "RetryPolicy",
    "order_body",
    "parse_retry_after",
]
