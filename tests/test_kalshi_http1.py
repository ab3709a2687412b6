"""KalshiRest's HTTP/1.1 pool against the simulator: keep-alive reuse, errors as the client
maps them."""

from __future__ import annotations

import pytest

from app.kalshi.errors import KalshiTransportError
from app.kalshi.rest import KalshiRest, RetryPolicy
from tests import test_sim_fixtures as fx

sim = fx.sim


async def test_sequential_requests_reuse_one_keep_alive_connection(sim):
    async with KalshiRest(sim.base + fx.PREFIX, sim.signer) as rest:
        pool = rest._fast
        assert pool is not None
        opened = 0
        connect = pool._connect

        async def counting():
            nonlocal opened
            opened += 1
            return await connect()

        pool._connect = counting
        for _ in range(20):
            assert (await rest.get_balance()).balance >= 0
        await rest.get_markets(limit=2, status="open")  # a query string
    assert opened == 1


async def test_a_refused_connection_is_never_sent():
    fast = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.002)
    async with KalshiRest("http://127.0.0.1:9/trade-api/v2", None, retry=fast) as rest:
        with pytest.raises(KalshiTransportError) as got:
            await rest.get_exchange_status()
    assert got.value.never_sent
