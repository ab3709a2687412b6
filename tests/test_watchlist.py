"""The watchlist filters and the strike choice, on hand-made rows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

from app.services.coordinator import MarketRow, pick_strikes, watch_rows


def _row(p: str, yes_ask: str | None, no_ask: str | None, volume: str | None) -> dict:
    return {"market_ticker": "KXBTCD-X-T1", "series_ticker": "KXBTCD",
            "probability": Decimal(p), "yes_ask": Decimal(yes_ask) if yes_ask else None,
            "no_ask": Decimal(no_ask) if no_ask else None,
            "volume": Decimal(volume) if volume else None}


def test_watchlist_filters_min_volume_probability_floor_max_ask_and_min_diff():
    s = SimpleNamespace(watchlist_min_volume=100, watchlist_min_probability=0.6,
                        watchlist_max_ask=0.95, watchlist_min_diff_cents=3)
    # YES at 0.90 probability for 0.85: +5 cents; NO at 0.10 for 0.16: below the floor
    assert [w[:2] for w in watch_rows(_row("0.90", "0.85", "0.16", "500"), s)] == [
        ("KXBTCD-X-T1", "yes")]
    assert watch_rows(_row("0.90", "0.85", "0.16", "50"), s) == []  # too little volume
    assert watch_rows(_row("0.90", "0.85", "0.16", None), s) == []  # volume unknown
    assert watch_rows(_row("0.90", "0.88", "0.16", "500"), s) == []  # +2 cents < 3
    assert watch_rows(_row("0.99", "0.96", "0.05", "500"), s) == []  # ask above 0.95
    assert watch_rows(_row("0.90", None, "0.16", "500"), s) == []  # no offer: no entry
    yes, = watch_rows(_row("0.20", "0.30", "0.70", "500"), s)  # NO: 0.80 for 0.70
    assert yes[1] == "no" and yes[3] == Decimal("0.800000") and yes[5] == Decimal("10.0000")


def test_strikes_around_the_price_ten_each_side():
    close = datetime(2026, 1, 1, tzinfo=UTC)
    markets = [MarketRow(f"T{k}", "E", close, 1000.0 + 10 * k, "") for k in range(40)]
    chosen = pick_strikes(markets, 1195.0, 10)
    assert [m.strike for m in chosen] == [1000.0 + 10 * k for k in range(10, 30)]
    assert len(pick_strikes(markets, 1005.0, 10)) == 11  # only one strike below
