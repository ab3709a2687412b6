"""The simulator's settlement index: published on cfbenchmarks_value (and _5hz) for BTC and
ETH, markets settled on the average of that same published path, candlesticks served."""

from __future__ import annotations

import itertools
import json
from decimal import ROUND_HALF_EVEN, Decimal

from tests import test_sim_fixtures as fx
from tests.test_sim_fixtures import drain, recv_until

sim = fx.sim


async def test_markets_settle_on_the_published_sixty_second_average(sim):
    ws = await sim.ws()
    await ws.send(json.dumps({"id": 1, "cmd": "subscribe", "params": {
        "channels": ["cfbenchmarks_value"], "index_ids": ["all"]}}))
    await recv_until(ws, lambda m: m.get("type") == "subscribed")
    close_ms = (sim.sim.world.now_ms // 3_600_000 + 1) * 3_600_000
    await sim.control("advance", seconds=(close_ms - sim.sim.world.now_ms) // 1000 + 61)
    ticks = [m["msg"] for m in await drain(ws, timeout=30) if m["type"] == "cfbenchmarks_value"]
    await ws.close()
    by_index: dict[str, dict[int, Decimal]] = {}
    for t in ticks:
        data = json.loads(t["data"])
        by_index.setdefault(t["index_id"], {})[data["time"]] = Decimal(data["value"])
    assert set(by_index) == {"BRTI", "ETHUSD_RTI"}
    c = sim.client(auth=False)
    for series, index in (("KXBTCD", "BRTI"), ("KXETHD", "ETHUSD_RTI")):
        window = [v for ts, v in by_index[index].items() if close_ms - 60_000 < ts <= close_ms]
        assert len(window) == 60
        want = (sum(window) / 60).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
        markets = (await c.get("/markets", params={"series_ticker": series,
                                                    "status": "settled"})).json()["markets"]
        assert len(markets) == 11
        for m in markets:
            assert abs(Decimal(m["expiration_value"]) - want) <= Decimal("0.01")
            assert m["result"] == ("yes" if want > Decimal(str(m["floor_strike"])) else "no")
            assert f"({index})" in m["rules_primary"] and "sixty seconds" in m["rules_primary"]
        # the close tick carries the settlement window's own average
        close_tick = next(t for t in ticks if t["index_id"] == index
                          and json.loads(t["data"])["time"] == close_ms)
        last = close_tick["last_60s_windowed_average_15min"]
        assert last["window_size"] == 60
        assert abs(Decimal(last["value"]) - want) <= Decimal("0.01")


async def test_indexlist_subscribe_indices_and_a_paused_index(sim):
    ws = await sim.ws()
    await ws.send(json.dumps({"id": 1, "cmd": "subscribe", "params": {
        "channels": ["cfbenchmarks_value_5hz"]}}))
    sub = await recv_until(ws, lambda m: m.get("type") == "subscribed")
    sid = sub[-1]["msg"]["sid"]
    await sim.control("advance", seconds=1)
    assert not [m for m in await drain(ws) if m["type"] == "cfbenchmarks_value_5hz"]
    await ws.send(json.dumps({"id": 2, "cmd": "update_subscription",
                              "params": {"sid": sid, "action": "indexlist"}}))
    got = await recv_until(ws, lambda m: m.get("id") == 2)
    assert got[-1]["type"] == "cfbenchmarks_value_5hz_indexlist"
    assert got[-1]["msg"]["index_ids"] == ["BRTI", "ETHUSD_RTI"]
    await ws.send(json.dumps({"id": 3, "cmd": "update_subscription", "params": {
        "sid": sid, "action": "subscribe_indices", "index_ids": ["ETHUSD_RTI"]}}))
    await recv_until(ws, lambda m: m.get("id") == 3)
    await sim.control("advance", seconds=3)
    fast = [m["msg"] for m in await drain(ws) if m["type"] == "cfbenchmarks_value_5hz"]
    # five values a second, every 200 ms; those on the whole second are the published path
    assert [m["index_id"] for m in fast] == ["ETHUSD_RTI"] * 15
    times = [m["source_ts_ms"] for m in fast]
    assert [b - a for a, b in itertools.pairwise(times)] == [200] * 14
    assert times[-1] == sim.sim.world.now_ms
    history = dict(sim.sim.world.indices["ETHUSD_RTI"].history)
    whole = [(m["source_ts_ms"], Decimal(m["value_usd"])) for m in fast
             if m["source_ts_ms"] % 1000 == 0]
    assert len(whole) == 3 and all(v == Decimal(str(history[t])) for t, v in whole)
    # in between: a bridge from one second's value to the next, moving like the index
    values = [Decimal(m["value_usd"]) for m in fast]
    assert len(set(values)) > 10
    assert all(abs(b / a - 1) < Decimal("0.001") for a, b in itertools.pairwise(values))
    await sim.control("pause_index", index_id="ETHUSD_RTI", paused=True)
    await sim.control("advance", seconds=3)
    assert not [m for m in await drain(ws) if m["type"] == "cfbenchmarks_value_5hz"]
    await sim.control("pause_index", index_id="ETHUSD_RTI", paused=False)
    await sim.control("advance", seconds=1)
    assert len([m for m in await drain(ws) if m["type"] == "cfbenchmarks_value_5hz"]) == 5
    await ws.close()


async def test_candlesticks_read_history_back(sim):
    c = sim.client(auth=False)
    t = sim.open_tickers()[5]
    start = sim.sim.world.now_ms // 1000
    await sim.control("advance", seconds=600)
    end = sim.sim.world.now_ms // 1000
    r = await c.get(f"/series/KXBTCD/markets/{t}/candlesticks",
                    params={"start_ts": start, "end_ts": end, "period_interval": 1})
    assert r.status_code == 200
    candles = r.json()["candlesticks"]
    assert len(candles) == 10
    assert [k["end_period_ts"] for k in candles] == list(range(start + 60, end + 1, 60))
    for k in candles:
        assert Decimal(k["yes_bid"]["low_dollars"]) <= Decimal(k["yes_bid"]["high_dollars"])
        assert Decimal(k["yes_bid"]["close_dollars"]) < Decimal(k["yes_ask"]["close_dollars"])
    hourly = (await c.get(f"/series/KXBTCD/markets/{t}/candlesticks", params={
        "start_ts": start, "end_ts": end + 3600, "period_interval": 60})).json()["candlesticks"]
    assert len(hourly) == 1
    assert Decimal(hourly[0]["volume_fp"]) == sum(Decimal(k["volume_fp"]) for k in candles)
    assert (await c.get(f"/series/KXETHD/markets/{t}/candlesticks", params={
        "start_ts": start, "end_ts": end, "period_interval": 1})).status_code == 404
    assert (await c.get(f"/series/KXBTCD/markets/{t}/candlesticks", params={
        "start_ts": start, "end_ts": end, "period_interval": 7})).status_code == 400


async def test_the_5hz_values_fall_due_on_the_wall_clock_never_early():
    """Under ``run()`` (the simulator's wall clock) each value between two seconds is
    published once its simulated time has come, not a second's worth at once."""
    import asyncio
    import contextlib

    from app.sim.venue import Observer
    from app.sim.world import World, WorldParams

    world = World(WorldParams(seed=4, eth_series=False, maintenance_weekday=None))
    got: list[tuple[int, int, float]] = []  # (batch, ts_ms, simulated time when published)
    batch = {"n": 0}

    class Recorder(Observer):
        def index_fast_value(self, index_id: str, ts_ms: int, value: float) -> None:
            got.append((batch["n"], ts_ms, clock()))

    start = asyncio.get_running_loop().time()
    sim0 = world.now_ms

    def clock() -> float:  # the simulated time run() aims at, at speed 1
        return sim0 + (asyncio.get_running_loop().time() - start) * 1000

    world.exchange.observers.append(Recorder())
    real = world.publish_fast

    def counted(upto_ms: float) -> None:
        batch["n"] += 1
        real(upto_ms)

    world.publish_fast = counted  # type: ignore[method-assign]
    task = asyncio.create_task(world.run(speed=1.0))
    await asyncio.sleep(3.5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert len(got) >= 8  # four a second
    assert all(published >= ts - 1 for _, ts, published in got)  # never before its time
    seconds: dict[int, set[int]] = {}
    for b, ts, _ in got:
        seconds.setdefault(ts // 1000, set()).add(b)
    assert max(len(b) for b in seconds.values()) >= 2  # spread over the second
