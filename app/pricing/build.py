"""Build a fingerprint model from per-second index history and score it on held-out history.

History is a dense per-second array (NaN where no value was stored). Observations are taken
every ``stride`` seconds (a stride coprime with 3600 visits every time-to-close): at second
t with the next hourly close C, tau = C - t, the future part of the settlement window
(its last min(window, tau) seconds) must be fully present; z = ln(A / P) / sqrt(T_eff) goes
to the cell (tau bucket, momentum bucket) and to the cell of its tau bucket with any
momentum. Momentum uses the feed's own formula (:mod:`app.pricing.index`), so the model
sees the number the coordinator will look it up with.

The held-out part (the last ``holdout`` of the span) is priced at every ``test_stride``
seconds for strikes spaced ``strike_step_pct`` around the price, with the observed part of
the window when inside it, exactly as the coordinator prices; outcomes are the real
settlement averages. Scores: Brier of the coordinator's choice (fingerprint, lognormal where
a cell is thin), of the lognormal alone, of a constant 0.5; reliability by probability decile.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from app.pricing.index import DELTA_MINUTES, DELTA_TOLERANCE_SEC, momentum, pct
from app.pricing.model import Fingerprint, Settlement, lognormal, t_eff

NAN = float("nan")
TAU_EDGES = [1, 5, 10, 20, 30, 45, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1200, 1800,
             2400, 3000, 3601]
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class History:
    t0: int  # unix second of element 0
    prices: array  # 'd', NaN where missing
    psum: array = field(init=False)  # prefix sums of present prices (psum[i] = sum of [0, i))
    pcnt: array = field(init=False)
    rsq: array = field(init=False)  # prefix sums of squared 1 s log returns
    rcnt: array = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.prices)
        self.psum, self.pcnt = array("d", [0.0]) * (n + 1), array("l", [0]) * (n + 1)
        self.rsq, self.rcnt = array("d", [0.0]) * (n + 1), array("l", [0]) * (n + 1)
        s = c = rs = rc = 0
        prev = NAN
        for i, p in enumerate(self.prices):
            if p == p:
                s += p
                c += 1
                if prev == prev:
                    r = math.log(p / prev)
                    rs += r * r
                    rc += 1
            prev = p
            self.psum[i + 1], self.pcnt[i + 1] = s, c
            self.rsq[i + 1], self.rcnt[i + 1] = rs, rc

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, float]]) -> History:
        rows = sorted(rows)
        if not rows:
            raise ValueError("no history")
        t0 = rows[0][0]
        prices = array("d", [NAN]) * (rows[-1][0] - t0 + 1)
        for ts, p in rows:
            prices[ts - t0] = p
        return cls(t0, prices)

    def __len__(self) -> int:
        return len(self.prices)

    def at_or_before(self, i: int) -> float | None:
        for j in range(i, max(-1, i - DELTA_TOLERANCE_SEC - 1), -1):
            p = self.prices[j]
            if p == p:
                return p
        return None

    def momentum_at(self, i: int) -> float | None:
        p = self.prices[i]
        deltas = {m: pct(p, self.at_or_before(i - 60 * m)) if i - 60 * m >= 0 else None
                  for m in DELTA_MINUTES}
        return momentum(deltas)

    def window(self, lo: int, hi: int) -> tuple[float, int]:
        """Sum and count of present prices in [lo, hi)."""
        lo, hi = max(0, lo), min(len(self.prices), hi)
        if hi <= lo:
            return 0.0, 0
        return self.psum[hi] - self.psum[lo], self.pcnt[hi] - self.pcnt[lo]

    def sigma(self, i: int, lookback: int) -> tuple[float | None, int]:
        lo = max(0, i - lookback + 1)
        n = self.rcnt[i + 1] - self.rcnt[lo + 1]
        if n <= 0:
            return None, 0
        return math.sqrt((self.rsq[i + 1] - self.rsq[lo + 1]) / n), n


@dataclass(frozen=True)
class Obs:
    i: int
    tau: int
    future: int  # f
    before: int  # a: seconds until the window opens


def observation(h: History, i: int, window: int) -> Obs | None:
    t = h.t0 + i
    close = (t // 3600 + 1) * 3600
    tau = close - t
    f = min(window, tau)
    a = tau - f
    if i + tau >= len(h) or h.prices[i] != h.prices[i]:
        return None
    _, n = h.window(i + a + 1, i + tau + 1)
    if n != f:
        return None  # a gap in the settlement window: the outcome is not known exactly
    return Obs(i, tau, f, a)


def build(h: History, end: int, window: int = 60, stride: int = 7, mom_buckets: int = 5,
          quantiles: int = 201, progress: Progress = _quiet) -> tuple[dict, dict, int]:
    """(params, tables, samples) of a fingerprint model from h.prices[:end]."""
    start = 30 * 60 + DELTA_TOLERANCE_SEC
    tau_edges = TAU_EDGES
    samples: list[tuple[int, float | None, float]] = []
    total = max(1, (end - start) // stride)
    report_every = max(1, total // 10)
    for k, i in enumerate(range(start, end, stride)):
        if k % report_every == 0:
            progress(f"fingerprint: {k * 100 // total}% ({len(samples):,} samples)")
        o = observation(h, i, window)
        if o is None or o.i + o.tau >= end:
            continue
        a_sum, _ = h.window(i + o.before + 1, i + o.tau + 1)
        z = math.log(a_sum / o.future / h.prices[i]) / math.sqrt(t_eff(o.tau, window))
        ti = _bucket(tau_edges, o.tau)
        if ti is not None:
            samples.append((ti, h.momentum_at(i), z))
    moms = sorted(m for _, m, _ in samples if m is not None)
    mom_edges = [moms[len(moms) * j // mom_buckets] for j in range(1, mom_buckets)] \
        if len(moms) >= mom_buckets else []
    probe = Fingerprint(None, tau_edges, mom_edges, {})
    groups: dict[tuple[int, int], list[float]] = {}
    for ti, m, z in samples:
        groups.setdefault((ti, -1), []).append(z)
        if m is not None:
            groups.setdefault((ti, probe.mom_bucket(m)), []).append(z)
    cells = {}
    for (ti, mi), zs in groups.items():
        zs.sort()
        last = len(zs) - 1
        q = [round(zs[last * j // (quantiles - 1)], 6) for j in range(quantiles)]
        cells[f"{ti}:{mi}"] = {"n": len(zs), "q": q}
    progress(f"fingerprint: 100% ({len(samples):,} samples, {len(cells)} cells)")
    params = {"tau_edges": tau_edges, "mom_edges": mom_edges, "window": window,
              "stride": stride, "quantiles": quantiles}
    return params, {"cells": cells}, len(samples)


def _bucket(edges: list[int], tau: int) -> int | None:
    for j in range(len(edges) - 1):
        if edges[j] <= tau < edges[j + 1]:
            return j
    return None


@dataclass
class Score:
    n: int = 0
    sq: float = 0.0
    bins: list[list[float]] = field(default_factory=lambda: [[0.0, 0.0, 0] for _ in range(10)])

    def add(self, p: float, y: float) -> None:
        self.n += 1
        self.sq += (p - y) ** 2
        b = self.bins[min(9, int(p * 10))]
        b[0] += p
        b[1] += y
        b[2] += 1

    @property
    def brier(self) -> float | None:
        return self.sq / self.n if self.n else None

    def reliability(self) -> list[dict]:
        return [{"bin": f"{j / 10:.1f}-{(j + 1) / 10:.1f}", "n": int(b[2]),
                 "mean_p": b[0] / b[2] if b[2] else None,
                 "observed": b[1] / b[2] if b[2] else None} for j, b in enumerate(self.bins)]


def calibrate(h: History, model: Fingerprint, start: int, end: int, window: int = 60,
              test_stride: int = 61, strikes_each_side: int = 10,
              strike_step_pct: float = 0.25, vol_lookback: int = 3600, min_vol_samples: int = 60,
              min_samples: int = 200, progress: Progress = _quiet) -> dict[str, Any]:
    """Brier scores and reliability on h.prices[start:end] (held out from the build)."""
    system, ln, fp_only, ln_same = Score(), Score(), Score(), Score()
    fp_used = points = 0
    total = max(1, (end - start) // test_stride)
    report_every = max(1, total // 10)
    for k, i in enumerate(range(start, end, test_stride)):
        if k % report_every == 0:
            progress(f"calibration: {k * 100 // total}%")
        o = observation(h, i, window)
        if o is None:
            continue
        sigma, sn = h.sigma(i, vol_lookback)
        if sigma is None or sn < min_vol_samples:
            continue
        p_now = h.prices[i]
        close_i = i + o.tau
        s_sum, s_n = h.window(close_i - window + 1, close_i + 1)
        settle = s_sum / s_n
        obs_sum, obs_n = h.window(close_i - window + 1, i + 1) if o.tau < window else (0.0, 0)
        st = Settlement(window, o.tau, obs_sum, obs_n)
        mom = h.momentum_at(i)
        points += 1
        for j in range(-strikes_each_side, strikes_each_side):
            strike = p_now * (1 + (j + 0.5) * strike_step_pct / 100)
            y = 1.0 if settle > strike else 0.0
            lp = lognormal(p_now, strike, st, sigma, sn).p
            ln.add(lp, y)
            fp = model.prob(p_now, strike, st, mom, min_samples)
            if fp is not None:
                fp_used += 1
                fp_only.add(fp.p, y)
                ln_same.add(lp, y)
            system.add(fp.p if fp is not None else lp, y)
    progress("calibration: 100%")
    return {
        "points": points, "predictions": system.n, "fingerprint_share":
            fp_used / system.n if system.n else 0.0,
        "brier": system.brier, "brier_lognormal": ln.brier, "brier_baseline_0_5": 0.25,
        "brier_fingerprint_cells_only": fp_only.brier,
        "brier_lognormal_same_cells": ln_same.brier,
        "reliability": system.reliability(), "reliability_lognormal": ln.reliability(),
        "strike_step_pct": strike_step_pct, "test_stride": test_stride,
    }
