"""Wire formats of the Kalshi Trade API v2: fixed-point dollar strings, fp counts, times.

Money and prices are integers in $0.0001 inside the simulator (money.py). Prices travel
as dollar strings with four decimals ("0.5600"); fill costs and fees on the user_orders
channel carry six. Contract counts travel as fp strings with two decimals ("10.00").
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from decimal import Decimal

import orjson

_UNIT = Decimal("0.0001")


class WireError(ValueError):
    """A request field that cannot be parsed; becomes a 400 with the given code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def dollars(units: int, places: int = 4) -> str:
    """$0.0001 units as a fixed-point dollar string: 5600 -> "0.5600" (places >= 4)."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10_000)
    return f"{sign}{whole}.{frac:04d}{'0' * (places - 4)}"


def fp(count: int) -> str:
    """Whole contracts as an fp count string: 10 -> "10.00"."""
    return f"{count}.00"


# The last second RFC 3339 can write (9999-12-31T23:59:59Z): the bound of any request
# time and the clamp of every rendered one, so no stored value can make a view raise.
MAX_UNIX_S = 253_402_300_799
MAX_UNIX_MS = MAX_UNIX_S * 1000 + 999


def iso(ts_ms: int) -> str:
    """Unix milliseconds as an RFC 3339 UTC timestamp (clamped to years 1970-9999)."""
    ts_ms = min(max(ts_ms, 0), MAX_UNIX_MS)
    dt = datetime.fromtimestamp(ts_ms // 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


@functools.lru_cache(maxsize=4096)  # every ticker message renders its second: mostly the same
def iso_s(ts_s: int) -> str:
    ts_s = min(max(ts_s, 0), MAX_UNIX_S)
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


def price_units(d: Decimal, name: str) -> int:
    """A dollar price strictly between 0 and 1 in $0.0001; the market checks its tick."""
    if not Decimal(0) < d < Decimal(1):
        raise WireError("invalid_parameters", f"{name} must be above 0 and below 1")
    if d != d.quantize(_UNIT):
        raise WireError("invalid_parameters",
                        f"{name} {d} has more than 4 decimals (the finest tick is 0.001)")
    return int(d * 10_000)
