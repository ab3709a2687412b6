"""Exchange hours: the weekly maintenance pause from the settings, /exchange/schedule and
/exchange/status, orders refused and cancel-on-pause orders canceled while paused,
cancels still served, trading back afterwards. The simulated clock is driven through the
control API; nothing sleeps."""

from __future__ import annotations

import json

from app import config
from app.sim.config import SimConfig, parse_window, sim_config
from app.sim.world import WorldParams
from tests import test_sim_fixtures as fx
from tests.test_sim_fixtures import ORDERS, drain, order_body, place, recv_json

sim = fx.sim
# Thursday 2025-11-27 07:20 UTC = 02:20 ET; the test's pause runs 02:30-04:30 ET
THURSDAY_0220_ET = 1_764_228_000_000
QUIET = WorldParams(mm_levels=0, flow_rate_per_s=0.0)


def test_sim_config_from_settings(tmp_path):
    s = config.load({"REC_CONFIG_DIR": str(tmp_path), "REC_SIM_SEED": "9",
                     "REC_SIM_RATE_TIER": "premier", "REC_SIM_KEYS_DIR": str(tmp_path / "k")})
    c = sim_config(s)
    assert isinstance(c, SimConfig)
    assert (c.seed, c.rate_tier, c.keys_dir) == (9, "premier", tmp_path / "k")
    assert (c.maintenance_weekday, c.maintenance_minutes_et) == (3, (180, 300))  # Kalshi's
    s = config.load({"REC_CONFIG_DIR": str(tmp_path), "REC_SIM_MAINTENANCE_WINDOW": ""})
    assert sim_config(s).maintenance_weekday is None
    assert parse_window("sun 22:15-24:00") == (6, (1335, 1440))


async def test_schedule_lists_the_weekly_window(sim):
    c = sim.client()
    body = (await c.get("/exchange/schedule")).json()["schedule"]
    # the fixture's clock: Tuesday 2025-11-25; next pause Thursday 03:00-05:00 EST
    assert body["maintenance_windows"][0] == {"start_datetime": "2025-11-27T08:00:00.000Z",
                                              "end_datetime": "2025-11-27T10:00:00.000Z"}
    assert body["maintenance_windows"][1]["start_datetime"] == "2025-12-04T08:00:00.000Z"
    hours = body["standard_hours"][0]
    assert hours["thursday"] == [{"open_time": "00:00", "close_time": "03:00"},
                                 {"open_time": "05:00", "close_time": "24:00"}]
    assert hours["monday"] == [{"open_time": "00:00", "close_time": "24:00"}]


async def test_trading_pauses_in_the_maintenance_window(tmp_path):
    h, server = await fx.start_sim(tmp_path, start_ms=THURSDAY_0220_ET, world=QUIET,
                                   maintenance_minutes_et=(150, 270))
    try:
        a = h.client()
        t = h.open_tickers()[0]
        status = (await a.get("/exchange/status")).json()
        assert status["trading_active"] is True
        on_pause = await place(a, t, count=2, price=10, cancel_order_on_pause=True)
        keeps = await place(a, t, count=1, price=11)
        ws = await h.ws()
        await ws.send(json.dumps({"id": 1, "cmd": "subscribe",
                                  "params": {"channels": ["market_lifecycle_v2"]}}))
        await recv_json(ws)

        await h.control("advance", seconds=600)  # 02:30 ET: the pause begins
        status = (await a.get("/exchange/status")).json()
        assert status == {"exchange_active": True, "trading_active": False,
                          "exchange_estimated_resume_time": "2025-11-27T09:30:00.000Z"}
        got = (await a.get(f"/portfolio/orders/{on_pause['order_id']}")).json()["order"]
        assert got["status"] == "canceled"
        r = await a.post(ORDERS, json=order_body(t, count=1, price=12))
        assert r.status_code == 400 and r.json()["code"] == "trading_is_paused"
        r = await a.post(f"{ORDERS}/{keeps['order_id']}/amend", json={
            "ticker": t, "side": "bid", "price": "0.12", "count": "1"})
        assert r.status_code == 400 and r.json()["code"] == "trading_is_paused"
        r = await a.delete(f"{ORDERS}/{keeps['order_id']}")  # cancels still work
        assert r.status_code == 200 and r.json()["reduced_by"] == "1.00"
        msgs = await drain(ws)
        assert any(m["msg"].get("event_type") == "deactivated" and m["msg"]["market_ticker"] == t
                   for m in msgs)
        await ws.close()

        await h.control("advance", seconds=2 * 3600)  # 04:30 ET: trading again
        assert (await a.get("/exchange/status")).json()["trading_active"] is True
        t2 = h.open_tickers()[0]
        r = await a.post(ORDERS, json=order_body(t2, count=1, price=12))
        assert r.status_code == 201, r.text
        ws = await h.ws()  # sessions are accepted after the pause
        await ws.send(json.dumps({"id": 1, "cmd": "subscribe",
                                  "params": {"channels": ["ticker"]}}))
        assert (await recv_json(ws))["type"] == "subscribed"
        await ws.close()
    finally:
        await fx.stop_sim(h, server)
