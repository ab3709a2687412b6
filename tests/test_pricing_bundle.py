"""The pricing chain as the bundle runs it: rec-exchange-sim on the wall clock, rec-market-feed,
rec-price-feed and rec-coordinator as `rec run` processes; strike tables for BTC and ETH
update every second from the simulator's settlement index."""

from __future__ import annotations

import httpx

from app.services.price_feed import parse_tick
from tests.conftest import start_exchange_sim
from tests.pricing_support import eventually, migrate, query, wait_notify


def test_both_cfbenchmarks_message_shapes_parse():
    per_s = {"index_id": "BRTI", "received_at": 1710000000130, "avg_60s_data": {},
             "data": '{"type":"value","id":"BRTI","time":1710000000123,"value":"68000.12"}'}
    fast = {"index_id": "ETHUSD_RTI", "value_usd": "3500.10000000", "source_ts_ms": 1710000000323,
            "received_at": 1710000000341, "data": "{}"}
    assert parse_tick("cfbenchmarks_value", per_s) == ("BRTI", 1710000000123, 68000.12)
    assert parse_tick("cfbenchmarks_value_5hz", fast) == ("ETHUSD_RTI", 1710000000323, 3500.1)
    assert parse_tick("cfbenchmarks_value", {"index_id": "BRTI", "data": "nope"}) is None


async def test_strike_tables_update_every_second_on_a_fresh_bring_up(rec_home_db, start_service):
    # no weekly trading pause: it would empty the simulated books whenever this runs then
    rec_home_db.env.update(REC_COORDINATOR_MIN_VOL_SAMPLES="5", REC_PRICE_FEED_CHANNEL=
                           "cfbenchmarks_value_5hz", REC_LOG_LEVEL="info",
                           REC_SIM_MAINTENANCE_WINDOW="", REC_SIM_FAULTS_ENABLED="true")
    await migrate(rec_home_db)
    start_exchange_sim(rec_home_db, start_service)
    # rec-web first: before the first index value and strike table it is waiting, not failing
    await wait_notify(start_service(rec_home_db, "web"), "READY", "1")
    web = f"http://127.0.0.1:{rec_home_db.env['REC_WEB_PORT']}"
    sim = f"http://127.0.0.1:{rec_home_db.env['REC_EXCHANGE_SIM_PORT']}"
    http = httpx.AsyncClient(timeout=10)
    r = await http.get(f"{web}/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"]["index"]["note"] == (
        "waiting for the first index values: BRTI: no value stored yet, "
        "ETHUSD_RTI: no value stored yet")
    assert r.json()["checks"]["strikes"]["note"].startswith("waiting for the first strike tables")
    for name in ("market-feed", "price-feed", "coordinator"):
        await wait_notify(start_service(rec_home_db, name), "READY", "1")
    dsn = rec_home_db.db.dsn

    async def priced():
        rows = await query(dsn, "SELECT series_ticker, count(*), max(computed_at), "
                                "count(*) FILTER (WHERE yes_ask IS NOT NULL OR no_ask IS NOT NULL) "
                                "FROM strike_table GROUP BY 1")
        return len(rows) == 2 and {r[0]: r[1:] for r in rows}

    async def priced_with_asks():
        got = await priced()
        return got and all(v[2] > 0 for v in got.values()) and got

    first = await eventually(priced_with_asks, timeout=40, what="strike tables for BTC and ETH")
    assert set(first) == {"KXBTCD", "KXETHD"} and all(v[0] == 11 for v in first.values())
    # asks from the market feed's books (the simulated maker quotes the strikes near the money)
    assert all(v[2] > 0 for v in first.values())

    async def moved():
        now = await priced()
        return now and all(now[s][1] > first[s][1] for s in now) and now

    later = await eventually(moved, timeout=5, what="a second cycle")
    for s in later:
        assert (later[s][1] - first[s][1]).total_seconds() < 3
    status = await query(dsn, "SELECT series_ticker, ok, error FROM series_status ORDER BY 1")
    assert status == [("KXBTCD", True, None), ("KXETHD", True, None)]

    # rec-web's readiness names the index and the series once they are current ...
    async def ready_without_notes():
        r = await http.get(f"{web}/readyz")
        checks = r.json()["checks"]
        return r.status_code == 200 and checks["index"] == checks["strikes"] == {"ok": True} \
            and r

    await eventually(ready_without_notes, timeout=10, what="readyz with index and strikes ok")
    # ... and fails, naming them, when one index stops being published
    assert (await http.post(f"{sim}/_sim/pause_index",
                            json={"index_id": "ETHUSD_RTI", "paused": True})).status_code == 200

    async def eth_stale():
        r = await http.get(f"{web}/readyz")
        return r.status_code == 503 and {"index", "strikes"} <= set(r.json()["failed"]) and r

    body = (await eventually(eth_stale, timeout=20, what="readyz naming ETH stale")).json()
    assert body["checks"]["index"]["error"].startswith("PricingUnhealthy: ETHUSD_RTI: stale")
    assert "BRTI" not in body["checks"]["index"]["error"]
    assert body["checks"]["strikes"]["error"].startswith("PricingUnhealthy: KXETHD: ")
    assert "KXBTCD" not in body["checks"]["strikes"]["error"]
    assert (await http.post(f"{sim}/_sim/pause_index",
                            json={"index_id": "ETHUSD_RTI", "paused": False})).status_code == 200
    await eventually(ready_without_notes, timeout=20, what="readyz ok again")
    await http.aclose()
