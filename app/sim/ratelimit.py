"""Token buckets per API key, reads and writes apart, sized by Kalshi's usage tiers.

Kalshi charges each request a token cost (default 10; cheaper or per-item costs are listed
by GET /account/endpoint_costs) against a read or a write bucket that refills at the tier's
rate. The Basic tier's 200 read / 100 write tokens per second are 20 reads and 10 writes of
default cost; write buckets above Basic hold two seconds of budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable

DEFAULT_COST = 10


class RateLimited(Exception):
    """A request's tokens are not in the bucket: answered 429."""

# tier -> (read tokens per second, write tokens per second); 0 = unlimited
TIERS: dict[str, tuple[int, int]] = {
    "basic": (200, 100),
    "advanced": (300, 300),
    "premier": (1000, 1000),
    "prime": (4000, 4000),
    "unlimited": (0, 0),
}


class Bucket:
    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def take(self, cost: float, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens + 1e-9 < cost:
            return False
        self.tokens -= cost
        return True


class RateLimiter:
    def __init__(self, tier: str = "basic",
                 clock: Callable[[], float] = time.monotonic) -> None:
        if tier not in TIERS:
            raise ValueError(f"unknown rate-limit tier {tier!r}; one of {', '.join(TIERS)}")
        self.tier = tier
        self.read_rate, self.write_rate = TIERS[tier]
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self.clock = clock  # tests may freeze it to make refills deterministic

    def capacity(self, bucket: str) -> int:
        if bucket == "read":
            return self.read_rate
        return self.write_rate * (1 if self.tier == "basic" else 2)

    def limits(self) -> dict:
        """The GetAccountApiLimitsResponse body."""
        return {"usage_tier": self.tier,
                "read": {"refill_rate": self.read_rate, "bucket_capacity": self.capacity("read")},
                "write": {"refill_rate": self.write_rate,
                          "bucket_capacity": self.capacity("write")},
                "grants": []}

    def allow(self, who: str, bucket: str, cost: float = DEFAULT_COST) -> bool:
        rate = self.read_rate if bucket == "read" else self.write_rate
        if rate <= 0:
            return True
        b = self._buckets.get((who, bucket))
        if b is None:
            b = self._buckets[(who, bucket)] = Bucket(rate, self.capacity(bucket), self.clock())
        return b.take(cost, self.clock())
