"""The trade history in trader words (the Trades page, its CSV export) and the daily P&L.

A trade's story comes from its row and its events (``trade_events``, written by
rec-trade-manager): how it opened (by hand or by auto-entry, what was bought at what
average price against which limit), why it closed (by hand, by the kill switch, at the
market's settlement, or by an exit rule with the numbers rec-trade-supervisor saw when it
fired, kept in the close's ``close_detail``), or why it never opened (its ``reason``). The
P&L is the trade's ``pnl_cents``: proceeds - cost - fees, the one definition of the pages.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from app.web import data
from app.web.formats import money, money_cents, price
from app.web.ticket import rule_words

NEVER_OPENED = ("rejected", "canceled", "expired")
CSV_COLUMNS = ("id", "market", "side", "count", "status", "strategy", "opened_at",
               "closed_at", "entry_price", "exit_price", "entry_cost", "exit_proceeds",
               "fees", "pnl_dollars", "opened", "closed")


def _count(t: dict[str, Any]) -> str:
    q = t.get("quantity")
    return "—" if q is None else f"{q:g}"


def opened_words(t: dict[str, Any]) -> str:
    who = "auto-entry" if t.get("entry_method") == "auto" else "by hand"
    if t["status"] in NEVER_OPENED and not t.get("entry_price"):
        return (f"Buy {t['side'].title()} {who}, limit {price(t.get('limit_price'))}: "
                f"never opened ({t['status']}{': ' + t['reason'] if t.get('reason') else ''})")
    return (f"Buy {_count(t)} {t['side'].title()} {who} at {price(t.get('entry_price'))} "
            f"average (limit {price(t.get('limit_price'))})")


def _close_asked(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The detail of the last ``close requested`` event (the close intent), or {}."""
    asked = [e.get("detail") or {} for e in events if e.get("kind") == "close requested"]
    return asked[-1] if asked else {}


def closed_words(t: dict[str, Any]) -> str:
    if t["status"] not in ("closed", "closing") and not t.get("close_method"):
        return "" if t["status"] in NEVER_OPENED else "still open"
    sold = (f"Sell {_count(t)} {t['side'].title()} at {price(t.get('exit_price'))} average"
            if t.get("exit_price") is not None else "not sold yet")
    method = t.get("close_method")
    if method == "auto":
        rule = t.get("close_rule") or "an exit rule"
        detail = _close_asked(t.get("events") or []).get("close_detail") or {}
        why = rule_words(rule, t["side"], detail) if detail else "its numbers not recorded"
        return f"{sold}: exit rule {rule} fired ({why})"
    if method == "kill_switch":
        return f"{sold}: the kill switch closed every open trade"
    if method == "settlement":
        return (f"settled when the market closed: paid {price(t.get('exit_price'))} per "
                f"contract")
    return f"{sold}: closed by hand"


def result_words(t: dict[str, Any]) -> str:
    if t.get("pnl_cents") is None:
        return ""
    return f"P&L {money_cents(t['pnl_cents'])} after {money(t.get('fees') or 0)} fees"


def tell(trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``opened``, ``closed`` and ``result`` (the words) to each trade."""
    for t in trades:
        t["opened"], t["closed"], t["result"] = opened_words(t), closed_words(t), \
            result_words(t)
    return trades


def as_csv(trades: list[dict[str, Any]]) -> str:
    """The trades (told) as CSV, one row each, money in dollars."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_COLUMNS)
    for t in trades:
        row = {**t, "market": t["ticker"], "count": t.get("quantity"),
               "pnl_dollars": None if t.get("pnl_cents") is None else t["pnl_cents"] / 100}
        w.writerow(["" if row.get(c) is None else row[c] for c in CSV_COLUMNS])
    return out.getvalue()


async def daily(pool: Any, days: int = 30) -> list[dict[str, Any]]:
    """Per day of closing in New York (ET: Kalshi's day), the last ``days``: trades closed,
    won, lost, P&L after fees, fees, and ``bar`` (the day's P&L as a share of the largest,
    for the page's bars)."""
    found = await data.rows(pool, """
        SELECT (closed_at AT TIME ZONE 'America/New_York')::date::text AS day,
               count(*) AS trades, count(*) FILTER (WHERE pnl_cents > 0) AS won,
               count(*) FILTER (WHERE pnl_cents < 0) AS lost,
               COALESCE(sum(pnl_cents), 0) AS pnl_cents, COALESCE(sum(fees), 0) AS fees
        FROM trades WHERE closed_at IS NOT NULL AND pnl_cents IS NOT NULL
          AND closed_at > now() - make_interval(days => %s)
        GROUP BY 1 ORDER BY 1 DESC""", (days,))
    most = max((abs(d["pnl_cents"]) for d in found), default=0) or 1
    for d in found:
        d["bar"] = round(100 * abs(d["pnl_cents"]) / most)
    return found
