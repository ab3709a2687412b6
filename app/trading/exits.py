"""The exit rules as data and pure functions: a view of one open trade (:class:`View`) and the
first rule that fires for it under the trading settings (:func:`exit_rule`), and a close's
limit (:func:`close_limit`). rec-trade-supervisor applies them every second; rec-web applies
the same ones to show which rule is nearest and to warn in the ticket when one would fire at
once (the rules themselves are described in app/services/trade_supervisor.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass
class View:
    trade_id: int
    ticker: str
    side: str
    quantity: Decimal
    entry_price: Decimal | None
    time_in_trade_sec: int
    index_price: Decimal | None = None
    probability: Decimal | None = None  # of the trade's side
    buffer: Decimal | None = None
    momentum: Decimal | None = None
    time_to_close_sec: int | None = None
    close_price: Decimal | None = None
    unrealised_pnl_cents: int | None = None
    close_attempts: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def exit_rule(v: View, s: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The first exit rule that fires for ``v`` under the settings ``s`` (None: hold)."""
    if not s.get("auto_stop", True):
        return None
    if (s.get("exit_probability_enabled") and v.probability is not None
            and v.time_to_close_sec is not None
            and v.probability < Decimal(str(s["exit_probability_threshold"]))
            and v.time_to_close_sec >= int(s["exit_probability_min_ttc_sec"])):
        return "probability", {"probability": v.probability,
                               "threshold": s["exit_probability_threshold"],
                               "time_to_close_sec": v.time_to_close_sec}
    if s.get("exit_momentum_enabled") and v.momentum is not None:
        t = Decimal(str(s["exit_momentum_threshold"]))
        if (v.side == "no" and v.momentum >= t) or (v.side == "yes" and v.momentum <= -t):
            return "momentum_spike", {"momentum": v.momentum, "threshold": t}
    if v.close_price is not None and v.entry_price is not None:
        move = (v.close_price - v.entry_price) * 100
        if s.get("stop_loss_enabled") and move <= -Decimal(str(s["stop_loss_cents"])):
            return "stop_loss", {"close_price": v.close_price, "entry_price": v.entry_price,
                                 "stop_loss_cents": s["stop_loss_cents"]}
        if s.get("take_profit_enabled") and move >= Decimal(str(s["take_profit_cents"])):
            return "take_profit", {"close_price": v.close_price, "entry_price": v.entry_price,
                                   "take_profit_cents": s["take_profit_cents"]}
    return None


def close_limit(v: View, slip: Decimal) -> Decimal | None:
    """The close's limit: ``slip`` under the close price (the best bid of the trade's side),
    at least $0.01; None without a bid (a close there could not fill: it waits)."""
    if v.close_price is None or v.close_price <= 0:
        return None
    return max(Decimal("0.01"), v.close_price - slip)
