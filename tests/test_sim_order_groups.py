"""Order groups in the simulator (v3.31.0): the rolling 15 s contract limit cancels the
group's orders and refuses new ones until reset; trigger/limit/delete; order_group_updates."""

from __future__ import annotations

from tests import test_sim_fixtures as fx
from tests.test_sim_fixtures import ORDERS, drain, order_body, signer

quiet_sim = fx.quiet_sim
GROUPS = "/portfolio/order_groups"


async def test_fills_reaching_the_limit_in_the_window_trigger_the_group(quiet_sim):
    sim = quiet_sim
    a, b = sim.client(), sim.client(signer("other-key"))
    t = sim.open_tickers()[5]
    ws = await sim.ws()
    await ws.send('{"id": 1, "cmd": "subscribe", "params": {"channels": '
                  '["order_group_updates"]}}')
    gid = (await a.post(f"{GROUPS}/create", json={"contracts_limit": 5})).json()[
        "order_group_id"]
    # two resting bids in the group
    r1 = await a.post(ORDERS, json=order_body(t, count=3, price=40, order_group_id=gid))
    r2 = await a.post(ORDERS, json=order_body(t, count=10, price=39, order_group_id=gid))
    assert r1.status_code == r2.status_code == 201, r1.text
    got = (await a.get(f"{GROUPS}/{gid}")).json()
    assert set(got["orders"]) == {r1.json()["order_id"], r2.json()["order_id"]}
    # 3 contracts matched: under the limit, nothing happens
    await b.post(ORDERS, json=order_body(t, side="no", count=3, price=60))
    assert (await a.get(f"/portfolio/orders/{r2.json()['order_id']}")).json()["order"][
        "status"] == "resting"
    # 16 s later the first 3 left the window: 2 more stay under the limit
    await sim.control("advance", seconds=16)
    await b.post(ORDERS, json=order_body(t, side="no", count=2, price=61))
    assert (await a.get(f"/portfolio/orders/{r2.json()['order_id']}")).json()["order"][
        "status"] == "resting"
    # 3 more within the window (2 + 3 = 5): the group triggers, the rest is canceled
    await b.post(ORDERS, json=order_body(t, side="no", count=3, price=61))
    left = (await a.get(f"/portfolio/orders/{r2.json()['order_id']}")).json()["order"]
    assert left["status"] == "canceled", left
    r = await a.post(ORDERS, json=order_body(t, count=1, price=30, order_group_id=gid))
    assert r.status_code == 400 and r.json()["error"]["code"] == "order_group_triggered"
    assert (await a.put(f"{GROUPS}/{gid}/reset", json={})).status_code == 200
    r = await a.post(ORDERS, json=order_body(t, count=1, price=30, order_group_id=gid))
    assert r.status_code == 201
    await a.put(f"{GROUPS}/{gid}/trigger", json={})  # the kill switch's way
    assert (await a.get(f"/portfolio/orders/{r.json()['order_id']}")).json()["order"][
        "status"] == "canceled"
    msgs = [m for m in await drain(ws) if m["type"] == "order_group_updates"]
    assert [m["msg"]["event_type"] for m in msgs] == ["created", "triggered", "reset",
                                                      "triggered"]
    assert msgs[0]["msg"]["contracts_limit_fp"] == "5.00"
    # another account's group is not found; unknown groups neither
    assert (await b.get(f"{GROUPS}/{gid}")).status_code == 404
    r = await b.post(ORDERS, json=order_body(t, count=1, price=30, order_group_id=gid))
    assert r.status_code == 400  # CreateOrderV2 lists 400 (not 404) for what it cannot find
    await ws.close()


async def test_the_client_drives_order_groups_against_the_simulator(quiet_sim):
    from app.kalshi.rest import KalshiRest

    sim = quiet_sim
    async with KalshiRest(sim.base + fx.PREFIX, sim.signer) as rest:
        gid = await rest.create_order_group(4)
        assert [g["id"] for g in await rest.get_order_groups()] == [gid]
        await rest.set_order_group_limit(gid, 6)
        assert (await rest.get_order_group(gid))["contracts_limit_fp"] == "6.00"
        t = sim.open_tickers()[5]
        ack = await rest.create_order(t, "yes", "buy", 1, "0.30", client_order_id="g1",
                                      order_group_id=gid)
        await rest.trigger_order_group(gid)
        assert (await rest.get_order(ack.order_id)).status == "canceled"
        await rest.reset_order_group(gid)
        await rest.delete_order_group(gid)
        assert await rest.get_order_groups() == []
