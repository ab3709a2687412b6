"""A local order book kept from orderbook_snapshot + orderbook_delta messages.

Kalshi books hold bids only, per side: a YES bid at p is a NO ask at 1 - p.
Levels are exact: price and size are Decimal, parsed from the wire's fixed-point
strings. The book is either ``valid`` (built from a snapshot and every delta
since) or not (no snapshot yet, a sequence gap, or a delta that would make a
level negative); a consumer must not trade on an invalid book.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from app.kalshi.models import PriceLevel, to_decimal

ONE = Decimal(1)


class BookInconsistent(ValueError):
    """A delta that cannot apply to the current book (the book is out of sync)."""


def _levels(raw: Iterable[Any] | None) -> dict[Decimal, Decimal]:
    out: dict[Decimal, Decimal] = {}
    for price, size in raw or ():
        qty = to_decimal(size)
        if qty > 0:
            out[to_decimal(price)] = qty
    return out


class OrderBook:
    def __init__(self, ticker: str) -> None:
        self.ticker = ticker
        self.yes: dict[Decimal, Decimal] = {}
        self.no: dict[Decimal, Decimal] = {}
        self.valid = False
        self.updates = 0

    def apply_snapshot(self, msg: dict[str, Any]) -> None:
        """Replace the book with an orderbook_snapshot ``msg`` body."""
        self.yes = _levels(msg.get("yes_dollars_fp"))
        self.no = _levels(msg.get("no_dollars_fp"))
        self.valid = True
        self.updates += 1

    def apply_delta(self, msg: dict[str, Any]) -> None:
        """Apply an orderbook_delta ``msg`` body; raises BookInconsistent and invalidates."""
        side = msg.get("side")
        if side not in ("yes", "no"):
            self.valid = False
            raise BookInconsistent(f"{self.ticker}: delta with side {side!r}")
        levels = self.yes if side == "yes" else self.no
        price = to_decimal(msg["price_dollars"])
        size = levels.get(price, Decimal(0)) + to_decimal(msg["delta_fp"])
        if size < 0:
            self.valid = False
            raise BookInconsistent(
                f"{self.ticker}: {side} {price} would go to {size} after delta {msg['delta_fp']}"
            )
        if size == 0:
            levels.pop(price, None)
        else:
            levels[price] = size
        self.updates += 1

    def invalidate(self) -> None:
        self.valid = False

    # ------------------------------------------------------------------ reading

    def levels(self, side: str) -> list[PriceLevel]:
        """Bids on ``side``, best (highest) price first."""
        src = self.yes if side == "yes" else self.no
        return [PriceLevel(p, src[p]) for p in sorted(src, reverse=True)]

    def best_bid(self, side: str) -> PriceLevel | None:
        src = self.yes if side == "yes" else self.no
        if not src:
            return None
        p = max(src)
        return PriceLevel(p, src[p])

    def best_ask(self, side: str) -> PriceLevel | None:
        """Best ask on ``side``: implied by the best bid on the other side."""
        other = self.best_bid("no" if side == "yes" else "yes")
        return None if other is None else PriceLevel(ONE - other.price, other.count)

    def as_maps(self) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        return dict(self.yes), dict(self.no)

    def __repr__(self) -> str:
        state = "valid" if self.valid else "INVALID"
        return f"OrderBook({self.ticker}, {state}, yes={len(self.yes)}, no={len(self.no)})"
