"""Simulator additions the data services need: Kalshi's error 25 for a WS client that
cannot keep up, real previous_* prices (an hour ago), and a settable activity level."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

from app import config
from app.sim.config import sim_config
from app.sim.sim import Sim
from tests import test_sim_fixtures as fx

sim = fx.sim


async def test_a_ws_client_that_cannot_keep_up_gets_error_25_then_a_close(tmp_path):
    h, server = await fx.start_sim(tmp_path, ws_max_queue=100)
    try:
        ws = await h.ws()
        await ws.send(json.dumps({"id": 1, "cmd": "subscribe", "params": {
            "channels": ["orderbook_delta"], "market_tickers": h.open_tickers()}}))
        await fx.recv_until(ws, lambda m: m.get("type") == "subscribed")
        h.sim.world.advance(600)  # thousands of deltas queued before the writer runs
        msgs = await fx.recv_until(ws, lambda m: m.get("type") == "error", timeout=10)
        assert msgs[-1]["msg"] == {"code": 25, "msg": "Subscription buffer overflow"}
        assert len(msgs) <= 101  # the backlog was dropped, not sent
        await asyncio.wait_for(ws.wait_closed(), 5)
        await ws.close()
    finally:
        await fx.stop_sim(h, server)


async def test_previous_prices_are_the_values_an_hour_ago_or_at_the_open(sim):
    c = sim.client(auth=False)
    t = sim.open_tickers()[5]
    sim.sim.world.advance(1)
    first = (await c.get(f"/markets/{t}")).json()["market"]
    assert Decimal(first["yes_bid_dollars"]) > 0
    sim.sim.world.advance(40 * 60)
    later = (await c.get(f"/markets/{t}")).json()["market"]
    for field in ("yes_bid", "yes_ask"):
        assert later[f"previous_{field}_dollars"] == first[f"{field}_dollars"]
    assert later["previous_price_dollars"] == first["last_price_dollars"]


def test_activity_is_a_setting_with_a_busy_hour_default(tmp_path):
    s = config.load({"REC_CONFIG_DIR": str(tmp_path), "REC_STATE_DIR": str(tmp_path)})
    assert s.sim_activity == 30.0
    quiet = config.load({"REC_CONFIG_DIR": str(tmp_path), "REC_STATE_DIR": str(tmp_path),
                         "REC_SIM_ACTIVITY": "1.2"})

    def trades_per_min(settings) -> float:
        cfg = sim_config(settings)
        cfg.keys_dir, cfg.start_ms, cfg.speed = Path(tmp_path), fx.START_MS, 0
        world = Sim(cfg).world
        before = len(world.exchange.trades)
        world.advance(300)
        return (len(world.exchange.trades) - before) / 5

    busy, calm = trades_per_min(s), trades_per_min(quiet)
    assert busy > 10 * calm > 0
