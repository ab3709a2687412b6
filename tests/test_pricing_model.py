"""Probability models: monotonic in the strike, the settlement window priced as an average,
fingerprint lookup against a hand-built table, calibration on a simulated month, and
`rec model build` on stored history with the coordinator picking the new version up."""

from __future__ import annotations

import asyncio
import io
import json
import math
import random
import time
from array import array
from datetime import UTC, datetime

import psycopg
import pytest

from app.pricing import rules
from app.pricing.build import History, build, calibrate
from app.pricing.model import Fingerprint, Settlement, lognormal, price_strike, t_eff
from app.pricing.plot import reliability_png
from app.sim.world import Index

HOUR = 3600


def test_probability_falls_as_the_strike_rises_in_both_models():
    sigma = 0.5 / math.sqrt(365 * 86_400)
    model = Fingerprint(1, [1, 61, 3601], [0.0], {
        (0, -1): (500, [-3, -1, 0, 1, 3]), (1, -1): (500, [-3, -1, -0.2, 1, 3]),
        (1, 0): (500, [-3, -1.5, -0.5, 0.5, 3]), (1, 1): (500, [-2, -0.5, 0.2, 1.2, 3])})
    for st in (Settlement(60, 1800), Settlement(60, 30, obs_sum=30 * 100_050.0, obs_n=30)):
        for mom in (None, -0.1, 0.1):
            strikes = [99_000 + 100 * k for k in range(21)]
            for source in ("fingerprint", "lognormal"):
                ps = [price_strike(100_000.0, k, st, mom, sigma, 3600,
                                   model if source == "fingerprint" else None, 200).p
                      for k in strikes]
                assert ps == sorted(ps, reverse=True), (source, st, mom)
                assert ps[0] > ps[-1]


def test_fingerprint_lookup_matches_a_hand_built_table():
    q = [-2.0, -1.0, 0.0, 1.0, 2.0]  # quantiles at p = 0, .25, .5, .75, 1
    model = Fingerprint.from_json(7, {"tau_edges": [1, 61, 3601], "mom_edges": [0.0]}, {
        "cells": {"1:1": {"n": 400, "q": q}, "1:-1": {"n": 900, "q": [x / 2 for x in q]},
                  "1:0": {"n": 10, "q": q}}})
    price, tau = 100_000.0, 600
    st = Settlement(60, tau)

    def strike_for(z: float) -> float:  # the strike whose threshold sits at z
        return price * math.exp(z * math.sqrt(t_eff(tau, 60)))

    # momentum 0.1 -> bucket 1: P(Z > 0.5) = 1 - (2 + 0.5) / 4
    got = model.prob(price, strike_for(0.5), st, 0.1, 200)
    assert got is not None and got.source == "fingerprint" and got.n == 400
    assert got.p == pytest.approx(0.375)
    # momentum unknown -> the any-momentum cell: z 0.5 is its 0.75 quantile
    assert model.prob(price, strike_for(0.5), st, None, 200).p == pytest.approx(0.25)
    # momentum -0.1 -> bucket 0 holds 10 samples: too thin, the lognormal prices it
    assert model.prob(price, strike_for(0.5), st, -0.1, 200) is None
    fallback = price_strike(price, strike_for(0.5), st, -0.1, 1e-4, 3600, model, 200)
    assert fallback.source == "lognormal" and fallback.n == 3600
    # beyond the sample: no more certain than the sample size allows
    assert model.prob(price, strike_for(5), st, 0.1, 200).p == pytest.approx(1 / 402)


def test_inside_the_window_the_observed_average_is_priced_in():
    sigma = 0.5 / math.sqrt(365 * 86_400)
    # 50 of 60 seconds seen averaging 100 100; 10 to come from a price of 100 000
    st = Settlement(60, 10, obs_sum=50 * 100_100.0, obs_n=50)
    assert st.progress == pytest.approx(50 / 60) and st.running_avg == pytest.approx(100_100)
    # the average settles above 100 000 unless the last 10 s average below 99 600: certain
    assert lognormal(100_000.0, 100_000.0, st, sigma, 100).p > 0.999
    # a strike at the spot would be a coin flip; with the window's head start it is not
    assert lognormal(100_000.0, 100_083.0, st, sigma, 100).p == pytest.approx(0.5, abs=0.05)
    done = Settlement(60, 0, obs_sum=60 * 100.0, obs_n=60)
    assert lognormal(1.0, 99.99, done, sigma, 1).p == 1.0
    assert lognormal(1.0, 100.0, done, sigma, 1).p == 0.0  # "above": equal is NO


