"""The reliability plot of ``rec model build`` as a PNG, drawn with matplotlib (Agg, no
display): probability predicted (x) against frequency observed (y), both 0..1, the grey
diagonal for perfect calibration, one line with dots per model (the model blue, the lognormal
red), each dot's area growing with its bin's count, and a legend."""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

COLOURS = ("tab:blue", "tab:red", "tab:green")


def reliability_png(series: list[list[dict]], names: tuple[str, ...] = ("model", "lognormal"),
                    size: int = 360) -> bytes:
    """``series``: per model, the reliability bins ({"mean_p", "observed", "n"}); a PNG of
    ``size`` x ``size`` pixels."""
    dpi = 100
    fig = Figure(figsize=(size / dpi, size / dpi), dpi=dpi)  # not pyplot: no global state
    FigureCanvasAgg(fig)  # the Agg backend, whatever the environment says
    ax = fig.add_subplot()
    ax.plot((0, 1), (0, 1), color="0.75", linewidth=1)
    for m, bins in enumerate(series):
        pts = [(b["mean_p"], b["observed"], b["n"]) for b in bins if b.get("n")]
        total = sum(n for *_, n in pts) or 1
        colour = COLOURS[m % len(COLOURS)]
        label = names[m] if m < len(names) else f"model {m + 1}"
        ax.plot([p for p, _, _ in pts], [q for _, q, _ in pts], color=colour, linewidth=1.5,
                label=label)
        ax.scatter([p for p, _, _ in pts], [q for _, q, _ in pts], color=colour,
                   s=[8 + 60 * n / total for *_, n in pts], zorder=3)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted", ylabel="observed")
    ax.legend(loc="upper left", fontsize="small", frameon=False)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi)
    return out.getvalue()
