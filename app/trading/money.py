"""Money: prices are Decimal dollars in the trade's own side; P&L and fees are booked in cents
(whole cents for P&L, which is what the account's cash moved by)."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from typing import Any

CENT = Decimal("0.01")
TAKER_RATE = Decimal("0.07")


def fee_dollars(count: Decimal, price: Decimal, rate: Decimal = TAKER_RATE) -> Decimal:
    """Kalshi's trading fee for one order: rate x C x P x (1 - P), rounded up to $0.0001 per
    order (the exchange's own rounding of a balance to the cent is booked from the fills)."""
    raw = rate * count * price * (1 - price)
    return raw.quantize(Decimal("0.0001"), rounding=ROUND_CEILING)


def fee_cents_estimate(count: Decimal, price: Decimal) -> int:
    """The fee rounded up to a whole cent: what a risk check must assume."""
    return int((fee_dollars(count, price) / CENT).to_integral_value(rounding=ROUND_CEILING))


def cents(d: Decimal) -> int:
    return int((d / CENT).to_integral_value(rounding=ROUND_HALF_EVEN))


def dec(v: Any) -> Decimal | None:
    if v is None:
        return None
    return v if isinstance(v, Decimal) else Decimal(str(v))
