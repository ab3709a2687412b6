"""Live P&L of an open trade, as the open-trades panel shows it.

- the mark: the best bid of the trade's side (what a close would sell at now, the price
  rec-trade-supervisor's stop-loss and take-profit read);
- unrealised P&L after fees, the same definition as a closed trade's ``pnl_cents``
  (proceeds - cost - fees): quantity x mark - ``entry_cost`` - the fees paid so far - Kalshi's
  fee for selling at the mark;
- P(side) and momentum from the strike table, the time to the market's close;
- the exit rule nearest to firing: rec-trade-supervisor's own
  :func:`~app.trading.exits.exit_rule` says whether one fires now; else each rule
  that is on, with how far its number is from its threshold (in its own units) and that
  distance as a share of the threshold, the smallest share being the nearest.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.trading.exits import View, exit_rule
from app.trading.money import fee_dollars
from app.web import ticket

HUNDRED = Decimal(100)


def _dec(v: Any) -> Decimal | None:
    return None if v is None else Decimal(str(v))


def distances(v: View, s: dict[str, Any]) -> list[dict[str, Any]]:
    """Each exit rule that is on and can be judged: ``{"rule", "gap", "unit", "share"}`` (the
    gap to its threshold, > 0 while it holds), nearest first."""
    out = []

    def add(rule: str, gap: Decimal, unit: str, scale: Decimal) -> None:
        out.append({"rule": rule, "gap": gap, "unit": unit,
                    "share": gap / scale if scale else gap})

    if not s.get("auto_stop", True):
        return []
    if s.get("exit_probability_enabled") and v.probability is not None:
        t = Decimal(str(s["exit_probability_threshold"]))
        add("probability", (v.probability - t) * HUNDRED, "pp", t * HUNDRED)
    if s.get("exit_momentum_enabled") and v.momentum is not None:
        t = Decimal(str(s["exit_momentum_threshold"]))
        add("momentum_spike", t - v.momentum if v.side == "no" else v.momentum + t, "", t)
    if v.close_price is not None and v.entry_price is not None:
        move = (v.close_price - v.entry_price) * HUNDRED
        if s.get("stop_loss_enabled"):
            t = Decimal(str(s["stop_loss_cents"]))
            add("stop_loss", move + t, "¢", t)
        if s.get("take_profit_enabled"):
            t = Decimal(str(s["take_profit_cents"]))
            add("take_profit", t - move, "¢", t)
    return sorted(out, key=lambda d: d["share"])


def nearest_words(v: View, s: dict[str, Any]) -> tuple[str | None, str]:
    """(the rule, in words) firing now or nearest to firing; (None, why) when none is on."""
    if not s:
        return None, "unknown: no trading settings in this database"
    if not s.get("auto_stop", True):
        return None, "auto-stop is off: no exit rule closes this trade"
    fired = exit_rule(v, s)
    if fired is not None:
        rule, detail = fired
        return rule, f"FIRING: {rule}: {ticket.rule_words(rule, v.side, detail)}"
    near = distances(v, s)
    if not near:
        return None, "no exit rule on can be judged (no P(side), momentum or bid)"
    d = near[0]
    return d["rule"], f"{d['rule']}: {d['gap']:.1f}{d['unit']} from firing"


def live_pnl(t: dict[str, Any], m: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
    """The live columns of one open trade ``t``, with ``m`` its market's view
    (:func:`app.web.ticket.market_view`) and ``s`` the trading settings."""
    qty, entry = _dec(t.get("quantity")) or Decimal(0), _dec(t.get("entry_price"))
    mark = m.get("bid")
    v = View(t["id"], t["ticker"], t["side"], qty, entry, 0,
             probability=m.get("probability"), momentum=m.get("momentum"),
             time_to_close_sec=m.get("time_to_close_sec"), close_price=mark)
    out: dict[str, Any] = {"mark": None if mark is None else float(mark),
                           "probability": None if v.probability is None else float(
                               v.probability),
                           "close_in": m.get("close_in"), "unrealised": None,
                           "exit_fee": None}
    cost = _dec(t.get("entry_cost"))
    if mark is not None and cost is not None and qty > 0:
        exit_fee = fee_dollars(qty, mark)
        out["exit_fee"] = float(exit_fee)
        out["unrealised"] = float(qty * mark - cost - (_dec(t.get("fees")) or 0) - exit_fee)
    out["nearest_rule"], out["nearest"] = nearest_words(v, s)
    return out


BLANK = {"mark": None, "probability": None, "close_in": None, "unrealised": None,
         "exit_fee": None, "nearest_rule": None, "nearest": None}


async def annotate(pool: Any, trades: list[dict[str, Any]]) -> None:
    """Add ``live`` to every trade of ``trades``: :func:`live_pnl` for an open one, else
    :data:`BLANK` (nothing bought yet, or it is being closed)."""
    open_ = [t for t in trades if t.get("status") == "open"]
    s = await ticket.settings(pool) if open_ else {}
    for t in trades:
        t["live"] = (live_pnl(t, await ticket.market_view(pool, t["ticker"], t["side"]), s)
                     if t in open_ else dict(BLANK))
