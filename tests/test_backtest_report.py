"""The backtest report's figures on hand-made trades (every figure derived in a comment),
and its digest: the same record gives the same digest, any change of an order, a fill or
a P&L another."""

from __future__ import annotations

from decimal import Decimal

from app.backtest.report import Trade, build

TRADES = [
    # id, ticker, entry, exit, pnl cents after fees, fees $, closed (ms)
    Trade(1, "A", "auto", "exit_probability", 30, Decimal("0.0700"), 3_000),
    Trade(2, "B", "auto", "settlement", -50, Decimal("0.0200"), 1_000),
    Trade(3, "A", "manual", "settlement", 20, Decimal("0.0100"), 2_000),
    Trade(4, "C", "auto", "open", None, Decimal("0"), None),  # nothing filled
]
ORDERS = [("rec-1", "A", "yes", "buy", 4000, 2, 2, "executed")]
FILLS = [("rec-1", "A", "yes", "buy", 2, 4000, True, 34, 1_000)]


def test_the_figures_of_a_few_trades():
    r = build(TRADES, ORDERS, FILLS)
    assert (r.trades, r.with_pnl) == (4, 3)
    assert r.pnl_cents == 30 - 50 + 20  # = 0
    assert r.fees == Decimal("0.1000")
    assert (r.wins, r.win_rate) == (2, 2 / 3)
    # in closing order: -50 (t=1s), +20 (2s), +30 (3s): cumulative -50, -30, 0; the high
    # before the fall is the start (0), so the drawdown is 50 cents
    assert r.max_drawdown_cents == 50
    assert r.per_entry == {"auto": -20, "manual": 20}
    assert r.per_exit == {"exit_probability": 30, "settlement": -30}
    text = r.text()
    assert "max drawdown $0.50" in text and "win rate 67%" in text
    assert "P&L by exit settlement: -$0.30" in text


def test_the_digest_follows_orders_fills_and_pnl_only():
    d = build(TRADES, ORDERS, FILLS).digest
    assert build(list(reversed(TRADES)), list(ORDERS), list(FILLS)).digest == d
    other_fill = [(*FILLS[0][:5], 4100, *FILLS[0][6:])]
    assert build(TRADES, ORDERS, other_fill).digest != d
    other_pnl = [Trade(1, "A", "auto", "exit_probability", 31, Decimal("0.0700"), 3_000),
                 *TRADES[1:]]
    assert build(other_pnl, ORDERS, FILLS).digest != d
    assert build(TRADES, [(*ORDERS[0][:7], "canceled")], FILLS).digest != d


def test_the_books_are_checked_against_the_exchanges_ledger():
    assert build(TRADES, ORDERS, FILLS).books_match is None
    assert build(TRADES, ORDERS, FILLS, ledger=(0, Decimal("0.1"))).books_match is True
    r = build(TRADES, ORDERS, FILLS, ledger=(-1, Decimal("0.1")))
    assert r.books_match is False and r.text().count("DIFFER") == 1
