"""When a failed call may be repeated and how long to wait first (rules: app.kalshi.rest)."""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

from app.kalshi.errors import (
    KalshiError,
    KalshiRateLimited,
    KalshiServerError,
    KalshiTransportError,
)

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

    def delay(self, exc: KalshiError, safety: str, attempt: int,
              rng: random.Random) -> float | None:
        """Seconds to wait before repeating a call that failed with ``exc`` on attempt
        ``attempt``; None when it must not be repeated."""
        if attempt >= self.max_attempts:
            return None
        if isinstance(exc, KalshiRateLimited):
            if exc.retry_after is not None:
                if exc.retry_after > self.max_retry_after:
                    return None
                return exc.retry_after + rng.uniform(0, self.base_delay)
            return self.backoff(attempt, rng)
        if isinstance(exc, KalshiTransportError) and exc.never_sent:
            return self.backoff(attempt, rng)
        if safety == IDEMPOTENT and isinstance(exc, KalshiServerError | KalshiTransportError):
            return self.backoff(attempt, rng)
        return None


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


def outcome_unknown(exc: KalshiError) -> bool:
    """True when the exchange may have acted on a request that failed with ``exc``."""
    if isinstance(exc, KalshiRateLimited):
        return False
    if isinstance(exc, KalshiTransportError):
        return not exc.never_sent
    return isinstance(exc, KalshiServerError)
