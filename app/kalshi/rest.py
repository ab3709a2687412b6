"""Async REST client for Kalshi Trade API v2: :class:`KalshiRest`, composed by area.

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

The client is split by area over one base (:mod:`app.kalshi.http`): ``base`` (signed
request, retries, errors, pacing, pagination), ``retry``, ``presign``, ``market``,
``portfolio``, ``orders``, ``order_groups``, ``account``; the keep-alive pool it sends on is
its own module. Every name callers import stays importable from here.
"""

from __future__ import annotations

from app.kalshi.errors import KalshiHTTPError
from app.kalshi.http.account import Account
from app.kalshi.http.base import (
    LEGACY_ORDERS,
    ORDERS_V2,
    LegacyOrderWrite,
    is_legacy_order_write,
)
from app.kalshi.http.order_groups import OrderGroups
from app.kalshi.http.orders import (
    SELF_TRADE_PREVENTION,
    TIME_IN_FORCE,
    CancelRef,
    Orders,
    order_body,
)
from app.kalshi.http.portfolio import Portfolio
from app.kalshi.http.presign import PRESIGN_MAX_AGE_MS
from app.kalshi.http.retry import IDEMPOTENT, UNSAFE, RetryPolicy, parse_retry_after


class KalshiRest(Orders, OrderGroups, Portfolio, Account):
    """The one Kalshi REST client: every area over one signed keep-alive pool."""

    async def __aenter__(self) -> KalshiRest:
        return self


__all__ = [
    "IDEMPOTENT",
    "LEGACY_ORDERS",
    "ORDERS_V2",
    "PRESIGN_MAX_AGE_MS",
    "SELF_TRADE_PREVENTION",
    "TIME_IN_FORCE",
    "UNSAFE",
    "CancelRef",
    "KalshiHTTPError",
    "KalshiRest",
    "LegacyOrderWrite",
    "RetryPolicy",
    "is_legacy_order_write",
    "order_body",
    "parse_retry_after",
]
