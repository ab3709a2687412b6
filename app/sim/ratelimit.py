"""Token buckets per API key, reads and writes apart, sized by Kalshi's usage tiers."""

from __future__ import annotations

import time

# tier -> (reads per second, writes per second); 0 = unlimited
TIERS: dict[str, tuple[int, int]] = {
    "basic": (20, 10),
    "advanced": (30, 30),
    "premier": (100, 100),
    "prime": (400, 400),
    "unlimited": (0, 0),
}


class Bucket:
    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = rate
        self.tokens = rate
        self.stamp = time.monotonic()

    def take(self, cost: float) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens + 1e-9 < cost:
            return False
        self.tokens -= cost
        return True


class RateLimiter:
    def __init__(self, tier: str = "basic") -> None:
        if tier not in TIERS:
            raise ValueError(f"unknown rate-limit tier {tier!r}; one of {', '.join(TIERS)}")
        self.tier = tier
        self.read_limit, self.write_limit = TIERS[tier]
        self._buckets: dict[tuple[str, str], Bucket] = {}

    def allow(self, who: str, kind: str, cost: float = 1.0) -> bool:
        rate = self.read_limit if kind == "read" else self.write_limit
        if rate <= 0:
            return True
        bucket = self._buckets.get((who, kind))
        if bucket is None:
            bucket = self._buckets[(who, kind)] = Bucket(rate)
        return bucket.take(min(cost, float(rate)))
