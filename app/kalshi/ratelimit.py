"""Client-side pacing against Kalshi's token buckets, so a 429 is rare, not the control loop.

Kalshi meters every key with two token buckets (``GET /account/limits``): reads
and writes, each refilling ``refill_rate`` tokens/s up to ``bucket_capacity``.
A request costs its endpoint's tokens (``GET /account/endpoint_costs`` lists the
ones that differ from ``default_cost``, 10 today); the batched order endpoints
are billed per item (create 10 per order, cancel 2 per order).

:class:`RateBudget` keeps a local copy of both buckets and makes each request
wait (FIFO) until its tokens are there. The copy is run a little below the
published numbers (``rate_safety``, ``burst_safety``) because the exchange's
clock and the network's jitter are not ours. A 429 that still happens is
retried by the REST client as before.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from app.kalshi.models import AccountLimits, BucketLimit, EndpointCost, EndpointCosts

REST_PREFIX = "/trade-api/v2"
DEFAULT_COST = 10
# Billed per item in the request's "orders" list (openapi.yaml v3.31.0 x-mint notes).
PER_ITEM_PATHS = frozenset({"/portfolio/events/orders/batched"})
# Costs the spec documents, used until /account/endpoint_costs has been read.
DOCUMENTED_COSTS: tuple[tuple[str, str, int], ...] = (
    ("DELETE", "/portfolio/events/orders/{order_id}", 2),
    ("DELETE", "/portfolio/events/orders/batched", 2),
    ("DELETE", "/portfolio/events/orders", 2),
)


class TokenBucket:
    """An async token bucket; :meth:`acquire` waits its turn (first come, first served)."""

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError(f"a token bucket needs rate and capacity > 0 ({rate}, {capacity})")
        self.rate = float(rate)
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self.waited = 0.0  # total seconds spent waiting

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def drain(self) -> None:
        self._refill()
        self.tokens = min(self.tokens, 0.0)

    async def acquire(self, cost: float) -> float:
        """Take ``cost`` tokens, waiting until they are there; returns the seconds waited.

        A cost above the capacity could never be covered: it waits for a full
        bucket and takes all of it.
        """
        cost = min(float(cost), self.capacity)
        waited = 0.0
        async with self._lock:
            while True:
                self._refill()
                if self.tokens + 1e-9 >= cost:
                    self.tokens -= cost
                    self.waited += waited
                    return waited
                delay = (cost - self.tokens) / self.rate
                waited += delay
                await self._sleep(delay)


def _template(path: str) -> re.Pattern[str]:
    if path.startswith(REST_PREFIX + "/"):
        path = path[len(REST_PREFIX) :]
    parts = re.split(r"(\{[^}/]+\})", path.rstrip("/"))
    rx = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(rx + "/?")


@dataclass
class RateBudget:
    """Both buckets and the cost table; :meth:`spend` paces one request."""

    read: TokenBucket | None  # None: the exchange reported no limit (refill_rate 0)
    write: TokenBucket | None
    default_cost: int = DEFAULT_COST
    costs: list[tuple[str, re.Pattern[str], int]] = field(default_factory=list)
    usage_tier: str = ""
    _cache: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        limits: AccountLimits,
        costs: EndpointCosts | None = None,
        *,
        rate_safety: float = 0.95,
        burst_safety: float = 0.9,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> RateBudget:
        def bucket(b: BucketLimit) -> TokenBucket | None:
            if b.refill_rate <= 0 or b.bucket_capacity <= 0:
                return None
            return TokenBucket(
                b.refill_rate * rate_safety,
                max(1.0, b.bucket_capacity * burst_safety),
                clock=clock,
                sleep=sleep,
            )

        table: list[EndpointCost] = [
            EndpointCost(method=m, path=p, cost=c) for m, p, c in DOCUMENTED_COSTS
        ]
        if costs is not None:
            table = list(costs.endpoint_costs) + table  # the exchange's own figures win
        # a literal segment beats a {param} ("/orders/batched" is not "/orders/{order_id}")
        table.sort(key=lambda c: c.path.count("{"))
        return cls(
            read=bucket(limits.read),
            write=bucket(limits.write),
            default_cost=costs.default_cost if costs is not None else DEFAULT_COST,
            costs=[(c.method.upper(), _template(c.path), c.cost) for c in table],
            usage_tier=limits.usage_tier,
        )

    def unit_cost(self, method: str, path: str) -> int:
        key = (method, path)
        if key not in self._cache:
            cost = next(
                (c for m, rx, c in self.costs if m == method and rx.fullmatch(path)),
                self.default_cost,
            )
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = cost
        return self._cache[key]

    def cost(self, method: str, path: str, items: int = 1) -> int:
        """Tokens for one request (``path`` relative to /trade-api/v2, no query)."""
        unit = self.unit_cost(method.upper(), path)
        return unit * max(1, items) if path.rstrip("/") in PER_ITEM_PATHS else unit

    def bucket(self, method: str) -> TokenBucket | None:
        return self.read if method.upper() in ("GET", "HEAD") else self.write

    def refused(self, method: str) -> None:
        """A 429 arrived: the exchange's bucket is empty, so empty ours to match."""
        bucket = self.bucket(method)
        if bucket is not None:
            bucket.drain()

    async def spend(self, method: str, path: str, items: int = 1) -> float:
        """Wait until the request may go; returns the seconds waited."""
        bucket = self.bucket(method)
        if bucket is None:
            return 0.0
        return await bucket.acquire(self.cost(method, path, items))


def items_in(body: object) -> int:
    """How many orders a batched request body carries."""
    if isinstance(body, dict):
        orders = body.get("orders")
        if isinstance(orders, Iterable) and not isinstance(orders, str | bytes):
            return len(list(orders))
    return 1
