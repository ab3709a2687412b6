"""`rec backtest --sweep GRID`: one backtest per combination of a grid of trading settings
over the same window, in parallel processes (at most the CPU count), ranked by P&L after
fees. GRID is JSON, each trading setting (rec-trade-manager's PUT /settings names) to the
values to try; the other settings come from ``--settings``:

    {"exit_probability_threshold": [0.35, 0.45],
     "auto_entry_min_diff_cents": [1, 3],
     "auto_entry_min_ttc_sec": [120, 600]}

A sweep picks the settings that did best on this window: the ranking overfits it, and the
table says so."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

from app.backtest.report import Report, usd

WARNING = ("a sweep overfits: these settings are ranked on this one window; the best row "
           "is the best in hindsight. Check it on another window before trading it.")


def grid(path: str) -> list[dict]:
    """Every combination of the grid's values, in the grid's order."""
    axes = json.loads(Path(path).read_text())
    if not isinstance(axes, dict) or not all(isinstance(v, list) and v for v in axes.values()):
        raise ValueError(f"{path}: a JSON object of setting -> non-empty list of values")
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def _one(run) -> Report:  # in a worker process of its own
    from app import config
    from app.backtest.run import backtest
    return asyncio.run(backtest(config.load(), run, lambda _: None))


def sweep(run, combos: list[dict], jobs: int | None = None) -> list[tuple[dict, Report]]:
    """Each combination over ``run``'s window (its settings under the combination's), at most
    ``jobs`` (default: the CPU count) at once; best P&L after fees first."""
    runs = [replace(run, trading={**(run.trading or {}), **c}) for c in combos]
    workers = max(1, min(jobs or os.cpu_count() or 1, len(runs)))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        reports = list(pool.map(_one, runs))
    return rank(list(zip(combos, reports, strict=True)))


def rank(results: list[tuple[dict, Report]]) -> list[tuple[dict, Report]]:
    """Best P&L after fees first (ties: the grid's order)."""
    return sorted(results, key=lambda cr: -cr[1].pnl_cents)


def table(ranked: list[tuple[dict, Report]]) -> str:
    lines = [f"sweep of {len(ranked)} settings, best P&L after fees first:"]
    for rank, (combo, r) in enumerate(ranked, 1):
        rate = "-" if r.win_rate is None else f"{r.win_rate:.0%}"
        knobs = ", ".join(f"{k}={v}" for k, v in combo.items())
        lines.append(f"{rank:>3}. {usd(r.pnl_cents):>8}  trades {r.trades:>3}  fees "
                     f"${r.fees:,.4f}  win {rate:>4}  max drawdown "
                     f"{usd(r.max_drawdown_cents)}  digest {r.digest[:12]}  {knobs}")
    lines.append(f"WARNING: {WARNING}")
    return "\n".join(lines)
