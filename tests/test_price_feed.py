"""rec-price-feed against the simulator's cfbenchmarks_value channel and real PostgreSQL."""

from __future__ import annotations

import pytest

from app.pricing.index import IndexWindow, momentum
from tests import test_sim_fixtures as fx
from tests.pricing_support import eventually, migrate, point_at_sim, query, wait_notify

sim = fx.sim


def test_momentum_and_deltas_match_a_hand_computed_series():
    w = IndexWindow()
    # 100 at t=0, rising 1 cent a second; t = 1795 is missing (a gap stays a gap)
    row = None
    for t in range(0, 1861):
        if t != 1795:
            row = w.add(1_000_000 + t, 100 + 0.01 * t)
    assert row is not None and row.ts == 1_000_000 + 1860
    p = 100 + 0.01 * 1860
    by_hand = {m: (p - (100 + 0.01 * (1860 - 60 * m))) / (100 + 0.01 * (1860 - 60 * m)) * 100
               for m in (1, 2, 3, 4, 15, 30)}
    for m, want in by_hand.items():
        assert row.deltas[m] == pytest.approx(want, rel=1e-12), m
    want_m = (0.3 * by_hand[1] + 0.25 * by_hand[2] + 0.2 * by_hand[3] + 0.15 * by_hand[4]
              + 0.05 * by_hand[15] + 0.05 * by_hand[30])
    assert row.momentum == pytest.approx(want_m, rel=1e-12)
    assert row.avg_1m == pytest.approx(sum(100 + 0.01 * t for t in range(1801, 1861)) / 60)
    # the row a minute before t=100 is t=40, missing: the latest earlier row within the
    # tolerance (t=39) stands in; with t=34..40 missing nothing is in reach: unknown
    g, h = IndexWindow(), IndexWindow()
    for t in range(0, 101):
        if t != 40:
            g_last = g.add(t, 100.0 + t)
        if not 34 <= t <= 40:
            h_last = h.add(t, 100.0 + t)
    assert g_last.deltas[1] == pytest.approx((200 - 139) / 139 * 100)
    assert h_last.deltas[1] is None and h_last.momentum is None
    # with no row in reach the delta, and so momentum, is unknown
    fresh = IndexWindow()
    first = fresh.add(5, 10.0)
    assert first.deltas[1] is None and first.momentum is None and first.avg_1m == 10.0
    assert momentum({1: 1, 2: 1, 3: 1, 4: 1, 15: 1, 30: 1}) == pytest.approx(1.0)


def _pct(now: float, then: float) -> float:
    return (now - then) / then * 100


