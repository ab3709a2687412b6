"""How the pages show numbers, money, prices and times: the Jinja2 filters of the templates."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

ET = ZoneInfo("America/New_York")  # every time a trader reads is on New York's clock


def _when(v: Any) -> dt.datetime:
    return dt.datetime.fromisoformat(v) if isinstance(v, str) else v


def money_cents(v: Any) -> str:
    if v is None:
        return "—"
    sign = "-" if v < 0 else ""
    return f"{sign}${abs(v) / 100:,.2f}"


def money(v: Any) -> str:
    """Dollars (a float from NUMERIC) with the sign first."""
    if v is None:
        return "—"
    sign = "-" if v < 0 else ""
    return f"{sign}${abs(v):,.2f}"


def price(v: Any) -> str:
    if v is None:
        return "—"
    return f"{v * 100:.1f}¢" if round(v * 100, 1) != round(v * 100) else f"{round(v * 100)}¢"


def ago(v: Any) -> str:
    if v is None:
        return "never"
    sec = (dt.datetime.now(dt.UTC) - _when(v)).total_seconds()
    return duration(sec) + " ago"


def duration(sec: Any) -> str:
    if sec is None:
        return "—"
    sec = float(sec)
    if sec < 0:
        return "0s"
    if sec < 120:
        return f"{sec:.0f}s"
    if sec < 7200:
        return f"{sec / 60:.0f}m"
    if sec < 172800:
        return f"{sec / 3600:.1f}h"
    return f"{sec / 86400:.1f}d"


def num(v: Any, digits: int = 2) -> str:
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def ts(v: Any) -> str:
    """A time the trader reads: New York's clock, as every other time on the pages."""
    if v is None:
        return "—"
    return _when(v).astimezone(ET).strftime("%Y-%m-%d %H:%M:%S")


def epoch(v: Any) -> float | None:
    if v is None:
        return None
    return _when(v).timestamp()


def close_words(close_time: Any, now: dt.datetime | None = None) -> str:
    """"7 PM ET", "7:15 PM ET", with " Thu Nov 27" when that is not today in New York."""
    if close_time is None:
        return ""
    et = _when(close_time).astimezone(ET)
    today = (now or dt.datetime.now(dt.UTC)).astimezone(ET).date()
    hour = et.strftime("%I").lstrip("0")
    words = f"{hour}{et.strftime(':%M') if et.minute else ''} {et.strftime('%p')} ET"
    if et.date() != today:
        words += f" {et.strftime('%a %b')} {et.day}"
    return words


def et_time(v: Any) -> str:
    """A close time (seconds since the epoch) in New York's words: "2 PM ET"."""
    return "" if v is None else close_words(dt.datetime.fromtimestamp(float(v), dt.UTC))


FILTERS = (money_cents, money, price, ago, duration, num, ts, epoch, et_time)