def test_rules_text_names_the_window_and_index():
    r = rules.parse("If the simple average of the sixty seconds of CF Benchmarks' Bitcoin "
                    "Real-Time Index (BRTI) before 5 PM EDT is above $95,999.99, then the "
                    "market resolves to Yes.")
    assert r == rules.Rules(60, "BRTI")
    with pytest.raises(rules.RulesError):
        rules.parse("If BTC is above 1 at 5pm, Yes.")


def _month(seed: int = 5, days: int = 30) -> History:
    ix = Index("BRTI", 100_000.0, 0.5, random.Random(seed))
    n = days * 86_400
    prices = array("d", [0.0]) * n
    for i in range(n):
        ix.move(0)
        prices[i] = ix.value
    return History(1_764_000_000, prices)


def _png_size(data: bytes) -> tuple[int, int]:
    """The size of a PNG that decodes whole, and has more than its background in it."""
    from PIL import Image

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(data))
    img.load()
    assert len(img.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 3
    return img.size


def test_calibration_on_a_simulated_month_beats_the_baseline_beside_the_lognormal():
    h = _month()
    split = int(len(h) * 0.8)
    params, tables, samples = build(h, split)
    assert samples > 250_000
    report = calibrate(h, Fingerprint.from_json(None, params, tables), split, len(h))
    assert report["predictions"] > 100_000 and report["fingerprint_share"] > 0.9
    assert report["brier"] < 0.25 * 0.5  # far better than a constant 0.5
    assert report["brier_lognormal"] < 0.25 * 0.5
    # on a lognormal world the lognormal is the right model: the fingerprint is close to it
    assert report["brier"] == pytest.approx(report["brier_lognormal"], rel=0.05)
    for b in report["reliability"]:
        if b["n"] > 2000:
            assert abs(b["mean_p"] - b["observed"]) < 0.08, b
    assert _png_size(reliability_png([report["reliability"],
                                      report["reliability_lognormal"]])) == (360, 360)


async def test_rec_model_build_stores_a_version_the_coordinator_picks_up(rec_home_db, tmp_path):
    from app import config
    from app.db.pool import open_pool
    from app.services.coordinator import CoordinatorService

    r = await asyncio.to_thread(rec_home_db.rec, "db", "migrate")
    assert r.returncode == 0, r.stderr
    dsn = rec_home_db.db.dsn
    ix = Index("BRTI", 100_000.0, 0.5, random.Random(9))
    end = int(time.time())
    rows = []
    for ts in range(end - 6 * HOUR, end):
        ix.move(0)
        rows.append((ts, ix.value))
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY index_prices (index_name, ts, price) FROM STDIN") as cp:
            for ts, p in rows:
                cp.write_row(("BRTI", datetime.fromtimestamp(ts, UTC), p))
    out = await asyncio.to_thread(
        rec_home_db.rec, "model", "build", "--index", "BRTI", "--index", "ETHUSD_RTI",
        "--days", "1", "--stride", "1", "--test-stride", "7",
        "--png", str(tmp_path / "rel-INDEX.png"))
    assert out.returncode == 1, out.stderr  # ETH has no history: named, not invented
    assert "ETHUSD_RTI: 0 rows" in out.stderr and "not built" in out.stderr
    assert "fingerprint: 100%" in out.stderr and "calibration: 100%" in out.stderr
    assert "BRTI:" in out.stdout and "Brier: model" in out.stdout
    assert "constant 0.5 0.2500" in out.stdout and "lognormal" in out.stdout
    assert _png_size((tmp_path / "rel-BRTI.png").read_bytes()) == (360, 360)
    with psycopg.connect(dsn) as conn:
        v1, cal, png = conn.execute("SELECT version, calibration, reliability_png FROM "
                                    "prob_models WHERE index_name = 'BRTI'").fetchone()
    assert cal["brier"] < 0.25 and cal["brier_lognormal"] < 0.25 and bytes(png)[:4] == b"\x89PNG"

    settings = config.load(rec_home_db.env)
    svc = CoordinatorService(settings)
    svc.pool = await open_pool(settings, "test")
    try:
        await svc.load_models()
        assert svc.models["BRTI"].version == v1 and svc.models["ETHUSD_RTI"] is None
        out = await asyncio.to_thread(rec_home_db.rec, "model", "build", "--index", "BRTI",
                                      "--days", "1", "--json")
        assert out.returncode == 0, out.stderr
        v2 = json.loads(out.stdout)[0]["version"]
        await svc.load_models()  # the next cycle's check: the new version, no restart
        assert v2 > v1 and svc.models["BRTI"].version == v2
    finally:
        await svc.pool.close()
        svc.executor.shutdown()
