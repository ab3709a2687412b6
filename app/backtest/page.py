"""`rec backtest --report DIR`: the report as an HTML page (``DIR/index.html``) with its
charts as PNGs beside it, drawn by matplotlib (Agg, no display, no pyplot state): the
equity curve after fees and its drawdown (trades in closing order), P&L per entry method
and per exit rule, and the pricing model's reliability diagram on the window (app/pricing/
plot.py's, the one `rec model build` draws). ``report.json`` beside them is what the
dashboard lists and shows (app/backtest/reports.py)."""

from __future__ import annotations

import html
import json
from datetime import datetime
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from app.backtest import reports
from app.backtest.report import Report
from app.pricing.plot import reliability_png

SIZE = (6.4, 3.2)  # inches at 100 dpi


def _figure(whole_x: bool = True) -> tuple[Figure, object]:
    fig = Figure(figsize=SIZE, dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if whole_x:  # trades closed: whole numbers
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, ax


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png")


def equity_png(r: Report, path: Path) -> None:
    fig, ax = _figure()
    xs = list(range(len(r.equity) + 1))
    ax.plot(xs, [0, *(c / 100 for c in r.equity)], color="tab:blue", marker=".")
    ax.axhline(0, color="0.75", linewidth=1)
    ax.set(xlabel="trades closed", ylabel="P&L after fees ($)", title="equity")
    _save(fig, path)


def drawdown_png(r: Report, path: Path) -> None:
    fig, ax = _figure()
    peak, dd = 0, [0.0]
    for c in r.equity:
        peak = max(peak, c)
        dd.append((c - peak) / 100)
    ax.fill_between(range(len(dd)), dd, 0, color="tab:red", alpha=0.4, step="post")
    ax.set(xlabel="trades closed", ylabel="below the high ($)", title="drawdown")
    _save(fig, path)


def rules_png(r: Report, path: Path) -> None:
    fig, ax = _figure(whole_x=False)
    bars = [(f"entry {k}", v) for k, v in sorted(r.per_entry.items())] + \
           [(f"exit {k}", v) for k, v in sorted(r.per_exit.items())]
    ax.barh([k for k, _ in bars], [v / 100 for _, v in bars],
            color=["tab:green" if v >= 0 else "tab:red" for _, v in bars])
    ax.axvline(0, color="0.5", linewidth=1)
    ax.set(xlabel="P&L after fees ($)", title="P&L per rule")
    _save(fig, path)


def write(r: Report, out: Path, title: str, notes: tuple[str, ...] = (),
          now: datetime | None = None) -> Path:
    """The page and its charts in ``out`` (created), written at ``now`` (default: now);
    returns the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    equity_png(r, out / "equity.png")
    drawdown_png(r, out / "drawdown.png")
    rules_png(r, out / "rules.png")
    charts = ["equity.png", "drawdown.png", "rules.png"]
    if r.model is not None and r.model.scored:
        (out / "reliability.png").write_bytes(reliability_png([r.model.reliability],
                                                              ("model",)))
        charts.append("reliability.png")
    body = "".join(f"<p class=note>{html.escape(n)}</p>" for n in notes)
    body += f"<pre>{html.escape(r.text())}</pre>"
    body += "".join(f'<img src="{c}" alt="{c[:-4]}">' for c in charts)
    (out / reports.MANIFEST).write_text(json.dumps(reports.manifest(title, r.text(), charts,
                                                                    notes, now)))
    page = out / reports.PAGE
    page.write_text(f"<!doctype html><html><head><meta charset=utf-8><title>"
                    f"{html.escape(title)}</title><style>body{{font-family:sans-serif;"
                    f"margin:2em}} img{{display:block;margin:1em 0}} .note{{color:#a40}}"
                    f"</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")
    return page
