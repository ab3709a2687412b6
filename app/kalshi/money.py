"""Exact money and counts on Kalshi's wire: fixed-point strings to Decimal and back, integer
cents, and JSON parsed with Decimal (a float never appears)."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator

CENT = Decimal("0.01")
_FOUR = Decimal("0.0001")


class MoneyFormatError(ValueError):
    """A value that is not an exact fixed-point number."""


_PARSED: dict[str, Decimal] = {}


def to_decimal(value: Any) -> Decimal:
    """Parse a fixed-point string (or int/Decimal) exactly; floats are refused."""
    if type(value) is str:
        cached = _PARSED.get(value)
        if cached is not None:
            return cached
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise MoneyFormatError(f"not a fixed-point number: {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            out = Decimal(value.strip())
        except InvalidOperation:
            raise MoneyFormatError(f"not a fixed-point number: {value!r}") from None
        if not out.is_finite():
            raise MoneyFormatError(f"not a finite number: {value!r}")
        if len(_PARSED) >= 8192:  # prices and sizes repeat: a small bounded cache
            _PARSED.clear()
        _PARSED[value] = out
        return out
    raise MoneyFormatError(f"expected a fixed-point string, got {type(value).__name__}: {value!r}")


def _optional_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return to_decimal(value)


Dollars = Annotated[Decimal, BeforeValidator(to_decimal)]
Count = Annotated[Decimal, BeforeValidator(to_decimal)]
OptDollars = Annotated[Decimal | None, BeforeValidator(_optional_decimal)]
OptCount = Annotated[Decimal | None, BeforeValidator(_optional_decimal)]


def fmt_dollars(value: Decimal | int | str, places: int = 4) -> str:
    """A dollar amount as the wire's fixed-point string (``Decimal("0.56")`` -> ``"0.5600"``).

    More precise inputs keep their digits (up to 6 decimals, the spec's maximum).
    """
    d = to_decimal(value)
    exp = -d.as_tuple().exponent if isinstance(d.as_tuple().exponent, int) else 0
    if exp > 6:
        raise MoneyFormatError(f"more than 6 decimals: {value!r}")
    return f"{d:.{max(places, exp)}f}"


def fmt_count(value: Decimal | int | str) -> str:
    """A contract count as the wire's fp string (``5`` -> ``"5.00"``); 0.01 granularity."""
    d = to_decimal(value)
    if d != d.quantize(CENT):
        raise MoneyFormatError(f"counts have at most 2 decimals: {value!r}")
    return f"{d:.2f}"


def dollars_to_cents(value: Decimal | str) -> int:
    """Exact cents from dollars; refuses sub-cent amounts rather than rounding."""
    d = to_decimal(value) * 100
    if d != d.to_integral_value():
        raise MoneyFormatError(f"{value!r} is not a whole number of cents")
    return int(d)


def cents_to_dollars(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(_FOUR, rounding=ROUND_HALF_EVEN)


_DECODER = json.JSONDecoder(parse_float=Decimal)  # one decoder: json.loads with parse_float
# would build a new one per call (a third of the parse time of a small WS frame)


def loads(text: str | bytes) -> Any:
    """JSON with every non-integer number parsed as Decimal (no float on any path)."""
    if isinstance(text, bytes | bytearray):
        text = text.decode()
    return _DECODER.decode(text)
