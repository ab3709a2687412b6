"""The backtest report's figures on hand-made trades (every figure derived in a comment),
and its digest: the same record gives the same digest, any change of an order, a fill or
a P&L another."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from app.backtest.calibration import score
from app.backtest.page import write
from app.backtest.report import Trade, build
from app.backtest.sweep import grid, rank, table

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


def test_the_models_brier_score_against_the_recorded_results():
    # A settled YES, B NO, C not settled (left out): (0.8-1)^2 + (0.6-1)^2 + (0.3-0)^2
    # = 0.04 + 0.16 + 0.09 = 0.29 over 3 predictions
    m = score([("A", 0.8), ("A", 0.6), ("B", 0.3), ("C", 0.5)],
              {"A": "yes", "B": "no", "C": ""})
    assert m.scored == 3 and abs(m.brier - 0.29 / 3) < 1e-12
    bins = {b["bin"]: b for b in m.reliability}
    assert bins["0.8-0.9"]["n"] == 1 and bins["0.8-0.9"]["observed"] == 1.0
    assert bins["0.3-0.4"]["observed"] == 0.0 and bins["0.5-0.6"]["n"] == 0  # C left out
    assert "Brier 0.0967 on 3 predictions" in build(TRADES, ORDERS, FILLS, model=m).text()
    assert score([("C", 0.5)], {"C": ""}).brier is None


def test_the_report_page_carries_the_figures_and_four_charts(tmp_path):
    m = score([("A", 0.8), ("B", 0.3)], {"A": "yes", "B": "no"})
    r = build(TRADES, ORDERS, FILLS, model=m)
    assert r.equity == [-50, -30, 0]  # cumulative, in closing order
    page = write(r, tmp_path / "out", "a <window>")
    text = page.read_text()
    assert "a &lt;window&gt;" in text and "max drawdown $0.50" in text and "Brier" in text
    for chart in ("equity", "drawdown", "rules", "reliability"):
        assert f'src="{chart}.png"' in text
        assert (tmp_path / "out" / f"{chart}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_sweeps_grid_and_its_ranking_with_the_overfitting_warning(tmp_path):
    path = tmp_path / "grid.json"
    path.write_text('{"exit_probability_threshold": [0.35, 0.45], '
                    '"auto_entry_min_diff_cents": [1, 2, 3]}')
    combos = grid(str(path))
    assert len(combos) == 2 * 3 and combos[0] == {"exit_probability_threshold": 0.35,
                                                  "auto_entry_min_diff_cents": 1}
    assert len({json.dumps(c, sort_keys=True) for c in combos}) == 6
    loss = build(TRADES[1:2], ORDERS, FILLS)  # -50 cents
    gain = build(TRADES[:1], ORDERS, FILLS)  # +30 cents
    text = table(rank([(combos[0], loss), (combos[1], gain)]))
    first, second = text.splitlines()[1:3]
    assert first.startswith("  1.    $0.30") and "auto_entry_min_diff_cents=2" in first
    assert second.startswith("  2.   -$0.50")
    assert text.splitlines()[-1].startswith("WARNING: a sweep overfits")
    path.write_text('{"exit_probability_threshold": []}')
    with pytest.raises(ValueError):
        grid(str(path))
