"""The checks an open intent passes before anything can reach the exchange: the market (it
exists, it is open, the limit is on its price grid) and the risk limits (the kill switch,
contracts per trade and per market, open exposure, today's realised loss). Pure functions of
the trading settings, the market row and the risk figures; a refusal names the rule."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.kalshi.prices import InvalidPrice, PriceGrid
from app.trading.intents import BadInput
from app.trading.money import fee_dollars

OPEN_MARKET_STATES = ("active", "open")
LIMITS = ("max_contracts_per_trade", "max_contracts_per_market", "max_open_exposure_dollars",
          "max_daily_loss_dollars")


class RiskRefused(Exception):
    def __init__(self, limit: str, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.limit, self.message, self.detail = limit, message, detail


def cost(req: dict[str, Any]) -> Decimal:
    """What an open intent adds to the open exposure: its contracts at the limit, with fees."""
    count, price = req["count"], req["limit_price"]
    return count * price + fee_dollars(count, price)


def check_market(market: dict[str, Any] | None, req: dict[str, Any]) -> None:
    """The market exists, is open, and the limit price is on its price grid."""
    if market is None:
        raise BadInput("market", f"unknown market {req['market']}")
    if market["status"] not in OPEN_MARKET_STATES:
        raise BadInput("market", f"market {req['market']} is {market['status']}, "
                                 "not open for trading")
    check_price(market, req["limit_price"])


def check_price(market: dict[str, Any], price: Decimal, field: str = "limit_price") -> None:
    raw = market.get("raw") or {}
    try:
        grid = PriceGrid.from_ranges(market.get("price_level_structure")
                                     or raw.get("price_level_structure") or "linear_cent",
                                     raw.get("price_ranges") or [], market["ticker"])
        grid.check(price)
    except InvalidPrice as exc:
        raise BadInput(field, str(exc)) from None


def limits(s: dict[str, Any]) -> dict[str, Decimal]:
    return {k: Decimal(str(s.get(k, 0))) for k in LIMITS}


def risk_bounds(s: dict[str, Any], req: dict[str, Any]) -> dict[str, Decimal]:
    """The risk rules that depend on the request alone (raise), and the bounds the risk
    figures must stay within for it: contracts held or pending in the market, open
    exposure in dollars, and today's realised P&L in cents (above ``min_pnl``)."""
    count, lim = req["count"], limits(s)
    if s.get("kill_switch"):
        raise RiskRefused("kill_switch", "the kill switch is on: no new entries")
    if count > lim["max_contracts_per_trade"]:
        raise RiskRefused("max_contracts_per_trade",
                          f"{count} contracts is over max_contracts_per_trade "
                          f"{lim['max_contracts_per_trade']}", field="count")
    return {"max_held": lim["max_contracts_per_market"] - count,
            "max_exposure": lim["max_open_exposure_dollars"] - cost(req),
            "min_pnl": -lim["max_daily_loss_dollars"] * 100}


def check_risk(s: dict[str, Any], req: dict[str, Any], held: Decimal, exposure: Decimal,
               pnl: int) -> None:
    """Every risk rule against the figures the open statement read (the refusal names it)."""
    b, lim, count = risk_bounds(s, req), limits(s), req["count"]
    if held > b["max_held"]:
        raise RiskRefused("max_contracts_per_market",
                          f"{held} held/pending + {count} is over max_contracts_per_market "
                          f"{lim['max_contracts_per_market']} in {req['market']}", held=held)
    if exposure > b["max_exposure"]:
        raise RiskRefused("max_open_exposure_dollars",
                          f"open exposure ${exposure:.2f} + ${cost(req):.2f} is over "
                          f"max_open_exposure_dollars ${lim['max_open_exposure_dollars']}",
                          exposure=exposure)
    if pnl <= b["min_pnl"]:
        raise RiskRefused("max_daily_loss_dollars",
                          f"today's realised P&L {pnl} cents reached max_daily_loss_dollars "
                          f"${lim['max_daily_loss_dollars']}", pnl_cents=pnl)
