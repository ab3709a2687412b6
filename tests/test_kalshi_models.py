"""Pure logic of the client: base URLs by account mode, exact money, the local book."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from app.kalshi.book import BookInconsistent, OrderBook
from app.kalshi.models import (
    Fill,
    Market,
    MoneyFormatError,
    Order,
    Settlement,
    cents_to_dollars,
    dollars_to_cents,
    fmt_count,
    fmt_dollars,
    loads,
    parse_ws_msg,
    to_decimal,
)
from app.kalshi.urls import UrlConfigError, from_settings, resolve

# ------------------------------------------------------------------ urls


def test_sim_mode_points_at_the_local_simulator():
    ep = resolve("sim", sim_host="127.0.0.1", sim_port=8090)
    assert ep.rest_base == "http://127.0.0.1:8090/trade-api/v2"
    assert ep.ws_url == "ws://127.0.0.1:8090/trade-api/ws/v2"
    assert ep.rest_path_prefix == "/trade-api/v2" and ep.ws_path == "/trade-api/ws/v2"


def test_sim_mode_on_an_ipv6_loopback_brackets_the_host():
    assert resolve("sim", sim_host="::1", sim_port=9000).rest_base == (
        "http://[::1]:9000/trade-api/v2"
    )


def test_demo_and_prod_use_kalshis_hosts():
    demo = resolve("demo")
    assert demo.rest_base == "https://demo-api.kalshi.co/trade-api/v2"
    assert demo.ws_url == "wss://demo-api.kalshi.co/trade-api/ws/v2"
    prod = resolve("PROD")
    assert prod.rest_base == "https://api.elections.kalshi.com/trade-api/v2"
    assert prod.ws_url == "wss://api.elections.kalshi.com/trade-api/ws/v2"


def test_overrides_win_over_the_mode():
    ep = resolve(
        "prod",
        base_url="http://127.0.0.1:9999/trade-api/v2/",
        ws_url="ws://127.0.0.1:9999/trade-api/ws/v2",
    )
    assert ep.rest_base == "http://127.0.0.1:9999/trade-api/v2"
    assert ep.ws_url == "ws://127.0.0.1:9999/trade-api/ws/v2"
    # an empty override means "not set"
    assert resolve("demo", base_url="", ws_url="").rest_base.startswith("https://demo-api")


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"mode": "paper"}, "account_mode"),
        ({"mode": "sim", "base_url": "ftp://x/trade-api/v2"}, "kalshi_base_url"),
        ({"mode": "sim", "ws_url": "http://x/trade-api/ws/v2"}, "kalshi_ws_url"),
        ({"mode": "sim", "base_url": "http://x/trade-api/v2?a=1"}, "kalshi_base_url"),
    ],
)
def test_bad_mode_or_override_names_the_setting(kw, needle):
    mode = kw.pop("mode")
    with pytest.raises(UrlConfigError, match=needle):
        resolve(mode, **kw)


def test_from_settings_reads_the_settings_fields():
    settings = SimpleNamespace(
        account_mode="sim",
        kalshi_base_url="",
        kalshi_ws_url="",
        target_host="127.0.0.1",
        exchange_sim_port=18090,
    )
    assert from_settings(settings).ws_url == "ws://127.0.0.1:18090/trade-api/ws/v2"


def test_from_settings_with_rec_settings(tmp_path):
    config = pytest.importorskip("app.config")
    environ = {
        "REC_CONFIG_DIR": str(tmp_path),
        "REC_CREDENTIALS_PATH": str(tmp_path / "creds"),
        "REC_ACCOUNT_MODE": "sim",
        "REC_EXCHANGE_SIM_PORT": "18091",
    }
    settings = config.load(environ)
    assert from_settings(settings).rest_base.endswith(":18091/trade-api/v2")
    environ["REC_KALSHI_WS_URL"] = "ws://127.0.0.1:1/trade-api/ws/v2"
    assert from_settings(config.load(environ)).ws_url == "ws://127.0.0.1:1/trade-api/ws/v2"


# ------------------------------------------------------------------ money


def test_fixed_point_strings_parse_exactly_and_floats_are_refused():
    assert to_decimal("0.5600") == Decimal("0.56")
    assert to_decimal(" 10.00 ") == Decimal(10)
    with pytest.raises(MoneyFormatError):
        to_decimal(0.56)
    with pytest.raises(MoneyFormatError):
        to_decimal("NaN")
    with pytest.raises(MoneyFormatError):
        to_decimal("abc")


def test_formatting_matches_the_wire():
    assert fmt_dollars(Decimal("0.56")) == "0.5600"
    with pytest.raises(MoneyFormatError):
        fmt_dollars("0.1234567")
    assert fmt_dollars("0.123456") == "0.123456"
    assert fmt_count(3) == "3.00" and fmt_count("2.5") == "2.50"
    with pytest.raises(MoneyFormatError):
        fmt_count("1.005")


def test_cents_conversions_are_exact():
    assert dollars_to_cents("0.5600") == 56
    assert dollars_to_cents(Decimal("12.34")) == 1234
    with pytest.raises(MoneyFormatError):
        dollars_to_cents("0.5650")
    assert cents_to_dollars(7) == Decimal("0.0700")


def test_json_numbers_never_become_floats():
    data = loads(b'{"fee_multiplier": 0.1, "balance": 100}')
    assert data["fee_multiplier"] == Decimal("0.1") and data["balance"] == 100


def test_models_keep_spec_field_names_and_exact_values():
    order = Order.model_validate(
        {
            "order_id": "o1",
            "client_order_id": "c1",
            "ticker": "T",
            "side": "yes",
            "action": "buy",
            "status": "resting",
            "yes_price_dollars": "0.5600",
            "no_price_dollars": "0.4400",
            "fill_count_fp": "1.00",
            "remaining_count_fp": "2.00",
            "initial_count_fp": "3.00",
            "taker_fees_dollars": "0.020000",
            "some_future_field": 1,
        }
    )
    assert order.yes_price_dollars + order.no_price_dollars == Decimal(1)
    assert order.taker_fees_dollars == Decimal("0.02")
    assert order.model_extra == {"some_future_field": 1}
    fill = Fill.model_validate(
        {
            "trade_id": "t",
            "order_id": "o",
            "side": "no",
            "action": "sell",
            "count_fp": "2.50",
            "yes_price_dollars": "0.3300",
        }
    )
    assert fill.count_fp * fill.yes_price_dollars == Decimal("0.825")
    s = Settlement.model_validate(
        {"ticker": "T", "market_result": "yes", "revenue": 300, "yes_count_fp": "3.00"}
    )
    assert s.revenue == 300 and s.yes_count_fp == 3
    m = Market.model_validate({"ticker": "T", "yes_bid_dollars": "", "floor_strike": None})
    assert m.yes_bid_dollars is None and m.floor_strike is None


def test_ws_bodies_parse_to_typed_models():
    t = parse_ws_msg(
        "ticker",
        {"market_ticker": "T", "price_dollars": "0.4800", "yes_bid_dollars": "0.4700"},
    )
    assert t.yes_bid_dollars == Decimal("0.47")
    assert parse_ws_msg("orderbook_delta", {}) is None


# ------------------------------------------------------------------ book


def test_book_applies_snapshot_then_deltas():
    book = OrderBook("T")
    assert not book.valid
    book.apply_snapshot(
        {"market_ticker": "T", "yes_dollars_fp": [["0.5500", "10.00"], ["0.5400", "1.00"]]}
    )
    assert book.valid and book.no == {}
    book.apply_delta({"side": "yes", "price_dollars": "0.5500", "delta_fp": "-10.00"})
    book.apply_delta({"side": "no", "price_dollars": "0.4000", "delta_fp": "2.50"})
    assert book.levels("yes") == [(Decimal("0.54"), Decimal(1))]
    assert book.best_bid("no") == (Decimal("0.40"), Decimal("2.5"))
    assert book.best_ask("yes") == (Decimal("0.60"), Decimal("2.5"))
    assert book.best_ask("no") == (Decimal("0.46"), Decimal(1))


def test_delta_below_zero_invalidates_the_book():
    book = OrderBook("T")
    book.apply_snapshot({"yes_dollars_fp": [["0.5500", "1.00"]]})
    with pytest.raises(BookInconsistent):
        book.apply_delta({"side": "yes", "price_dollars": "0.5500", "delta_fp": "-2.00"})
    assert not book.valid
