"""Every trading setting's documented range: the one table rec-trade-manager (the one writer of
``trading_settings``) enforces on ``PUT /settings`` and rec-web's settings form can read.

:func:`check` ``(key, value) -> value`` returns the value to store or raises
:class:`ValueError` naming the range; ``RANGES[key].describe()`` is the range in words and
``RANGES[key].as_dict()`` the same for a form (``kind``, ``low``, ``high``, ``choices``,
``unit``). Numbers are finite: NaN and Infinity are refused like any value out of range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

DAY_SEC = 86_400
TIFS = ("fill_or_kill", "immediate_or_cancel", "good_till_canceled")
STRATEGY_FIELDS = ("contracts_limit", "cancel_order_on_pause")


@dataclass(frozen=True)
class Range:
    """``kind``: bool | integer | number | choice | strategies; numbers within [low, high]."""

    kind: str
    low: Decimal | None = None
    high: Decimal | None = None
    unit: str = ""
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "strategies":
            return ("per strategy {contracts_limit: a whole number from 1 to 1000000, "
                    "cancel_order_on_pause: true or false}")
        what = "a whole number" if self.kind == "integer" else "a number"
        unit = f" {self.unit}" if self.unit else ""
        return f"{what} from {self.low} to {self.high}{unit}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "low": self.low, "high": self.high, "unit": self.unit,
                "choices": list(self.choices), "range": self.describe()}


def _int(low: int, high: int, unit: str = "") -> Range:
    return Range("integer", Decimal(low), Decimal(high), unit)


def _num(low: str | int, high: str | int, unit: str = "") -> Range:
    return Range("number", Decimal(low), Decimal(high), unit)


BOOL = Range("bool")
CONTRACT_LIMIT = _int(1, 1_000_000, "contracts")

RANGES: dict[str, Range] = {
    "kill_switch": BOOL,
    "kill_switch_close_open": BOOL,
    "max_contracts_per_trade": _int(1, 100_000, "contracts"),
    "max_contracts_per_market": _int(1, 1_000_000, "contracts"),
    "max_open_exposure_dollars": _num(1, 10_000_000, "dollars"),
    "max_daily_loss_dollars": _num(1, 10_000_000, "dollars"),
    "open_time_in_force": Range("choice", choices=TIFS),
    "close_time_in_force": Range("choice", choices=TIFS),
    "pause_policy": Range("choice", choices=("wait", "expire")),
    "intent_max_wait_sec": _num(0, 3_600, "seconds"),
    "open_order_max_rest_sec": _num(0, DAY_SEC, "seconds (0: rests until the close)"),
    "strategies": Range("strategies"),
    "auto_stop": BOOL,
    "exit_probability_enabled": BOOL,
    "exit_probability_threshold": _num(0, 1),
    "exit_probability_min_ttc_sec": _num(0, DAY_SEC, "seconds"),
    "exit_momentum_enabled": BOOL,
    "exit_momentum_threshold": _num(0, 100, "percent"),
    "stop_loss_enabled": BOOL,
    "stop_loss_cents": _num(1, 99, "cents"),
    "take_profit_enabled": BOOL,
    "take_profit_cents": _num(1, 99, "cents"),
    "exit_max_slippage_cents": _num(0, 99, "cents"),
    "close_orders_per_minute": _int(1, 60, "orders per trade per minute"),
    "close_backoff_max_sec": _num(1, 600, "seconds"),
    "auto_entry_enabled": BOOL,
    "auto_entry_dry_run": BOOL,
    "auto_entry_min_probability": _num(0, 1),
    "auto_entry_min_diff_cents": _num(-100, 100, "cents"),
    "auto_entry_min_ttc_sec": _num(0, DAY_SEC, "seconds"),
    "auto_entry_max_ttc_sec": _num(0, DAY_SEC, "seconds"),
    "auto_entry_strike_cooldown_sec": _num(0, DAY_SEC, "seconds"),
    "auto_entry_spike_enabled": BOOL,
    "auto_entry_spike_threshold": _num(0, 100, "percent"),
    "auto_entry_spike_cooldown_sec": _num(0, DAY_SEC, "seconds"),
    "auto_entry_spike_cooldown_threshold": _num(0, 100, "percent"),
    "auto_entry_position_size": _int(1, 100_000, "contracts"),
    "auto_entry_multiplier": _num("0.01", 100),
    "auto_entry_max_slippage_cents": _num(0, 99, "cents"),
}


def _number(r: Range, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"must be {r.describe()}")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"must be {r.describe()}") from None
    if not d.is_finite() or not (r.low <= d <= r.high):
        raise ValueError(f"{value} is out of range: must be {r.describe()}")
    if r.kind == "integer":
        if d != d.to_integral_value():
            raise ValueError(f"{value} is not whole: must be {r.describe()}")
        return int(d)
    f = float(d)
    return int(d) if d == d.to_integral_value() and math.isfinite(f) else f


def _strategies(value: Any) -> dict[str, Any]:
    r = RANGES["strategies"]
    if not isinstance(value, dict) or not value:
        raise ValueError(f"must be {r.describe()}")
    out = {}
    for name, conf in value.items():
        if not isinstance(conf, dict) or set(conf) - set(STRATEGY_FIELDS):
            raise ValueError(f"{name}: must be {r.describe()}")
        limit, on_pause = conf.get("contracts_limit", 1), conf.get("cancel_order_on_pause", True)
        try:
            limit = _number(CONTRACT_LIMIT, limit)
        except ValueError:
            raise ValueError(f"{name}: {limit} is out of range: must be {r.describe()}") from None
        if not isinstance(on_pause, bool):
            raise ValueError(f"{name}: must be {r.describe()}")
        out[name] = {k: v for k, v in (("contracts_limit", limit),
                                        ("cancel_order_on_pause", on_pause)) if k in conf}
    return out


def check(key: str, value: Any) -> Any:
    """``value`` as stored (JSON-able) if it is in ``key``'s range; else ValueError naming it."""
    r = RANGES.get(key)
    if r is None:
        raise KeyError(key)
    if r.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if r.kind == "choice":
        if value not in r.choices:
            raise ValueError(f"must be {r.describe()}")
        return value
    if r.kind == "strategies":
        return _strategies(value)
    return _number(r, value)


def table() -> dict[str, dict[str, Any]]:
    """Every setting's range, for a form or an API answer."""
    return {key: r.as_dict() for key, r in RANGES.items()}