async def test_rows_match_the_published_index_and_a_drop_leaves_a_gap(sim, rec_home_db,
                                                                      start_service):
    point_at_sim(rec_home_db, sim, REC_PRICE_FEED_STALE_AFTER_SEC="1",
                 REC_KALSHI_WS_BACKOFF_BASE_SEC="0.1", REC_KALSHI_WS_BACKOFF_MAX_SEC="0.5")
    await migrate(rec_home_db)
    dsn = rec_home_db.db.dsn
    svc = start_service(rec_home_db, "price-feed")
    await wait_notify(svc, "READY", "1")
    w = sim.sim.world
    await sim.control("advance", seconds=1900)  # > 30 minutes: every delta is known
    last = w.now_ms // 1000

    async def caught_up():
        rows = await query(dsn, "SELECT index_name, count(*), max(extract(epoch FROM ts)) "
                                "FROM index_prices GROUP BY 1")
        # both indices up to the last second (one caught up and the other not yet is a wait)
        at_last = {r[0]: r[1] for r in rows if int(r[2]) == last}
        return at_last if len(at_last) == 2 else None

    counts = await eventually(caught_up, timeout=60, what="1900 rows per index")
    assert counts == {"BRTI": 1900, "ETHUSD_RTI": 1900}
    for index in ("BRTI", "ETHUSD_RTI"):
        path = {ts // 1000: v for ts, v in w.indices[index].history}
        rows = await query(dsn, "SELECT extract(epoch FROM ts)::bigint, price::float8, "
                                "avg_1m::float8, d1m::float8, d2m::float8, d3m::float8, "
                                "d4m::float8, d15m::float8, d30m::float8, momentum::float8 "
                                "FROM index_prices WHERE index_name = %s ORDER BY ts", (index,))
        assert all(path[ts] == price for ts, price, *_ in rows)
        ts, price, avg, *deltas, mom = rows[-1]
        want = [_pct(price, path[ts - 60 * m]) for m in (1, 2, 3, 4, 15, 30)]
        assert deltas == pytest.approx(want, rel=1e-6)
        assert mom == pytest.approx(sum(c * d for c, d in zip(
            (0.3, 0.25, 0.2, 0.15, 0.05, 0.05), want, strict=True)), rel=1e-6)
        assert avg == pytest.approx(sum(path[t] for t in range(ts - 59, ts + 1)) / 60)
        assert rows[0][9] is None  # the first rows have no 30-minute history
    live = await query(dsn, "SELECT index_name, state FROM index_freshness ORDER BY 1")
    assert live == [("BRTI", "live"), ("ETHUSD_RTI", "live")]

    # the source drops: what the exchange published meanwhile is not there, nothing filled
    await sim.control("drop_ws")
    await sim.control("advance", seconds=5)
    missed = list(range(last + 1, last + 6))

    async def resubscribed():
        return bool(sim.sim.hub.by_channel["cfbenchmarks_value"])

    await eventually(resubscribed, what="resubscribed after the drop")
    await sim.control("advance", seconds=3)
    end = w.now_ms // 1000

    async def after_gap():
        rows = await query(dsn, "SELECT extract(epoch FROM ts)::bigint FROM index_prices "
                                "WHERE index_name = 'BRTI' AND ts > to_timestamp(%s) "
                                "ORDER BY ts", (last,))
        got = [r[0] for r in rows]
        return got if got and got[-1] == end else None

    got = await eventually(after_gap, what="rows after the reconnect")
    assert not set(got) & set(missed)
    assert got == list(range(end - 2, end + 1))
    # the source is silent: reported stale by name, never papered over
    async def both_stale():
        rows = await query(dsn, "SELECT index_name FROM index_freshness "
                                "WHERE state = 'stale' ORDER BY 1")
        return len(rows) == 2 and rows

    states = await eventually(both_stale, what="stale after silence")
    assert [s[0] for s in states] == ["BRTI", "ETHUSD_RTI"]
    await wait_notify(svc, "STATUS")
    assert any("BRTI stale" in s for s in svc.notify.statuses())
    assert "BRTI is stale" in svc.output
    assert svc.terminate() == 0
    stopped = await query(dsn, "SELECT DISTINCT detail FROM index_freshness")
    assert stopped == [("rec-price-feed stopped",)]


async def test_health_checks_name_a_stale_index_and_a_failing_series(rec_home_db):
    from app import config
    from app.db.pool import open_pool
    from app.pricing.health import PricingUnhealthy, index_check, strike_table_check

    await migrate(rec_home_db)
    settings = config.load(rec_home_db.env)
    pool = await open_pool(settings, "test")
    series = "KXBTCD:BRTI,KXETHD:ETHUSD_RTI"
    try:
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO index_freshness (index_name, state, last_received_at, detail) "
                "VALUES ('BRTI', 'live', now(), ''), ('ETHUSD_RTI', 'stale', now() - "
                "interval '30 s', 'no value for 30s')")
            await conn.execute(
                "INSERT INTO series_status (series_ticker, state, ok, error) VALUES ('KXBTCD', "
                "'priced', true, NULL), ('KXETHD', 'failed', false, "
                "'ETHUSD_RTI is stale: newest row 30s old')")
        with pytest.raises(PricingUnhealthy, match=r"^ETHUSD_RTI: stale \(no value for 30s\), "
                                                   r"last value 30s ago$"):
            await index_check(pool, series, 5)()
        with pytest.raises(PricingUnhealthy, match=r"^KXETHD: ETHUSD_RTI is stale"):
            await strike_table_check(pool, series)()
        assert await index_check(pool, "KXBTCD:BRTI", 5)() is None  # BTC alone is healthy
        assert await strike_table_check(pool, "KXBTCD:BRTI")() is None
        # an index or series with no row yet: a note while waiting, then a failure
        solana = "KXSOLD:SOL_RTI"
        assert await index_check(pool, solana, 5, waiting=lambda: True)() == (
            "waiting for the first index values: SOL_RTI: no value stored yet")
        assert await strike_table_check(pool, solana, waiting=lambda: True)() == (
            "waiting for the first strike tables: KXSOLD: not priced yet")
        with pytest.raises(PricingUnhealthy, match=r"^SOL_RTI: no value stored yet$"):
            await index_check(pool, solana, 5, waiting=lambda: False)()
        with pytest.raises(PricingUnhealthy, match=r"^KXSOLD: not priced yet$"):
            await strike_table_check(pool, solana, waiting=lambda: False)()
        # a series the coordinator reports as warming up (history still coming) is waiting too
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO series_status (series_ticker, state, ok, error) VALUES ('KXSOLD', "
                "'warming', false, 'warming up: SOL_RTI: 30 returns stored, the lognormal "
                "needs 60, and no model is built')")
        assert await strike_table_check(pool, solana, waiting=lambda: True)() == (
            "waiting for the first strike tables: KXSOLD: warming up: SOL_RTI: 30 returns "
            "stored, the lognormal needs 60, and no model is built")
        with pytest.raises(PricingUnhealthy, match=r"^KXSOLD: warming up: SOL_RTI: 30 returns"):
            await strike_table_check(pool, solana, waiting=lambda: False)()
        # the state is the column, never parsed from the message: a failed series whose
        # message happens to read "warming up" fails even while waiting
        async with pool.connection() as conn:
            await conn.execute("UPDATE series_status SET state = 'failed', "
                               "error = 'warming up: a message, not a state' "
                               "WHERE series_ticker = 'KXSOLD'")
        with pytest.raises(PricingUnhealthy, match=r"^KXSOLD: warming up: a message"):
            await strike_table_check(pool, solana, waiting=lambda: True)()
        # what is already stale fails even while waiting for the rest
        with pytest.raises(PricingUnhealthy, match=r"^ETHUSD_RTI: stale"):
            await index_check(pool, series + "," + solana, 5, waiting=lambda: True)()
    finally:
        await pool.close()


