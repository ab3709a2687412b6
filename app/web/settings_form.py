"""The Settings page's trading settings: the form (grouped as a trader thinks of them), what a
posted form changes, and the audit trail.

Every bound is :mod:`app.trading.settings_ranges`' (the one table rec-trade-manager enforces on
``PUT /settings``): a typed value is checked with its :func:`~app.trading.settings_ranges.check`
before anything is sent, and the manager checks it again. Nothing here writes: the change goes
through rec-trade-manager, which writes ``trading_settings`` and one ``trading_settings_audit``
row per key (who, when, old -> new).
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from app.trading import settings_ranges
from app.trading.settings_ranges import RANGES
from app.web import data

GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("risk", "Risk limits", ("max_contracts_per_trade", "max_contracts_per_market",
                             "max_open_exposure_dollars", "max_daily_loss_dollars")),
    ("exit", "Exit rules (rec-trade-supervisor)", (
        "auto_stop", "exit_probability_enabled", "exit_probability_threshold",
        "exit_probability_min_ttc_sec", "exit_momentum_enabled", "exit_momentum_threshold",
        "stop_loss_enabled", "stop_loss_cents", "take_profit_enabled", "take_profit_cents",
        "exit_max_slippage_cents")),
    ("auto", "Auto entry (rec-auto-entry)", (
        "auto_entry_enabled", "auto_entry_dry_run", "auto_entry_min_probability",
        "auto_entry_min_diff_cents", "auto_entry_min_ttc_sec", "auto_entry_max_ttc_sec",
        "auto_entry_strike_cooldown_sec", "auto_entry_spike_enabled",
        "auto_entry_spike_threshold", "auto_entry_spike_cooldown_sec",
        "auto_entry_spike_cooldown_threshold")),
    ("sizes", "Sizes", ("auto_entry_position_size", "auto_entry_multiplier",
                        "auto_entry_max_slippage_cents")),
    ("orders", "Orders", ("open_time_in_force", "close_time_in_force", "pause_policy",
                          "intent_max_wait_sec", "open_order_max_rest_sec",
                          "close_orders_per_minute", "close_backoff_max_sec")),
)
KEYS = tuple(k for _, _, keys in GROUPS for k in keys)


def step(key: str) -> str:
    """The input's ``step``: whole numbers by 1, others by a hundredth (or finer)."""
    r = RANGES[key]
    return "1" if r.kind == "integer" else "any"


def form(current: dict[str, Any]) -> list[dict[str, Any]]:
    """The groups with each setting's value, description and range (for the template)."""
    return [{"id": gid, "title": title,
             "fields": [{"key": k, "range": RANGES[k], "step": step(k),
                         "value": (current.get(k) or {}).get("value"),
                         "description": (current.get(k) or {}).get("description", "")}
                        for k in keys if k in current]}
            for gid, title, keys in GROUPS]


def same(a: Any, b: Any) -> bool:
    """Equal as settings: numbers by value (0.4 == 0.40), others as they are."""
    if isinstance(a, int | float | Decimal) and isinstance(b, int | float | Decimal) and \
            not isinstance(a, bool) and not isinstance(b, bool):
        return Decimal(str(a)) == Decimal(str(b))
    return a == b


def parse(posted: dict[str, str], current: dict[str, Any]) -> tuple[dict[str, Any],
                                                                    dict[str, str]]:
    """The settings the posted form changes (``{key: value as stored}``) and the errors by
    key, each checked against its range. The whole form: every key it showed (a checkbox not
    sent is off). The confirmation (:func:`as_form`): only its ``keys``, each refused when
    its value is no longer the one the trader saw (``was_<key>``: another change came
    between, which this one would undo unseen)."""
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    confirming = "keys" in posted
    keys = str(posted["keys"]).split(",") if confirming else KEYS
    for key in keys:
        if key not in current or key not in RANGES:
            continue
        r = RANGES[key]
        typed = str(posted.get(key) or "").strip()
        try:
            if r.kind == "bool":
                value = settings_ranges.check(key, typed == "on")
            elif r.kind == "choice":
                value = settings_ranges.check(key, typed)
            else:
                value = settings_ranges.check(key, Decimal(typed))
        except (ValueError, InvalidOperation):
            errors[key] = f"{key}: {typed or 'empty'} is not {r.describe()}"
            continue
        now = current[key]["value"]
        if confirming and not same(json.loads(posted.get(f"was_{key}") or "null"), now):
            errors[key] = (f"{key}: changed meanwhile to {json.dumps(now)} (see the changes "
                           f"below); review yours again")
        elif not same(value, now):
            changes[key] = value
    return changes, errors


def as_form(changes: dict[str, Any], current: dict[str, Any]) -> dict[str, str]:
    """The confirmation's hidden fields: the changed keys (``keys``), each new value and the
    value it replaces (``was_<key>``, JSON)."""
    out = {"keys": ",".join(changes)}
    for key, v in changes.items():
        out[key] = ("on" if v else "off") if RANGES[key].kind == "bool" else str(v)
        out[f"was_{key}"] = json.dumps(current[key]["value"])
    return out


async def audit(pool: Any, limit: int = 50) -> list[dict[str, Any]]:
    """The latest changes, newest first: when, by whom, key, old -> new (as JSON text)."""
    return await data.rows(pool, """
        SELECT id, ts, key, old_value::text AS old_value, new_value::text AS new_value,
               changed_by FROM trading_settings_audit ORDER BY id DESC LIMIT %s""", (limit,))
