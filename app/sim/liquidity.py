"""Simulated liquidity: a market maker quoting around fair value, and noise takers.

Both trade through the exchange like any client (accounts with unlimited collateral), so
the books have depth, trades print and prices follow the underlying.
"""

from __future__ import annotations

import math
import random

from app.sim.market import ACTIVE, Market
from app.sim.matching import NO, YES, Order
from app.sim.money import CENT
from app.sim.venue import Exchange, ExchangeError, OrderRequest

MM_ACCOUNT = "sim-market-maker"
FLOW_ACCOUNT = "sim-flow"
SECONDS_PER_YEAR = 365 * 86_400


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def prob_above(spot: float, strike: float, seconds_left: float, vol: float) -> float:
    if seconds_left <= 0:
        return 1.0 if spot > strike else 0.0
    s = vol * math.sqrt(seconds_left / SECONDS_PER_YEAR)
    d2 = (math.log(spot / strike) - 0.5 * s * s) / s
    return _phi(d2)


def fair_value(m: Market, spot: float, now_ms: int, vol: float) -> float:
    left = (m.close_ms - now_ms) / 1000
    if m.strike_type == "greater":
        return prob_above(spot, m.floor_strike or 0.0, left, vol)
    lo = prob_above(spot, m.floor_strike or 0.0, left, vol)
    hi = prob_above(spot, (m.cap_strike or 0.0) + 0.01, left, vol)
    return max(0.0, lo - hi)


class MarketMaker:
    def __init__(self, ex: Exchange, rng: random.Random, levels: int = 5, half_spread: int = 2,
                 size: int = 100, refresh_s: int = 15) -> None:
        self.ex = ex
        self.rng = rng
        self.levels = levels
        self.half_spread = half_spread
        self.size = size
        self.refresh_s = refresh_s
        self.acct = ex.account(MM_ACCOUNT, unlimited=True)
        self.quotes: dict[str, dict[tuple[str, int], Order]] = {}
        self.last_fair: dict[str, int] = {}

    def desired(self, fc: int) -> dict[tuple[str, int], int]:
        want: dict[tuple[str, int], int] = {}
        for i in range(self.levels):
            size = self.size + 50 * i
            bid = fc - self.half_spread - i
            ask = fc + self.half_spread + i
            if 1 <= bid <= 99:
                want[(YES, bid)] = size
            if 1 <= ask <= 99:
                want[(NO, 100 - ask)] = size
        return want

    def quote(self, m: Market, fair: float, tick: int) -> None:
        fc = round(fair * 100)
        if self.last_fair.get(m.ticker) == fc and tick % self.refresh_s:
            return
        self.last_fair[m.ticker] = fc
        want = self.desired(fc)
        have = self.quotes.setdefault(m.ticker, {})
        for key, order in list(have.items()):
            gone = order.status != "resting"
            if gone or key not in want or order.remaining < want[key] // 2:
                if not gone:
                    self.ex.cancel_order(self.acct, order, None)
                del have[key]
        for (outcome, price), size in want.items():
            if (outcome, price) in have:
                continue
            req = OrderRequest(m.ticker, side=outcome, action="buy", count=size,
                               price=price * CENT)
            try:
                order = self.ex.place(self.acct, req)
            except ExchangeError:
                return
            if order.status == "resting":
                have[(outcome, price)] = order

    def forget(self, ticker: str) -> None:
        self.quotes.pop(ticker, None)
        self.last_fair.pop(ticker, None)


class NoiseFlow:
    """Takers that buy YES or NO at market at random moments."""

    def __init__(self, ex: Exchange, rng: random.Random, rate_per_s: float = 0.02,
                 max_size: int = 10) -> None:
        self.ex = ex
        self.rng = rng
        self.rate = rate_per_s
        self.max_size = max_size
        self.acct = ex.account(FLOW_ACCOUNT, unlimited=True)

    def step(self, m: Market) -> None:
        if m.status != ACTIVE or self.rng.random() >= self.rate:
            return
        side = YES if self.rng.random() < 0.5 else NO
        size = self.rng.randint(1, self.max_size)
        req = OrderRequest(m.ticker, side=side, action="buy", count=size, price=99 * CENT,
                           tif="immediate_or_cancel")
        try:
            self.ex.place(self.acct, req)
        except ExchangeError:
            pass