async def test_every_5hz_value_is_stored_with_the_venues_send_time(sim, rec_home_db,
                                                                    start_service):
    """index_prices keeps one row a second; index_ticks keeps every value the 5 Hz channel
    published (five a second), with its sending_ts_ms: what a replay plays back."""
    import json
    from decimal import Decimal

    from tests.test_sim_fixtures import drain

    point_at_sim(rec_home_db, sim, REC_PRICE_FEED_CHANNEL="cfbenchmarks_value_5hz")
    await migrate(rec_home_db)
    svc = start_service(rec_home_db, "price-feed")
    await wait_notify(svc, "READY", "1")
    ws = await sim.ws()  # the test's own subscriber sees what the channel published
    await ws.send(json.dumps({"id": 1, "cmd": "subscribe", "params": {
        "channels": ["cfbenchmarks_value_5hz"], "index_ids": ["BRTI"]}}))
    await drain(ws)
    await sim.control("advance", seconds=6)
    published = {(m["msg"]["source_ts_ms"], Decimal(m["msg"]["value_usd"]), m["sending_ts_ms"])
                 for m in await drain(ws) if m["type"] == "cfbenchmarks_value_5hz"}
    await ws.close()
    assert len(published) > 4 * 6  # about five a second

    async def stored():
        rows = await query(rec_home_db.db.dsn,
                           "SELECT (extract(epoch FROM ts) * 1000)::bigint, value, sending_ms "
                           "FROM index_ticks WHERE index_name = 'BRTI' AND channel = "
                           "'cfbenchmarks_value_5hz'")
        return set(rows) if len(rows) >= len(published) else None

    assert await eventually(stored, timeout=30, what="every BRTI tick") == published
    per_second = await query(rec_home_db.db.dsn,
                             "SELECT count(*) FROM index_prices WHERE index_name = 'BRTI'")
    assert per_second == [(6,)]
    assert svc.terminate() == 0
