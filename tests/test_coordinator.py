"""rec-coordinator against the simulator: rec-market-feed and rec-price-feed fill PostgreSQL
from it, the coordinator prices BTC and ETH hourly strikes from what they stored."""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal

import pytest

from testkit.sim import START_MS
from tests.pricing_support import eventually, migrate, point_at_sim, query, wait_notify
from tests.test_sim_fixtures import start_sim, stop_sim

CLOSE_MS = START_MS + 3_600_000  # the first hourly event closes here


@pytest.fixture
async def late_sim(tmp_path):
    """A simulator 7 minutes before an hourly close, its clock moved by the test."""
    handle, server = await start_sim(tmp_path, start_ms=CLOSE_MS - 420_000)
    yield handle
    await stop_sim(handle, server)


class Ticker:
    """Moves the simulated clock one second every ``every`` wall seconds."""

    def __init__(self, sim, every: float = 0.2) -> None:
        self.sim, self.every = sim, every
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        async def tick() -> None:
            while True:
                self.sim.sim.world.advance(1)
                await asyncio.sleep(self.every)
        self.task = asyncio.create_task(tick())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None


async def strike_rows(dsn: str, series: str) -> list[dict]:
    cols = ("market_ticker", "event_ticker", "strike", "index_price", "index_ts", "probability",
            "prob_source", "sample_size", "yes_ask", "no_ask", "active_side",
            "time_to_close_sec", "window_progress", "window_avg", "computed_at", "index_name",
            "buffer", "yes_diff_cents", "volume")
    rows = await query(dsn, f"SELECT {', '.join(cols)} FROM strike_table "
                            "WHERE series_ticker = %s ORDER BY strike", (series,))
    return [dict(zip(cols, r, strict=True)) for r in rows]


async def status(dsn: str) -> dict[str, tuple]:
    rows = await query(dsn, "SELECT series_ticker, ok, error, updated_at FROM series_status")
    return {r[0]: r[1:] for r in rows}


async def check_strike_rows(sim, dsn: str, series: str, index: str, rows: list[dict]) -> None:
    """The series' strike table against the simulator's open event, book and index."""
    w = sim.sim.world
    event = min((e for e in sim.sim.exchange.events.values()
                 if e.series_ticker == series and e.strike_ms > w.now_ms),
                key=lambda e: e.strike_ms)
    markets = {t: sim.sim.exchange.markets[t] for t in event.markets}
    assert {r["market_ticker"] for r in rows} == set(markets)  # 11 strikes: all in reach
    price = w.indices[index].value
    stored = await query(dsn, "SELECT price::float8 FROM index_prices WHERE index_name = %s "
                              "AND ts = %s", (index, rows[0]["index_ts"]))
    c = sim.client(auth=False)
    for r in rows:
        m = markets[r["market_ticker"]]
        assert r["event_ticker"] == event.event_ticker and r["index_name"] == index
        assert float(r["strike"]) == pytest.approx(m.floor_strike)
        assert float(r["index_price"]) == stored[0][0] == pytest.approx(price)
        assert r["active_side"] == ("no" if m.floor_strike > price else "yes")
        assert r["prob_source"] == "lognormal" and r["sample_size"] >= 30
        assert r["time_to_close_sec"] == (m.close_ms - w.now_ms) // 1000
        assert float(r["buffer"]) == pytest.approx(price - m.floor_strike, abs=1e-6)
        got = (await c.get(f"/markets/{m.ticker}")).json()["market"]
        # the simulator writes a missing offer as $1 with size 0: the table says NULL
        assert r["yes_ask"] == (None if got["yes_ask_size_fp"] == "0.00"
                                else Decimal(got["yes_ask_dollars"]))
        assert r["no_ask"] == (None if got["yes_bid_size_fp"] == "0.00"
                               else Decimal(got["no_ask_dollars"]))
        if r["yes_ask"] is not None:
            assert r["yes_diff_cents"] == pytest.approx(
                (r["probability"] - r["yes_ask"]) * 100, abs=Decimal("0.0001"))
    probs = [r["probability"] for r in rows]  # ordered by strike
    assert probs == sorted(probs, reverse=True) and probs[0] > probs[-1]


async def check_watchlist(dsn: str, series: str, rows: list[dict]) -> None:
    """Every side of ``rows`` that passes the default filters is listed, and nothing else."""
    want = set()
    for r in rows:
        for side, p, ask in (("yes", r["probability"], r["yes_ask"]),
                             ("no", 1 - r["probability"], r["no_ask"])):
            if ask is not None and p >= Decimal("0.5") and ask <= Decimal("0.98") \
                    and (p - ask) * 100 >= 2:
                want.add((r["market_ticker"], side))
    got = await query(dsn, "SELECT market_ticker, side, probability, ask, diff_cents "
                           "FROM watchlist WHERE series_ticker = %s", (series,))
    assert {(t, side) for t, side, *_ in got} == want
    for _, _, p, ask, diff in got:
        assert diff == pytest.approx((p - ask) * 100, abs=Decimal("0.0001"))


