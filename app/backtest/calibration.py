"""The pricing model on a backtest's window: rec-coordinator's P(YES) of every market in
its strike table (``strike_table.probability``), taken once a simulated minute while the
replay runs, scored against the market's recorded result (YES = 1) with the Brier score and
the reliability bins of ``rec model build`` (app/pricing/build.py's Score). A market
without a recorded result is left out."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.pricing.build import Score

SAMPLE_SQL = "SELECT market_ticker, probability FROM strike_table ORDER BY market_ticker"
EVERY_MS = 60_000


@dataclass
class Calibration:
    predictions: list[tuple[str, float]] = field(default_factory=list)  # (ticker, P(YES))
    brier: float | None = None
    scored: int = 0
    reliability: list[dict] = field(default_factory=list)

    def text(self) -> str:
        if self.brier is None:
            return (f"model: no prediction scored ({len(self.predictions)} taken, none on a "
                    "market with a recorded result)")
        return (f"model: Brier {self.brier:.4f} on {self.scored} predictions (P(YES) of each "
                "market in the strike table once a simulated minute, against the recorded "
                "results; constant 0.5 scores 0.2500)")


async def sample(conn) -> list[tuple[str, float]]:
    rows = await (await conn.execute(SAMPLE_SQL)).fetchall()
    return [(t, float(p)) for t, p in rows]


def score(predictions: list[tuple[str, float]], results: dict[str, str | None]) -> Calibration:
    """``results``: each market's recorded result ("yes", "no", or None: not settled)."""
    s = Score()
    for ticker, p in predictions:
        result = results.get(ticker)
        if result in ("yes", "no"):
            s.add(p, 1.0 if result == "yes" else 0.0)
    return Calibration(predictions, s.brier, s.n, s.reliability())
