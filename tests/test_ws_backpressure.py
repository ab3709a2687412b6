"""The WebSocket client's queue to its consumer is bounded and its lag is visible
(against the real simulator on loopback)."""

from __future__ import annotations

import asyncio

from app.kalshi.ws import KalshiWS
from tests import data_in_fixtures as di
from tests import test_sim_fixtures as fx

sim = fx.sim


async def test_a_slow_consumer_bounds_the_queue_and_shows_its_lag(sim):
    ws = KalshiWS(sim.ws_url, sim.signer, compression=None, queue_max=50,
                  backoff_base=0.05, backoff_max=0.3)
    tickers = sim.open_tickers("KXBTCD") + sim.open_tickers("KXBTC")
    await ws.subscribe("orderbook_delta", market_tickers=tickers)
    await ws.subscribe("ticker", market_tickers=tickers)
    async with ws:
        await ws.wait_connected(5)
        for _ in range(10):  # far more than 50 messages; nobody reads them
            sim.sim.world.advance(30)
            await asyncio.sleep(0.05)
        await di.until(lambda: ws.stats.queue_full_waits > 0, 5, "the reader paused")
        depth, age = ws.lag()
        assert 50 <= depth <= 55  # the bound (plus the messages of one frame)
        assert age > 0.1
        await asyncio.sleep(0.3)
        assert ws.pending_messages() == depth  # still bounded while nobody reads
        # the consumer catches up: everything arrives, in order, and the books are exact
        got = 0
        while True:
            try:
                await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                break
            got += 1
        assert ws.lag() == (0, 0.0)
        assert got > 50
        expect = di.sim_books(sim, tickers)
        have = {(t, side, p): q for t, b in ws.books.items()
                for side, levels in (("yes", b.yes), ("no", b.no)) for p, q in levels.items()}
        assert all(ws.books[t].valid for t in tickers)
        assert have == expect

