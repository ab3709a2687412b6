"""The intent schema (app/trading/intents.py), the trading settings' ranges
(app/trading/settings_ranges.py) and the risk limits (app/trading/risk.py), without a database:
the bounds a user sees, the field named in every refusal."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from app.trading import intents, risk, settings_ranges
from app.trading.intents import BadInput

OPEN = {"intent": "open", "idempotency_key": "k-1", "market": "KXBTCD-26DEC07-T100",
        "side": "yes", "count": 3, "limit_price": "0.55"}


def test_an_open_intent_is_validated_with_decimal_prices_and_defaults():
    kind, req = intents.validate_intent(OPEN)
    assert kind == "open"
    assert req == {"idempotency_key": "k-1", "market": "KXBTCD-26DEC07-T100", "side": "yes",
                   "count": Decimal(3), "limit_price": Decimal("0.55"), "strategy": "manual",
                   "entry_method": "manual"}
    kind, req = intents.validate_intent({"intent": "close", "idempotency_key": "c-1",
                                         "trade_id": 7})
    assert (kind, req["trade_id"], req["limit_price"], req["close_method"]) == (
        "close", 7, None, "manual")


@pytest.mark.parametrize(("change", "field"), [
    ({"side": "maybe"}, "side"),
    ({"count": 0}, "count"),
    ({"count": "1.5"}, "count"),
    ({"count": True}, "count"),
    ({"count": 100_001}, "count"),  # over the most max_contracts_per_trade may allow
    ({"limit_price": "1.00"}, "limit_price"),
    ({"limit_price": "NaN"}, "limit_price"),
    ({"limit_price": "Infinity"}, "limit_price"),
    ({"market": "bad ticker"}, "market"),
    ({"idempotency_key": ""}, "idempotency_key"),
    ({"colour": "red"}, "colour"),
    ({"intent": "hold"}, "intent"),
])
def test_each_bad_field_is_named(change, field):
    with pytest.raises(BadInput) as exc:
        intents.validate_intent({**OPEN, **change})
    assert exc.value.field == field, exc.value
    assert field in str(exc.value)


def test_with_the_users_limits_a_count_over_them_is_a_field_error_for_a_form():
    limits = {"max_contracts_per_trade": 25}
    assert intents.validate_open({**OPEN, "count": 25}, limits)["count"] == 25
    with pytest.raises(BadInput, match="over max_contracts_per_trade"):
        intents.validate_open({**OPEN, "count": 26}, limits)
    errors = intents.field_errors({**OPEN, "count": 26, "side": "up", "x": 1}, limits)
    assert set(errors) == {"count", "side", "x"} and errors["side"].startswith("side: ")
    assert intents.field_errors(OPEN, limits) == {}


@pytest.mark.parametrize(("limit", "count", "refused"), [(25, 24, False), (25, 25, False),
                                                          (25, 26, True)])
def test_max_contracts_per_trade_allows_exactly_the_limit(limit, count, refused):
    s = {"max_contracts_per_trade": limit, "max_contracts_per_market": 1000,
         "max_open_exposure_dollars": 1000, "max_daily_loss_dollars": 100}
    req = {"count": Decimal(count), "limit_price": Decimal("0.5"), "market": "M"}
    if refused:
        with pytest.raises(risk.RiskRefused) as exc:
            risk.risk_bounds(s, req)
        assert exc.value.limit == "max_contracts_per_trade"
    else:
        assert risk.risk_bounds(s, req)["max_held"] == 1000 - count


def test_every_setting_in_the_migrations_has_a_documented_range():
    from pathlib import Path

    import app.db.migrate as migrate
    text = "\n".join(p.read_text() for p in sorted(Path(migrate.MIGRATIONS_DIR).glob("*.sql")))
    keys = {line.split("'")[1] for line in text.splitlines()
            if line.strip().startswith("('") and "trading_settings" not in line}
    keys &= {k for k in keys if not k.isupper()}
    assert keys - {"install_id"} <= set(settings_ranges.RANGES), (
        keys - set(settings_ranges.RANGES))
    for key, r in settings_ranges.RANGES.items():
        assert r.describe(), key


@pytest.mark.parametrize(("key", "value"), [
    ("auto_entry_position_size", -5), ("auto_entry_position_size", 10**30),
    ("max_contracts_per_trade", 100_000_000), ("max_daily_loss_dollars", -1),
    ("max_open_exposure_dollars", -100), ("intent_max_wait_sec", -1),
    ("max_contracts_per_market", 0), ("max_open_exposure_dollars", math.nan),
    ("max_open_exposure_dollars", math.inf), ("auto_entry_position_size", 1.5),
    ("kill_switch", 1), ("pause_policy", "sometimes"), ("close_orders_per_minute", 0),
    ("strategies", {"manual": {"contracts_limit": -1}}),
])
def test_a_setting_out_of_its_range_is_refused_naming_the_range(key, value):
    with pytest.raises(ValueError) as exc:
        settings_ranges.check(key, value)
    assert settings_ranges.RANGES[key].describe() in str(exc.value)


def test_a_setting_in_range_is_stored_as_json():
    assert settings_ranges.check("max_open_exposure_dollars", Decimal("250.5")) == 250.5
    assert settings_ranges.check("max_contracts_per_trade", Decimal(25)) == 25
    assert settings_ranges.check("auto_entry_min_diff_cents", -100) == -100
    assert settings_ranges.table()["max_contracts_per_trade"]["high"] == Decimal(100_000)


@pytest.mark.parametrize("detail", [["0.2"], {"p": True}, {"p": "x" * 65}, {"bad key!": 1},
                                    {f"k{i}": 1 for i in range(9)}])
def test_a_close_carries_the_exit_rules_numbers_or_is_refused_naming_them(detail):
    """rec-trade-supervisor sends the numbers it saw (rec-web's trade history says them)."""
    close = {"intent": "close", "idempotency_key": "c-2", "trade_id": 7,
             "close_method": "auto", "close_rule": "probability"}
    _, req = intents.validate_intent({**close, "close_detail": {"probability": "0.35",
                                                                "threshold": 0.4}})
    assert req["close_detail"] == {"probability": "0.35", "threshold": "0.4"}
    with pytest.raises(intents.BadInput) as exc:
        intents.validate_intent({**close, "close_detail": detail})
    assert exc.value.field == "close_detail"
