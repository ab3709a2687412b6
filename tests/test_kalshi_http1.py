"""KalshiRest's HTTP/1.1 pool against the simulator: keep-alive reuse, errors as the client
maps them."""

from __future__ import annotations

import asyncio

import pytest

from app.kalshi.errors import KalshiTransportError
from app.kalshi.http1 import Http1Pool
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


async def test_a_connection_the_server_closed_while_idle_is_not_reused():
    """A keep-alive connection the server closed after its idle timeout (uvicorn's is 5 s) is
    dropped, not written to: the next request opens a new one and succeeds."""
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                try:
                    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.05)
                except (TimeoutError, asyncio.IncompleteReadError):
                    return  # idle too long (or gone): close, as a keep-alive timeout does
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = Http1Pool(f"http://127.0.0.1:{port}", 2)
    try:
        for _ in range(2):  # kept alive
            assert (await pool.request("GET", "/", {}, None)).content == b"ok"
        assert connections == 1
        await asyncio.sleep(0.2)  # the server closes it meanwhile
        assert (await pool.request("GET", "/", {}, None)).content == b"ok"
        assert connections == 2
    finally:
        await pool.aclose()
        server.close()
        await server.wait_closed()
