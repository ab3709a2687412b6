"""One index's per-second rows: the 1-minute average, deltas and momentum.

A row exists for every second the index was published; a second without a value has no row.
A delta over N minutes compares with the row N minutes earlier, or the latest row at most
:data:`DELTA_TOLERANCE_SEC` before that second; with neither it is unknown (None), never
guessed. Momentum needs all six deltas.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

DELTA_MINUTES = (1, 2, 3, 4, 15, 30)
MOMENTUM_WEIGHTS = {1: 0.3, 2: 0.25, 3: 0.2, 4: 0.15, 15: 0.05, 30: 0.05}
DELTA_TOLERANCE_SEC = 5
KEEP_SEC = 30 * 60 + DELTA_TOLERANCE_SEC + 60


@dataclass(frozen=True)
class Row:
    ts: int  # unix seconds
    price: float
    avg_1m: float
    deltas: dict[int, float | None]  # minutes -> percent
    momentum: float | None


def momentum(deltas: dict[int, float | None]) -> float | None:
    """0.3 d1m + 0.25 d2m + 0.2 d3m + 0.15 d4m + 0.05 d15m + 0.05 d30m (percent)."""
    total = 0.0
    for minutes, weight in MOMENTUM_WEIGHTS.items():
        d = deltas.get(minutes)
        if d is None:
            return None
        total += weight * d
    return total


def pct(now: float, then: float | None) -> float | None:
    return None if then is None or then <= 0 else (now - then) / then * 100.0


class IndexWindow:
    """The last ~32 minutes of one index, by second."""

    def __init__(self) -> None:
        self.prices: dict[int, float] = {}
        self.order: deque[int] = deque()

    @property
    def last_ts(self) -> int | None:
        return self.order[-1] if self.order else None

    def load(self, rows: list[tuple[int, float]]) -> None:
        for ts, price in sorted(rows):
            self._put(ts, price)

    def _put(self, ts: int, price: float) -> None:
        if ts not in self.prices:
            self.order.append(ts)
        self.prices[ts] = price
        while self.order and self.order[0] < ts - KEEP_SEC:
            self.prices.pop(self.order.popleft(), None)

    def at_or_before(self, ts: int) -> float | None:
        for t in range(ts, ts - DELTA_TOLERANCE_SEC - 1, -1):
            p = self.prices.get(t)
            if p is not None:
                return p
        return None

    def add(self, ts: int, price: float) -> Row:
        """Store the value of second ``ts`` (a later value of the same second replaces it)."""
        self._put(ts, price)
        window = [self.prices[t] for t in range(ts - 59, ts + 1) if t in self.prices]
        deltas = {m: pct(price, self.at_or_before(ts - 60 * m)) for m in DELTA_MINUTES}
        return Row(ts, price, sum(window) / len(window), deltas, momentum(deltas))
