"""Pure logic of the client: base URLs by account mode, exact money, the local book."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.kalshi.book import BookInconsistent, OrderBook
from app.kalshi.models import (
    Fill,
    Market,
    MarketPosition,
    MoneyFormatError,
    Order,
    Settlement,
    Trade,
    cents_to_dollars,
    dollars_to_cents,
    fmt_count,
    fmt_dollars,
    loads,
    parse_ws_msg,
    to_decimal,
)
from app.kalshi.urls import UrlConfigError, resolve

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


def test_demo_and_prod_use_kalshis_dedicated_trade_api_hosts():
    demo = resolve("demo")
    assert demo.rest_base == "https://external-api.demo.kalshi.co/trade-api/v2"
    assert demo.ws_url == "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2"
    prod = resolve("PROD")
    assert prod.rest_base == "https://external-api.kalshi.com/trade-api/v2"
    assert prod.ws_url == "wss://external-api-ws.kalshi.com/trade-api/ws/v2"


def test_the_hosts_are_the_ones_the_specs_list():
    import yaml

    from app.kalshi import urls

    root = Path(__file__).parent / "specs" / "kalshi"
    doc = yaml.safe_load((root / "openapi.yaml").read_text())
    if tuple(int(x) for x in doc["info"]["version"].split(".")) < (3, 31):
        pytest.skip(f"tests/specs/kalshi is still v{doc['info']['version']} (sim-v2 brings 3.31)")
    servers = [s["url"] for s in doc["servers"]]
    for host in (urls.PROD_HOST, urls.DEMO_HOST, urls.LEGACY_PROD_HOST, urls.LEGACY_DEMO_HOST):
        assert f"https://{host}/trade-api/v2" in servers
    ws = yaml.safe_load((root / "asyncapi.yaml").read_text())["servers"]["production"]
    assert ws["host"] == urls.PROD_WS_HOST and ws["pathname"] == urls.WS_PATH


@pytest.mark.parametrize(
    "host", ["api.elections.kalshi.com", "demo-api.kalshi.co"]
)
def test_the_older_shared_hosts_stay_accepted_as_overrides(host):
    ep = resolve(
        "prod",
        base_url=f"https://{host}/trade-api/v2",
        ws_url=f"wss://{host}/trade-api/ws/v2",
    )
    assert ep.rest_base == f"https://{host}/trade-api/v2"
    assert ep.ws_url == f"wss://{host}/trade-api/ws/v2"


def test_overrides_win_over_the_mode():
    ep = resolve(
        "prod",
        base_url="http://127.0.0.1:9999/trade-api/v2/",
        ws_url="ws://127.0.0.1:9999/trade-api/ws/v2",
    )
    assert ep.rest_base == "http://127.0.0.1:9999/trade-api/v2"
    assert ep.ws_url == "ws://127.0.0.1:9999/trade-api/ws/v2"
    # an empty override means "not set"
    assert resolve("demo", base_url="", ws_url="").rest_base.startswith("https://external-api.demo")


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"mode": "bogus"}, "account_mode"),  # (paper is a mode: docs/paper.md)
        ({"mode": "sim", "base_url": "ftp://x/trade-api/v2"}, "kalshi_base_url"),
        ({"mode": "sim", "ws_url": "http://x/trade-api/ws/v2"}, "kalshi_ws_url"),
        ({"mode": "sim", "base_url": "http://x/trade-api/v2?a=1"}, "kalshi_base_url"),
    ],
)
def test_bad_mode_or_override_names_the_setting(kw, needle):
    mode = kw.pop("mode")
    with pytest.raises(UrlConfigError, match=needle):
        resolve(mode, **kw)


# ------------------------------------------------------------------ app.exchange_client


def _settings(tmp_path, creds: dict[str, str] | None = None, **env: str):
    from app import config

    cred_dir = tmp_path / "creds"
    cred_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (creds or {}).items():
        (cred_dir / name).write_text(text)
    environ = {
        "REC_CONFIG_DIR": str(tmp_path),
        "REC_CREDENTIALS_PATH": str(cred_dir),
        "REC_ACCOUNT_MODE": "sim",
        "REC_EXCHANGE_SIM_PORT": "18091",
        **env,
    }
    return config.load(environ)


def test_exchange_endpoints_follow_the_settings(tmp_path):
    from app import exchange_client

    assert exchange_client.endpoints(_settings(tmp_path)).rest_base == "http://127.0.0.1:18091/trade-api/v2"
    over = _settings(tmp_path, REC_KALSHI_WS_URL="ws://127.0.0.1:1/trade-api/ws/v2")
    assert exchange_client.endpoints(over).ws_url == "ws://127.0.0.1:1/trade-api/ws/v2"


def test_exchange_signer_from_the_credential_files(tmp_path):
    from app import exchange_client
    from app.kalshi import signing

    key = signing.generate_private_key()
    s = _settings(
        tmp_path,
        {"kalshi_key_id": "key-1\n", "kalshi_private_key": signing.private_pem(key).decode()},
    )
    sig = exchange_client.signer(s)
    assert sig.key_id == "key-1"
    h = sig.headers("GET", "/trade-api/v2/portfolio/balance", now_ms=1)
    assert signing.verify(key.public_key(), h[signing.HEADER_SIGNATURE], 1, "GET",
                          "/trade-api/v2/portfolio/balance")
    rest = exchange_client.rest_client(s)
    assert rest.signer is not None and rest.signer.key_id == "key-1"
    ws = exchange_client.ws_client(s, compression=None)
    assert ws.url == "ws://127.0.0.1:18091/trade-api/ws/v2" and ws.signer is not None
    assert rest.base_url.endswith(":18091/trade-api/v2")


def test_exchange_signer_names_the_missing_credential(tmp_path):
    from app import exchange_client

    s = _settings(tmp_path)
    with pytest.raises(exchange_client.CredentialsError,
                       match="kalshi_key_id and kalshi_private_key"):
        exchange_client.signer(s)
    assert exchange_client.optional_signer(s) is None  # sim: public reads need no key
    bad = _settings(tmp_path / "b", {"kalshi_key_id": "k", "kalshi_private_key": "not a pem"})
    with pytest.raises(exchange_client.CredentialsError, match="kalshi_private_key") as info:
        exchange_client.signer(bad)
    assert "not a pem" not in str(info.value)


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
            "outcome_side": "no",
            "book_side": "ask",
            "status": "resting",
            "yes_price_dollars": "0.5600",
            "no_price_dollars": "0.4400",
            "fill_count_fp": "1.00",
            "remaining_count_fp": "2.00",
            "initial_count_fp": "3.00",
            "taker_fees_dollars": "0.020000",
            "exchange_index": 2,
            "some_future_field": 1,
        }
    )
    assert (order.outcome_side, order.book_side, order.exchange_index) == ("no", "ask", 2)
    assert order.yes_price_dollars + order.no_price_dollars == Decimal(1)
    assert order.taker_fees_dollars == Decimal("0.02")
    assert order.model_extra == {"some_future_field": 1}
    fill = Fill.model_validate(
        {
            "fill_id": "f",
            "trade_id": "f",
            "order_id": "o",
            "ticker": "T",
            "outcome_side": "yes",
            "book_side": "bid",
            "count_fp": "2.50",
            "yes_price_dollars": "0.3300",
            "exchange_index": 0,
        }
    )
    assert fill.count_fp * fill.yes_price_dollars == Decimal("0.825")
    assert fill.exchange_index == 0
    s = Settlement.model_validate(
        {"ticker": "T", "market_result": "yes", "revenue": 300, "yes_count_fp": "3.00"}
    )
    assert s.revenue == 300 and s.yes_count_fp == 3
    m = Market.model_validate(
        {
            "ticker": "T",
            "yes_bid_dollars": "",
            "floor_strike": None,
            "settlement_bounds_type": "floor",
            "settlement_floor_dollars": "0.0500",
            "exchange_index": 1,
        }
    )
    assert m.yes_bid_dollars is None and m.floor_strike is None
    assert (m.settlement_bounds_type, m.settlement_floor_dollars, m.exchange_index) == (
        "floor",
        Decimal("0.05"),
        1,
    )
    pos = MarketPosition.model_validate(
        {"ticker": "T", "position_fp": "-3.00", "exchange_index": 0}
    )
    assert pos.position_fp == -3 and pos.exchange_index == 0


def test_deprecated_direction_fields_are_not_part_of_the_models():
    for model in (Order, Fill):
        assert {"outcome_side", "book_side"} <= set(model.model_fields)
        assert not {"side", "action", "is_yes"} & set(model.model_fields)
    assert {"taker_outcome_side", "taker_book_side"} <= set(Trade.model_fields)
    assert "taker_side" not in Trade.model_fields
    assert not {"tick_size", "response_price_units"} & set(Market.model_fields)
    assert Market.model_fields["settlement_bounds_type"].is_required()
    for model in (Order, Fill, MarketPosition, Market):
        assert "exchange_index" in model.model_fields
    # a v3.31 order without the deprecated fields parses; one without outcome_side does not
    with pytest.raises(ValidationError):
        Order.model_validate(
            {"order_id": "o", "ticker": "T", "status": "resting", "side": "yes", "action": "buy"}
        )
    with pytest.raises(ValidationError):
        Market.model_validate({"ticker": "T"})


def test_v3_31_trade_parses_with_book_and_outcome_sides():
    t = Trade.model_validate(
        {
            "trade_id": "t1",
            "ticker": "T",
            "count_fp": "1.00",
            "yes_price_dollars": "0.4000",
            "no_price_dollars": "0.6000",
            "taker_outcome_side": "no",
            "taker_book_side": "ask",
            "is_block_trade": False,
            "created_time": "2026-11-26T08:00:00Z",
        }
    )
    assert (t.taker_outcome_side, t.taker_book_side, t.is_block_trade) == ("no", "ask", False)


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
