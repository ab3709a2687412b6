"""Wire formats of the Kalshi Trade API v2: fixed-point dollar strings, fp counts, times.

Money is integer cents inside the simulator. Prices travel as dollar strings with four
decimals ("0.5600"); fill costs and fees on the user_orders channel carry six. Contract
counts travel as fp strings with two decimals ("10.00").
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

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


# Request fixed-point strings, parsed strictly: plain digits with an optional fraction, no
# sign, exponent, whitespace or non-ASCII digits, and a bounded length (so a hostile value
# never reaches Decimal arithmetic with a huge exponent).
_COUNT_RE = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,2})?")  # FixedPointCount: 0-2 decimals
_DOLLARS_RE = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")  # FixedPointDollars: up to 6
MAX_FP_LEN = 24


def _fixed(value: object, name: str, rx: re.Pattern[str], what: str) -> Decimal:
    if not isinstance(value, str):
        raise WireError("invalid_parameters", f"{name} must be a string ({what})")
    if len(value) > MAX_FP_LEN or not rx.fullmatch(value):
        raise WireError("invalid_parameters", f"{name} must be a {what}, e.g. "
                        + ('"10.00"' if rx is _COUNT_RE else '"0.5600"'))
    return Decimal(value)


def parse_fp_count(value: object, name: str, minimum: int = 1) -> int | None:
    """A FixedPointCount request string ("10", "10.0", "10.00") as whole contracts."""
    if value is None:
        return None
    d = _fixed(value, name, _COUNT_RE, "fixed-point count with 0-2 decimals")
    if d != d.to_integral_value():
        raise WireError("invalid_parameters",
                        f"{name}: fractional contracts are not enabled on this market")
    n = int(d)
    if n < minimum:
        raise WireError("invalid_parameters", f"{name} must be at least {minimum}")
    return n


def parse_dollars(value: object, name: str) -> Decimal | None:
    """A FixedPointDollars request string ("0.56", "0.5600") as a Decimal."""
    if value is None:
        return None
    return _fixed(value, name, _DOLLARS_RE, "fixed-point dollar string")


def price_cents(d: Decimal, name: str) -> int:
    """A dollar price on a linear_cent market (tick $0.01) in cents, 1..99."""
    if not Decimal("0.01") <= d <= Decimal("0.99"):
        raise WireError("invalid_parameters", f"{name} must be between 0.01 and 0.99")
    if d != d.quantize(_CENT):
        raise WireError("invalid_parameters",
                        f"{name} {d} is not on the market's price tick 0.01")
    return int(d * 100)