async def test_strike_tables_for_btc_and_eth_follow_the_simulator(late_sim, rec_home_db,
                                                                  start_service):
    sim = late_sim
    point_at_sim(rec_home_db, sim, REC_PRICE_FEED_STALE_AFTER_SEC="4",
                 REC_COORDINATOR_MAX_INDEX_AGE_SEC="5", REC_COORDINATOR_MIN_VOL_SAMPLES="30",
                 REC_COORDINATOR_MAX_MARKET_AGE_SEC="5")
    await migrate(rec_home_db)
    dsn = rec_home_db.db.dsn
    feeds = [start_service(rec_home_db, name) for name in ("market-feed", "price-feed")]
    for svc in feeds:
        await wait_notify(svc, "READY", "1")
    ticker = Ticker(sim)
    ticker.start()
    coord = start_service(rec_home_db, "coordinator")
    await wait_notify(coord, "READY", "1")

    async def both_priced():
        st = await status(dsn)
        return st.get("KXBTCD", (False,))[0] and st.get("KXETHD", (False,))[0] and st

    await eventually(both_priced, timeout=30, what="both series priced")
    # the book is still: the coordinator's next cycle sees what the simulator has
    await ticker.stop()
    frozen = time.time()

    async def after_freeze():
        st = await status(dsn)
        return all(st[s][0] and st[s][2].timestamp() > frozen + 1.0
                   for s in ("KXBTCD", "KXETHD")) and st

    await eventually(after_freeze, what="a cycle on the still book")
    for series, index in (("KXBTCD", "BRTI"), ("KXETHD", "ETHUSD_RTI")):
        rows = await strike_rows(dsn, series)
        await check_strike_rows(sim, dsn, series, index, rows)
        await check_watchlist(dsn, series, rows)

    # one series' source stops: it is reported stale by name, the other keeps updating
    ticker.start()
    await sim.control("pause_index", index_id="ETHUSD_RTI", paused=True)

    async def eth_failed():
        st = await status(dsn)
        eth = st.get("KXETHD")
        return eth and not eth[0] and "ETHUSD_RTI" in (eth[1] or "") and st

    st = await eventually(eth_failed, what="KXETHD reported failed")
    assert "stale" in st["KXETHD"][1]
    assert await strike_rows(dsn, "KXETHD") == []  # nothing stale shown as current
    before = (await strike_rows(dsn, "KXBTCD"))[0]["computed_at"]

    async def btc_moves():
        rows = await strike_rows(dsn, "KXBTCD")
        return rows and rows[0]["computed_at"] > before and rows

    await eventually(btc_moves, what="KXBTCD still updating")
    assert "KXETHD: ETHUSD_RTI is stale" in " ".join(coord.notify.statuses())

    # inside the settlement window: the observed part of the average is priced in
    await sim.control("pause_index", index_id="ETHUSD_RTI", paused=False)
    await ticker.stop()
    await sim.control("advance", seconds=(CLOSE_MS - 20_000 - sim.sim.world.now_ms) // 1000)
    ticker.start()

    async def in_window():
        rows = await strike_rows(dsn, "KXBTCD")
        return rows and 0 < rows[0]["window_progress"] < 1 and rows

    rows = await eventually(in_window, timeout=20, what="a row inside the window")
    r = rows[0]
    close_s = CLOSE_MS // 1000
    obs = await query(dsn, "SELECT avg(price)::float8, count(*) FROM index_prices WHERE "
                           "index_name = 'BRTI' AND ts > to_timestamp(%s) AND ts <= %s",
                      (close_s - 60, r["index_ts"]))
    assert float(r["window_avg"]) == pytest.approx(obs[0][0], rel=1e-9)
    assert float(r["window_progress"]) == pytest.approx(
        (60 - r["time_to_close_sec"]) / 60, abs=1e-4)
    # the market feed stops: its books are no longer current, so no ask is shown as one
    assert feeds[0].terminate() == 0

    async def withheld():
        st = await status(dsn)
        rows = await strike_rows(dsn, "KXBTCD")
        return (st["KXBTCD"][0] and "asks withheld" in (st["KXBTCD"][1] or "") and rows
                and all(r["yes_ask"] is None and r["no_ask"] is None and r["volume"] is None
                        for r in rows) and rows)

    await eventually(withheld, what="asks withheld without the market feed")
    assert await query(dsn, "SELECT * FROM watchlist") == []
    await ticker.stop()
    assert coord.terminate() == 0
    assert "cycle" in coord.output


async def test_a_series_without_history_yet_is_reported_as_warming_up(rec_home_db, start_service):
    """No index value stored yet (a fresh bring-up): each series is reported "warming up",
    which rec-web's health takes as waiting rather than failing (app.pricing.health)."""
    await migrate(rec_home_db)
    coord = start_service(rec_home_db, "coordinator")
    await wait_notify(coord, "READY", "1")

    async def reported():
        st = await status(rec_home_db.db.dsn)
        return len(st) == 2 and st

    st = await eventually(reported, what="series_status rows")
    assert {s: v[:2] for s, v in st.items()} == {
        "KXBTCD": (False, "warming up: no BRTI price stored yet"),
        "KXETHD": (False, "warming up: no ETHUSD_RTI price stored yet")}
    states = await query(rec_home_db.db.dsn, "SELECT DISTINCT state FROM series_status")
    assert states == [("warming",)], states  # a state of its own, not only the message
