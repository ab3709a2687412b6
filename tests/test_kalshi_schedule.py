"""The client rides through a maintenance pause against the simulator (issue 9): it reads the
schedule, a create during the pause is refused once and not retried (no error storm), cancels
go through, and TradingGate waits for the resume instead of trying again and again."""

from __future__ import annotations

from datetime import UTC, datetime

from app.kalshi.errors import KalshiBadRequest
from app.kalshi.schedule import TradingGate, is_pause_refusal, read_schedule
from app.sim.world import WorldParams
from tests import test_sim_fixtures as fx
from tests.test_client_vs_sim import rest

# Thursday 2025-11-27 07:20 UTC = 02:20 ET; the pause in this test runs 02:30-04:30 ET
THURSDAY_0220_ET = 1_764_228_000_000
QUIET = WorldParams(mm_levels=0, flow_rate_per_s=0.0)


async def test_the_client_rides_through_a_maintenance_pause(tmp_path):
    h, server = await fx.start_sim(tmp_path, start_ms=THURSDAY_0220_ET, world=QUIET,
                                   maintenance_minutes_et=(150, 270))
    try:
        async with rest(h) as r:
            schedule = await read_schedule(r)
            now = datetime.fromtimestamp(THURSDAY_0220_ET / 1000, UTC)
            window = schedule.next_pause(now)
            assert window is not None and schedule.pause_at(now) is None
            assert (window.start, window.end) == (
                datetime(2025, 11, 27, 7, 30, tzinfo=UTC), datetime(2025, 11, 27, 9, 30,
                                                                   tzinfo=UTC))
            ticker = h.open_tickers()[0]
            resting = await r.create_order(ticker, "yes", "buy", 1, "0.10")

            await h.control("advance", seconds=600)  # 02:30 ET: the pause begins
            assert schedule.pause_at(datetime(2025, 11, 27, 7, 31, tzinfo=UTC)) == window
            sent_before = r.stats["requests"]
            retries_before = r.stats["retries"]
            try:
                await r.create_order(ticker, "yes", "buy", 1, "0.11")
            except KalshiBadRequest as exc:
                assert is_pause_refusal(exc), exc
            else:
                raise AssertionError("an order was accepted during the pause")
            assert r.stats["retries"] == retries_before  # refused once, not retried
            assert r.stats["requests"] - sent_before == 1
            await r.cancel_order(resting.order_id, ticker=ticker)  # cancels still work

            slept: list[float] = []

            async def advance(seconds: float) -> None:  # the sim's clock, not the wall's
                slept.append(seconds)
                await h.control("advance", seconds=seconds * 60)

            gate = TradingGate(r, poll_sec=10, sleep=advance)
            assert await gate.wait_open(max_wait_sec=20) is False  # 20 simulated minutes
            assert await gate.wait_open(max_wait_sec=600) is True
            assert gate.status_calls <= 2 + 12 + 2  # a status call per poll, not a storm
            ack = await r.create_order(h.open_tickers()[0], "yes", "buy", 1, "0.12")
            assert ack.order_id
    finally:
        await fx.stop_sim(h, server)
