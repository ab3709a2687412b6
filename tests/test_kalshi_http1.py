"""KalshiRest's HTTP/1.1 pool against the simulator: keep-alive reuse, errors as the client
maps them."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest

from app.kalshi import http1
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


ANSWER = json.dumps({"order_id": "o1", "client_order_id": "c1", "fill_count": "0.00",
                     "remaining_count": "1.00", "ts_ms": 1, "exchange_active": True,
                     "trading_active": True}).encode()


class KeepAliveServer:
    """A real HTTP/1.1 server on loopback that closes kept-alive connections as servers do:
    after ``idle`` seconds without a request, and (``close_at`` > 0) at the ``close_at``-th
    request of a connection, read but never answered - what the client sees when the server's
    idle close crosses its request on the wire."""

    def __init__(self, idle: float = 30.0, close_at: int = 0) -> None:
        self.idle, self.close_at = idle, close_at
        self.connections = 0
        self.requests: list[tuple[int, bytes]] = []  # connection number, request line

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number, served = self.connections, 0
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.idle)
                except (TimeoutError, asyncio.IncompleteReadError):
                    return  # idle too long (or gone): close, as a keep-alive timeout does
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                if length:
                    await reader.readexactly(int(length[1]))
                self.requests.append((number, head.split(b"\r\n", 1)[0]))
                served += 1
                if served == self.close_at:
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
                await writer.drain()
        finally:
            writer.close()

    async def __aenter__(self) -> KeepAliveServer:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.base = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


async def test_a_connection_the_server_closed_while_idle_is_not_reused():
    """A keep-alive connection the server closed after its idle timeout (uvicorn's is 5 s) is
    dropped, not written to: the next request opens a new one and succeeds."""
    async with KeepAliveServer(idle=0.05) as srv:
        pool = Http1Pool(srv.base, 2)
        try:
            for _ in range(2):  # kept alive
                assert (await pool.request("GET", "/", {}, None)).content == ANSWER
            assert srv.connections == 1
            await asyncio.sleep(0.2)  # the server closes it meanwhile
            assert (await pool.request("GET", "/", {}, None)).content == ANSWER
            assert srv.connections == 2
        finally:
            await pool.aclose()


async def test_a_close_that_crosses_the_request_is_a_silent_reconnect(caplog):
    """The server closes a kept-alive connection as the next request arrives (its idle close
    and the request cross on the wire): reads, cancels and order creation are sent again on a
    new connection - no error, no retry, no warning (rec-trade-executor logged
    ``RemoteProtocolError ... retry 1/5`` for this)."""
    caplog.set_level(logging.INFO)
    async with KeepAliveServer(close_at=2) as srv:
        async with KalshiRest(srv.base + fx.PREFIX, None, validate_prices=False) as rest:
            assert (await rest.get_exchange_status()).exchange_active
            assert (await rest.get_exchange_status()).exchange_active  # crossed, then resent
            ack = await rest.create_order("KXT-1", "yes", "buy", 1, "0.50",
                                          client_order_id="c1")  # crossed, then resent
            await rest.cancel_order("o1")  # crossed, then resent
            assert ack.order_id == "o1"
            assert rest.stats["retries"] == 0
            assert rest._fast.reconnects == 3
    status, create = b"GET /trade-api/v2/exchange/status", b"POST /trade-api/v2/portfolio/events"
    lines = [line.split(b" HTTP")[0] for _, line in srv.requests]
    cancel = b"DELETE /trade-api/v2/portfolio/events/orders/o1"
    assert lines == [status, status, status, create + b"/orders", create + b"/orders", cancel,
                     cancel]
    assert srv.connections == 4
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_a_write_that_must_not_be_repeated_goes_out_on_a_fresh_connection(monkeypatch):
    """An amend cannot be sent twice; it is never written to a connection idle longer than
    STALE_AFTER_S (which the server may be closing), so the crossing never happens to it."""
    monkeypatch.setattr(http1, "STALE_AFTER_S", 0.05)
    async with KeepAliveServer(close_at=2) as srv:
        async with KalshiRest(srv.base + fx.PREFIX, None, validate_prices=False) as rest:
            assert (await rest.get_exchange_status()).exchange_active
            await asyncio.sleep(0.1)  # idle longer than STALE_AFTER_S
            ack = await rest.amend_order("o1", ticker="KXT-1", side="yes", action="buy",
                                         price="0.40", count=1)
            assert ack.order_id == "o1"
    assert [n for n, _ in srv.requests] == [1, 2]  # the amend on a connection of its own


async def test_idle_connections_the_server_closed_do_not_pile_up(monkeypatch):
    """Writes that must not be repeated open a connection when the kept ones are older than
    STALE_AFTER_S; the old ones, closed by the server meanwhile, are closed here too instead
    of staying under the newest for ever."""
    monkeypatch.setattr(http1, "STALE_AFTER_S", 0.01)
    async with KeepAliveServer(idle=0.03) as srv:
        async with KalshiRest(srv.base + fx.PREFIX, None, validate_prices=False) as rest:
            for _ in range(4):
                await rest.amend_order("o1", ticker="KXT-1", side="yes", action="buy",
                                       price="0.40", count=1)
                await asyncio.sleep(0.1)  # the server closes the connection meanwhile
            assert srv.connections == 4
            assert len(rest._fast._idle) == 1  # only the newest; the closed ones let go
