"""Markets in a trader's words: "BTC above $91,249.99 at 2 PM ET", from the market's own fields
as rec-market-feed stores them (``markets``: series, ``strike_type``, ``floor_strike``,
``cap_strike``, ``close_time``; Kalshi's fields of the same names). The strike is the one
Kalshi's rules name ("above $91,249.99", "between $90,750 and $91,249.99"); the close time
is in US Eastern time (America/New_York, as Kalshi's crypto hourlies are named), with the day
when it is not today's.

:func:`name` names one market row, :func:`event_name` its event (the Markets page's groups),
:func:`annotate` adds ``name`` and ``close_ts`` to rows that carry only a ticker.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

from app.web import data
from app.web.formats import close_words, epoch

ASSETS = (("KXBTC", "BTC"), ("KXETH", "ETH"), ("KXSOL", "SOL"), ("KXXRP", "XRP"),
          ("KXDOGE", "DOGE"))
STRIKE_IN_TICKER = re.compile(r"-([TB])(\d+(?:\.\d+)?)$")


def asset(series: str | None, ticker: str = "") -> str:
    """"BTC", "ETH", ... from the series (or the ticker), else the series itself."""
    s = (series or ticker.split("-")[0]).upper()
    return next((a for prefix, a in ASSETS if s.startswith(prefix)), s)


def dollars(v: Any) -> str:
    """$91,249.99; whole dollars without cents ($91,250)."""
    d = Decimal(str(v))
    return f"${d:,.0f}" if d == d.to_integral_value() else f"${d:,.2f}"


def kind(m: dict[str, Any]) -> str:
    """"greater", "less" or "between" (the ticker's T/B when the feed has no strike_type)."""
    if m.get("strike_type"):
        return str(m["strike_type"])
    found = STRIKE_IN_TICKER.search(m.get("ticker") or "")
    return {"T": "greater", "B": "between"}.get(found.group(1), "") if found else ""


def strike_words(m: dict[str, Any]) -> str:
    """"above $91,249.99", "below $X", "between $X and $Y" (empty when unknown)."""
    floor, cap, k = m.get("floor_strike"), m.get("cap_strike"), kind(m)
    if k == "between" and floor is not None and cap is not None:
        return f"between {dollars(floor)} and {dollars(cap)}"
    if k in ("greater", "greater_or_equal") and floor is not None:
        return f"above {dollars(floor)}"
    if k in ("less", "less_or_equal") and cap is not None:
        return f"below {dollars(cap)}"
    return ""


def name(m: dict[str, Any], now: dt.datetime | None = None) -> str:
    """"BTC above $91,249.99 at 2 PM ET"; the title (or ticker) when its fields are unknown."""
    strike = strike_words(m)
    if not strike:
        return m.get("title") or m.get("ticker") or ""
    when = close_words(m.get("close_time"), now)
    return f"{asset(m.get('series_ticker'), m.get('ticker') or '')} {strike}" + (
        f" at {when}" if when else "")


def event_name(m: dict[str, Any], now: dt.datetime | None = None) -> str:
    """"BTC at 2 PM ET: above a strike" or "...: in a range" (one event's markets)."""
    what = {"between": "in a range"}.get(kind(m), "above a strike")
    when = close_words(m.get("close_time"), now)
    return f"{asset(m.get('series_ticker'), m.get('ticker') or '')}" + (
        f" at {when}" if when else "") + f": {what}"


async def annotate(pool: Any, rows: list[dict[str, Any]], key: str = "ticker") -> None:
    """Add ``name`` (the market in words; the ticker when the feed has not stored it),
    ``event_name`` and ``close_ts`` (seconds since the epoch, for the countdown) to each
    row."""
    tickers = sorted({r[key] for r in rows if r.get(key)})
    if not tickers:
        return
    found = await data.rows(pool, """
        SELECT ticker, series_ticker, title, strike_type, floor_strike, cap_strike, close_time
        FROM markets WHERE ticker = ANY(%s)""", (tickers,))
    by = {m["ticker"]: m for m in found}
    for r in rows:
        m = by.get(r.get(key))
        r["name"] = name(m) if m else r.get(key)
        r["event_name"] = event_name(m) if m else None
        r["close_ts"] = epoch(m["close_time"]) if m else None
