"""Valid order prices per market (``price_level_structure`` / ``price_ranges``).

A market lists its valid price bands: ``price_ranges`` ``[{start, end, step}]``
in dollars; a price is valid when it lies strictly between $0 and $1 and on the
grid ``start + k * step`` of a band containing it. Kalshi's structures
(docs.kalshi.com, "Fixed-Point Migration"):

* ``linear_cent`` - $0.00-$1.00 in $0.01 steps;
* ``deci_cent`` - $0.00-$1.00 in $0.001 steps;
* ``tapered_deci_cent`` - $0.001 steps below $0.10 and above $0.90, $0.01 between.

The market's own ``price_ranges`` win; the table is used only when a market
names a known structure without ranges.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.kalshi.models import Market, MarketLifecycleMsg, PriceRange, to_decimal

ZERO, ONE = Decimal(0), Decimal(1)
_C, _D = Decimal("0.01"), Decimal("0.001")

STRUCTURES: dict[str, tuple[tuple[Decimal, Decimal, Decimal], ...]] = {
    "linear_cent": ((ZERO, ONE, _C),),
    "deci_cent": ((ZERO, ONE, _D),),
    "tapered_deci_cent": (
        (ZERO, Decimal("0.10"), _D),
        (Decimal("0.10"), Decimal("0.90"), _C),
        (Decimal("0.90"), ONE, _D),
    ),
}


def _s(d: Decimal) -> str:
    """``Decimal("0.5500")`` -> ``"0.55"`` (never exponent notation)."""
    return format(d.normalize(), "f") if d else "0"


class InvalidPrice(ValueError):
    """A price that is not on the market's grid; the message names the valid tick."""


@dataclass(frozen=True)
class Band:
    start: Decimal
    end: Decimal
    step: Decimal

    def contains(self, p: Decimal) -> bool:
        return self.start <= p <= self.end

    def on_grid(self, p: Decimal) -> bool:
        return self.contains(p) and (p - self.start) % self.step == 0

    def neighbours(self, p: Decimal) -> tuple[Decimal, Decimal]:
        k = (p - self.start) // self.step
        below = self.start + k * self.step
        return below, below + self.step


@dataclass(frozen=True)
class PriceGrid:
    """The valid prices of one market."""

    structure: str
    bands: tuple[Band, ...]
    ticker: str = ""

    @classmethod
    def from_ranges(
        cls,
        structure: str,
        ranges: Iterable[PriceRange | dict[str, Any]],
        ticker: str = "",
    ) -> PriceGrid:
        """From ``price_ranges`` (models or the wire's ``{start, end, step}`` dicts)."""
        bands = []
        for raw in ranges:
            r = raw if isinstance(raw, PriceRange) else PriceRange.model_validate(raw)
            band = Band(r.start, r.end, r.step)
            if band.step <= 0 or band.end < band.start:
                raise ValueError(f"{ticker}: unusable price range {raw!r}")
            bands.append(band)
        if not bands:
            return cls.from_structure(structure, ticker)
        return cls(structure, tuple(bands), ticker)

    @classmethod
    def from_structure(cls, structure: str, ticker: str = "") -> PriceGrid:
        if structure not in STRUCTURES:
            raise InvalidPrice(
                f"{ticker or 'market'}: price level structure {structure!r} without "
                f"price_ranges; cannot tell valid prices (known: {', '.join(STRUCTURES)})"
            )
        return cls(structure, tuple(Band(*b) for b in STRUCTURES[structure]), ticker)

    @classmethod
    def from_market(cls, market: Market) -> PriceGrid:
        return cls.from_ranges(
            market.price_level_structure or "", market.price_ranges or [], market.ticker
        )

    @classmethod
    def from_lifecycle(cls, msg: MarketLifecycleMsg) -> PriceGrid | None:
        """From a ``market_lifecycle_v2`` message that carries the structure (else None)."""
        if not (msg.price_level_structure or msg.price_ranges):
            return None
        return cls.from_ranges(
            msg.price_level_structure or "", msg.price_ranges or [], msg.market_ticker
        )

    def is_valid(self, price: Decimal | str) -> bool:
        p = to_decimal(price)
        return ZERO < p < ONE and any(b.on_grid(p) for b in self.bands)

    def tick_at(self, price: Decimal | str) -> Decimal | None:
        """The finest step of a band containing ``price`` (None outside every band)."""
        p = to_decimal(price)
        steps = [b.step for b in self.bands if b.contains(p)]
        return min(steps) if steps else None

    def check(self, price: Decimal | str) -> Decimal:
        """Return ``price`` as a Decimal, or raise :class:`InvalidPrice` naming the tick."""
        p = to_decimal(price)
        if self.is_valid(p):
            return p
        who = f"{self.ticker or 'market'} ({self.structure or 'price_ranges'})"
        if not ZERO < p < ONE:
            raise InvalidPrice(f"{who}: price {_s(p)} is outside ($0, $1)")
        band = next((b for b in self.bands if b.contains(p)), None)
        if band is None:
            spans = ", ".join(f"{_s(b.start)}-{_s(b.end)}" for b in self.bands)
            raise InvalidPrice(f"{who}: price {_s(p)} is in no price band ({spans})")
        below, above = band.neighbours(p)
        near = " or ".join(_s(x) for x in (below, above) if ZERO < x < ONE)
        raise InvalidPrice(
            f"{who}: price {_s(p)} is not on the tick; between {_s(band.start)} and "
            f"{_s(band.end)} the tick is {_s(band.step)} (nearest valid: {near})"
        )
