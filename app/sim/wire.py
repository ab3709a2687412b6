"""Wire formats of the Kalshi Trade API v2: fixed-point dollar strings, fp counts, times.

Money is integer cents inside the simulator. Prices travel as dollar strings with four
decimals ("0.5600"); fill costs and fees on the user_orders channel carry six. Contract
counts travel as fp strings with two decimals ("10.00").
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import orjson

_CENT = Decimal("0.01")


class WireError(ValueError):
    """A request field that cannot be parsed; becomes a 400 with the given code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def dollars(cents: int, places: int = 4) -> str:
    """Integer cents as a fixed-point dollar string: 56 -> "0.5600"."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}{'0' * (places - 2)}"


def fp(count: int) -> str:
    """Whole contracts as an fp count string: 10 -> "10.00"."""
    return f"{count}.00"


def iso(ts_ms: int) -> str:
    """Unix milliseconds as an RFC 3339 UTC timestamp."""
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def iso_s(ts_s: int) -> str:
    return datetime.fromtimestamp(ts_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dumps(obj: object) -> bytes:
    return orjson.dumps(obj)


def parse_price(cents_value: object, dollars_value: object, name: str) -> int | None:
    """A price given as integer cents (1..99) or a dollar string; None when neither is set.

    Both set must agree. Only whole-cent prices exist on the simulator's markets
    (price_level_structure linear_cent).
    """
    from_cents = None
    if cents_value is not None:
        if isinstance(cents_value, bool) or not isinstance(cents_value, int):
            raise WireError("invalid_parameters", f"{name} must be an integer number of cents")
        from_cents = cents_value
    from_dollars = None
    if dollars_value is not None:
        if not isinstance(dollars_value, str):
            raise WireError("invalid_parameters", f"{name}_dollars must be a string")
        try:
            d = Decimal(dollars_value)
        except InvalidOperation:
            raise WireError("invalid_parameters", f"{name}_dollars is not a number") from None
        if not d.is_finite() or d != d.quantize(_CENT):
            raise WireError(
                "invalid_parameters", f"{name}_dollars must be a multiple of the tick 0.01"
            )
        from_dollars = int(d * 100)
    if from_cents is not None and from_dollars is not None and from_cents != from_dollars:
        raise WireError("invalid_parameters", f"{name} and {name}_dollars do not match")
    value = from_cents if from_cents is not None else from_dollars
    if value is not None and not 1 <= value <= 99:
        raise WireError("invalid_parameters", f"{name} must be between 0.01 and 0.99")
    return value


def parse_count(int_value: object, fp_value: object, name: str, minimum: int = 1) -> int | None:
    """A contract count given as an integer or an fp string ("10", "10.00"); whole only."""
    from_int = None
    if int_value is not None:
        if isinstance(int_value, bool) or not isinstance(int_value, int):
            raise WireError("invalid_parameters", f"{name} must be an integer")
        from_int = int_value
    from_fp = None
    if fp_value is not None:
        if not isinstance(fp_value, str):
            raise WireError("invalid_parameters", f"{name}_fp must be a string")
        try:
            d = Decimal(fp_value)
        except InvalidOperation:
            raise WireError("invalid_parameters", f"{name}_fp is not a number") from None
        if not d.is_finite() or d != d.to_integral_value():
            raise WireError(
                "invalid_parameters",
                f"{name}_fp: fractional contracts are not enabled on this market",
            )
        from_fp = int(d)
    if from_int is not None and from_fp is not None and from_int != from_fp:
        raise WireError("invalid_parameters", f"{name} and {name}_fp do not match")
    value = from_int if from_int is not None else from_fp
    if value is not None and value < minimum:
        raise WireError("invalid_parameters", f"{name} must be at least {minimum}")
    return value
