"""The simulated world: one seed, one path; the speed factor; the hourly schedule."""

from __future__ import annotations

import asyncio

import httpx

from app.sim.world import World, WorldParams
from testkit.sim import START_MS
from tests import test_sim_fixtures as fx


def _fingerprint(w: World) -> tuple:
    ex = w.exchange
    books = tuple((t, tuple(b.depth("yes")), tuple(b.depth("no"))) for t, b in ex.books.items())
    trades = tuple((t.trade_id, t.ticker, t.count, t.yes_price, t.ts_ms) for t in ex.trades)
    markets = tuple((m.ticker, m.status, m.result, m.expiration_value)
                    for m in ex.markets.values())
    return tuple(w.price_history), books, trades, markets


def test_same_seed_same_world_different_seed_different_world():
    a = World(WorldParams(seed=11, start_ms=START_MS))
    b = World(WorldParams(seed=11, start_ms=START_MS))
    c = World(WorldParams(seed=12, start_ms=START_MS))
    for w in (a, b):
        w.advance(3600 + 61)
    c.advance(600)
    assert _fingerprint(a) == _fingerprint(b)
    assert list(a.price_history)[:600] != list(c.price_history)
    assert len(a.exchange.trades) > 100
    settled = [m for m in a.exchange.markets.values() if m.status == "finalized"]
    assert len(settled) == 32  # the first hourly event of each series settled
    # exactly one range bucket of an event settles YES when the value is inside the grid
    for ev in a.exchange.events.values():
        ms = [a.exchange.markets[t] for t in ev.markets]
        if ev.series_ticker == "KXBTC" and all(m.status == "finalized" for m in ms):
            value = float(ms[0].expiration_value)
            inside = ms[0].floor_strike <= value <= ms[-1].cap_strike
            assert sum(m.result == "yes" for m in ms) == (1 if inside else 0)


async def test_two_simulators_with_one_seed_serve_the_same_market(tmp_path):
    h1, s1 = await fx.start_sim(tmp_path / "one", seed=5)
    h2, s2 = await fx.start_sim(tmp_path / "two", seed=5)
    try:
        for h in (h1, h2):
            await h.control("advance", seconds=900)
        async with httpx.AsyncClient(timeout=10) as c:
            views = []
            for h in (h1, h2):
                trades = (await c.get(h.base + "/trade-api/v2/markets/trades",
                                      params={"limit": 1000})).json()
                markets = (await c.get(h.base + "/trade-api/v2/markets",
                                       params={"limit": 1000})).json()
                views.append((trades, markets))
        assert views[0] == views[1]
        assert len(views[0][0]["trades"]) > 10
    finally:
        await fx.stop_sim(h1, s1)
        await fx.stop_sim(h2, s2)


async def test_speed_factor_runs_the_clock_faster(tmp_path):
    handle, server = await fx.start_sim(tmp_path, speed=600.0)
    try:
        w = handle.sim.world
        loop = asyncio.get_running_loop()
        t0, sim0 = loop.time(), w.now_ms
        while w.now_ms - sim0 < 300_000:  # wait for 300 simulated seconds (deadline 20 s)
            assert loop.time() - t0 < 20, "the simulated clock does not move"
            await asyncio.sleep(0.02)
        wall, simulated = loop.time() - t0, (w.now_ms - sim0) / 1000
        # never faster than 600x (one step of slack), and 300 s took at least 0.5 s
        assert simulated <= 600 * wall + 1 and wall >= 0.5 - 0.05, (simulated, wall)
    finally:
        await fx.stop_sim(handle, server)


def test_hourly_schedule_opens_closes_and_settles_on_time():
    w = World(WorldParams(seed=3, start_ms=START_MS + 30 * 60_000))  # half past
    ex = w.exchange
    first = [m for m in ex.markets.values() if m.close_ms == START_MS + 3_600_000]
    nxt = [m for m in ex.markets.values() if m.close_ms == START_MS + 7_200_000]
    assert first and all(m.status == "active" for m in first)
    assert nxt and all(m.status == "initialized" for m in nxt)
    w.advance(30 * 60 - 1)
    assert all(m.status == "active" for m in first)
    w.advance(1)  # the top of the hour
    assert all(m.status == "closed" for m in first)
    assert all(m.status == "active" for m in nxt)
    assert not ex.books[first[0].ticker].depth("yes")  # resting orders canceled at close
    w.advance(60)
    assert all(m.status == "finalized" and m.result in ("yes", "no") for m in first)
    assert any(m.close_ms == START_MS + 3 * 3_600_000 for m in ex.markets.values())
