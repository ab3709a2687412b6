"""Kalshi trading fees, in integer cents.

Kalshi's published general schedule: fee = round up to the next cent of
rate * C * P * (1 - P), with C contracts at price P dollars. The taker rate is 0.07;
series with fee_type "quadratic_with_maker_fees" also charge makers 0.0175. The series'
fee_multiplier scales the result. Rates are kept as integers per ten thousand so the
arithmetic stays exact.
"""

from __future__ import annotations

TAKER_RATE_BP = 700  # 0.07
MAKER_RATE_BP = 175  # 0.0175


def quadratic_fee_cents(count: int, price_cents: int, rate_bp: int = TAKER_RATE_BP) -> int:
    """ceil(rate * C * P * (1 - P)) in cents, P = price_cents / 100.

    rate * C * (p/100) * ((100-p)/100) dollars = rate_bp * C * p * (100-p) / 10**8 dollars
    = rate_bp * C * p * (100-p) / 10**6 cents.
    """
    if count <= 0 or rate_bp <= 0:
        return 0
    numerator = rate_bp * count * price_cents * (100 - price_cents)
    return -(-numerator // 1_000_000)


def trade_fee_cents(
    count: int, price_cents: int, *, is_taker: bool, fee_type: str, multiplier: float = 1.0
) -> int:
    if fee_type == "flat":
        return 0
    if is_taker:
        rate = TAKER_RATE_BP
    elif fee_type == "quadratic_with_maker_fees":
        rate = MAKER_RATE_BP
    else:
        return 0
    return quadratic_fee_cents(count, price_cents, round(rate * multiplier))
