"""Probability that an hourly market settles YES: P(settlement average > strike).

The settlement value is the simple average of the index over the ``window`` seconds before
close, (close - window, close]. At time-to-close ``tau`` the window has an observed part
(``obs_n`` values summing to ``obs_sum``, known once ``tau < window``) and a future part of
``f = min(window, tau)`` values whose average A is uncertain. YES iff

    (obs_sum + f * A) / (obs_n + f) > K   <=>   A > X = ((obs_n + f) K - obs_sum) / f

so both models price ``P(A > X)`` given the index price P now:

* **lognormal**: ln(A / P) ~ N(-s^2/2, s^2) with s^2 = sigma^2 * T_eff, sigma the realised
  per-second volatility and T_eff the variance time of an average of a Brownian path over
  the future points: a + (f + 1)(2f + 1) / (6 f), a = max(0, tau - window) seconds before
  the window opens.
* **fingerprint**: the empirical distribution of z = ln(A / P) / sqrt(T_eff), measured on
  stored history, by time-to-close bucket x momentum bucket (:mod:`app.pricing.build`).
  Normalising by sqrt(T_eff) makes one cell serve every tau in its bucket; the shape (fat
  tails, momentum's drift) is the data's own.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

SQRT2 = math.sqrt(2.0)


def phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / SQRT2))


def t_eff(tau: float, window: int) -> float:
    """Variance time (seconds) of ln(average of the window's future points / price now)."""
    f = int(min(window, tau))
    if f <= 0:
        return 0.0
    a = max(0.0, tau - window)
    return a + (f + 1) * (2 * f + 1) / (6 * f)


@dataclass(frozen=True)
class Settlement:
    """The settlement window as seen now."""

    window: int  # seconds averaged
    tau: int  # seconds to close
    obs_sum: float = 0.0  # observed values of the window so far
    obs_n: int = 0

    @property
    def future(self) -> int:
        return max(0, min(self.window, self.tau))

    @property
    def progress(self) -> float:
        return min(1.0, max(0.0, (self.window - self.future) / self.window))

    @property
    def running_avg(self) -> float | None:
        return self.obs_sum / self.obs_n if self.obs_n else None

    def threshold(self, strike: float) -> float | None:
        """X: the future average above which the market settles YES (None: nothing left)."""
        f = self.future
        if f == 0:
            return None
        return ((self.obs_n + f) * strike - self.obs_sum) / f


@dataclass(frozen=True)
class Prob:
    p: float  # P(YES)
    source: str  # fingerprint | lognormal
    n: int  # sample size behind it (fingerprint cell count; lognormal: returns in sigma)


def decided(price: float, strike: float, st: Settlement) -> float | None:
    """1/0 once the outcome is certain (no future points, or the threshold out of reach)."""
    x = st.threshold(strike)
    if x is None:
        avg = st.running_avg if st.running_avg is not None else price
        return 1.0 if avg > strike else 0.0
    if x <= 0:
        return 1.0
    return None


def lognormal(price: float, strike: float, st: Settlement, sigma: float, n: int) -> Prob:
    d = decided(price, strike, st)
    if d is not None:
        return Prob(d, "lognormal", n)
    x = st.threshold(strike)
    assert x is not None
    s = sigma * math.sqrt(t_eff(st.tau, st.window))
    if s <= 0:
        return Prob(1.0 if price > x else 0.0, "lognormal", n)
    return Prob(phi((math.log(price / x) - 0.5 * s * s) / s), "lognormal", n)


@dataclass
class Fingerprint:
    """A built model: z quantiles per (tau bucket, momentum bucket); momentum bucket -1 is
    every momentum (used when momentum is unknown)."""

    version: int | None
    tau_edges: list[int]  # bucket i: tau_edges[i] <= tau < tau_edges[i + 1]
    mom_edges: list[float]  # inner edges: bucket j: between mom_edges[j-1] and mom_edges[j]
    cells: dict[tuple[int, int], tuple[int, list[float]]]  # -> (count, sorted quantiles)

    @classmethod
    def from_json(cls, version: int | None, params: dict[str, Any],
                  tables: dict[str, Any]) -> Fingerprint:
        cells = {}
        for key, cell in tables["cells"].items():
            ti, mi = (int(x) for x in key.split(":"))
            cells[(ti, mi)] = (int(cell["n"]), [float(q) for q in cell["q"]])
        return cls(version, [int(x) for x in params["tau_edges"]],
                   [float(x) for x in params["mom_edges"]], cells)

    def tau_bucket(self, tau: float) -> int | None:
        i = bisect.bisect_right(self.tau_edges, tau) - 1
        return i if 0 <= i < len(self.tau_edges) - 1 else None

    def mom_bucket(self, momentum: float | None) -> int:
        return -1 if momentum is None else bisect.bisect_right(self.mom_edges, momentum)

    def cell(self, tau: float, momentum: float | None) -> tuple[int, list[float]] | None:
        ti = self.tau_bucket(tau)
        if ti is None:
            return None
        return self.cells.get((ti, self.mom_bucket(momentum)))

    def prob(self, price: float, strike: float, st: Settlement, momentum: float | None,
             min_samples: int) -> Prob | None:
        """P(YES) from the cell, or None when the cell is missing or too thin."""
        cell = self.cell(st.tau, momentum)
        if cell is None or cell[0] < min_samples:
            return None
        n, q = cell
        d = decided(price, strike, st)
        if d is not None:
            return Prob(d, "fingerprint", n)
        x = st.threshold(strike)
        assert x is not None
        z = math.log(x / price) / math.sqrt(t_eff(st.tau, st.window))
        p = 1.0 - quantile_cdf(q, z)
        lo = 1.0 / (n + 2)  # no more certain than the sample can say
        return Prob(min(1.0 - lo, max(lo, p)), "fingerprint", n)


def quantile_cdf(q: list[float], z: float) -> float:
    """P(Z <= z) from evenly spaced quantiles q[0] (p=0) .. q[-1] (p=1), interpolated."""
    m = len(q) - 1
    if z < q[0]:
        return 0.0
    if z >= q[-1]:
        return 1.0
    i = bisect.bisect_right(q, z) - 1
    lo, hi = q[i], q[i + 1]
    frac = 0.0 if hi <= lo else (z - lo) / (hi - lo)
    return (i + frac) / m


def price_strike(price: float, strike: float, st: Settlement, momentum: float | None,
                 sigma: float | None, sigma_n: int, model: Fingerprint | None,
                 min_samples: int) -> Prob | None:
    """The fingerprint when it has enough samples, else the lognormal; None when neither
    can price it (no model cell and no realised volatility)."""
    if model is not None:
        got = model.prob(price, strike, st, momentum, min_samples)
        if got is not None:
            return got
    if sigma is None:
        return None
    return lognormal(price, strike, st, sigma, sigma_n)
