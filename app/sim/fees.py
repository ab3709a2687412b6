"""Kalshi trading fees as Kalshi now computes them (docs.kalshi.com, "Fee Rounding").

The fee model: rate * C * P * (1 - P) for C contracts at price P dollars; the taker rate is
0.07, and series whose fee_type is "quadratic_with_maker_fees" also charge makers 0.0175
(the series' fee_multiplier scales either). Per fill:

- trade fee: the model's fee, rounded up to $0.0001. A per-order accumulator keeps the exact
  fee of all the order's fills so far, so the trade fee of a fill is
  ceil(total after) - ceil(total before): split fills cost what one fill would;
- rounding fee: what restores the balance precision. The simulator's accounts are
  non-direct members, whose balances are whole cents: the fill's cash change (price and
  trade fee; sub-cent prices make the price part fractional too) is rounded down to $0.01;
- rebate: the accumulated rounding overpayment of the order, paid back in whole cents as
  soon as it reaches $0.01.

Prices and amounts are integers in $0.0001 (units.ONE = $1).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.sim.money import CENT, ONE

TAKER_RATE_BP = 700  # 0.07, in ten-thousandths
MAKER_RATE_BP = 175  # 0.0175
BALANCE_PRECISION = CENT  # non-direct members: balances in whole cents ($0.01)
# rate_bp/1e4 * C * (p/ONE) * (1 - p/ONE) dollars = rate_bp * C * p * (ONE - p) / ONE**2 units
_SCALE = ONE * ONE


def rate_bp(is_taker: bool, fee_type: str, multiplier: float = 1.0) -> int:
    """The fee rate in ten-thousandths for one side of a trade on a series."""
    if fee_type == "flat":
        return 0
    if is_taker:
        return round(TAKER_RATE_BP * multiplier)
    if fee_type in ("quadratic_with_maker_fees", "quadratic_with_combo_maker_fees"):
        return round(MAKER_RATE_BP * multiplier)
    return 0


def exact_fee(count: int, price: int, rate: int) -> int:
    """The model's fee as an exact integer numerator: fee in $0.0001 = value / _SCALE."""
    return rate * count * price * (ONE - price)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def trade_fee(count: int, price: int, rate: int = TAKER_RATE_BP) -> int:
    """The model's fee for one fill on its own, rounded up to $0.0001."""
    return _ceil_div(exact_fee(count, price, rate), _SCALE)


def fee_estimate(count: int, price: int, rate: int = TAKER_RATE_BP) -> int:
    """At most what one fill of `count` at `price` costs in fees, rounded up to a cent."""
    return _ceil_div(trade_fee(count, price, rate), CENT) * CENT


@dataclass
class FeeCharge:
    """One fill's fee components, in $0.0001."""

    trade_fee: int
    rounding_fee: int
    rebate: int

    @property
    def net(self) -> int:
        return self.trade_fee + self.rounding_fee - self.rebate



@dataclass
class FeeAccumulator:
    """Per order: the exact fee of its fills so far and its unreturned rounding."""

    exact: int = 0  # sum of exact_fee() numerators
    overpaid: int = 0  # rounding fees not yet rebated, in $0.0001

    def charge(self, count: int, price: int, rate: int, cash_delta: int = 0) -> FeeCharge:
        """The fee of one fill; `cash_delta` is the fill's cash change before fees."""
        before = _ceil_div(self.exact, _SCALE)
        self.exact += exact_fee(count, price, rate)
        trade = _ceil_div(self.exact, _SCALE) - before
        rounding = (cash_delta - trade) % BALANCE_PRECISION
        self.overpaid += rounding
        rebate = self.overpaid // BALANCE_PRECISION * BALANCE_PRECISION
        self.overpaid -= rebate
        return FeeCharge(trade, rounding, rebate)
