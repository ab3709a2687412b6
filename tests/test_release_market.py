"""The market Molecule's `release` scenario trades in (molecule/release/files/pick_market.py),
chosen by the simulator's own schedule over its REST API. Before, the scenario asked the
database for an active market closing more than 5 minutes ahead by the wall clock: in the last
minutes before the hour the simulator has none (each hourly event opens at the hour before its
close), so a run there waited in vain and failed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from testkit.sim import START_MS
from tests import test_sim_fixtures as fx
from tests.test_release import load

SCRIPT = Path(__file__).resolve().parent.parent / "molecule/release/files/pick_market.py"
HOUR = 3600
START = START_MS / 1000  # 16:00 UTC: the event closing at 17:00 has just opened


@pytest.fixture(scope="module")
def pm():
    return load(SCRIPT, "pick_market")


async def choose(pm, sim: fx.SimHandle, now: float, margin: float = 120):
    # the script's HTTP is blocking; the simulator serves on this event loop
    return await asyncio.to_thread(pm.choose, sim.base + fx.PREFIX, "KXBTCD", now, margin)


def close_of(sim: fx.SimHandle, ticker: str) -> float:
    return sim.sim.exchange.markets[ticker].close_ms / 1000


async def test_mid_hour_it_picks_an_open_market_of_this_hour(pm, tmp_path):
    sim, server = await fx.start_sim(tmp_path, start_ms=START_MS + 10 * 60_000)
    try:
        ticker, opens = await choose(pm, sim, START + 10 * 60)
        assert opens is None
        assert ticker in sim.open_tickers("KXBTCD")
        assert close_of(sim, ticker) == START + HOUR
    finally:
        await fx.stop_sim(sim, server)


async def test_just_before_the_hour_it_waits_for_the_next_event_then_picks_it(pm, tmp_path):
    before = START + HOUR - 90  # 16:58:30: every open market closes in 90 s, inside the margin
    sim, server = await fx.start_sim(tmp_path, start_ms=int(before * 1000))
    try:
        # open markets there are, but none closes 5 minutes ahead (the old rule found nothing)
        assert sim.open_tickers("KXBTCD")
        assert not [t for t in sim.open_tickers("KXBTCD") if close_of(sim, t) > before + 300]
        ticker, opens = await choose(pm, sim, before)
        assert (ticker, opens) == (None, START + HOUR)  # the next hour's event opens at 17:00
        await sim.control("advance", seconds=95)
        ticker, opens = await choose(pm, sim, before + 95)
        assert opens is None
        assert ticker in sim.open_tickers("KXBTCD")
        assert close_of(sim, ticker) == START + 2 * HOUR
    finally:
        await fx.stop_sim(sim, server)
