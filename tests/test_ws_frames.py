"""KalshiWS's connection splits frames itself (app/kalshi/ws_frames.py): against a real
websockets server on loopback that writes raw frame bytes - split anywhere, long, fragmented
around a ping, compressed beside uncompressed, masked - every message arrives whole and in
order, pings are answered, a violation still fails the connection, and a full consumer
pauses the reading without losing a byte."""

from __future__ import annotations

import asyncio
import functools
import json
import zlib
from collections.abc import Awaitable, Callable

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

from app.kalshi.ws_frames import FeedConnection, frame_bounds
from testkit.ws import BINARY, CONT, TEXT, ws_frame

Script = Callable[[ServerConnection], Awaitable[None]]


def msg(i: int, pad: int = 0) -> bytes:
    return json.dumps({"type": "orderbook_delta", "seq": i, "pad": "x" * pad}).encode()


class Client:
    """A FeedConnection to a server that runs ``script`` on it; ``got``: messages in order."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.full_after: int | None = None  # on_message says "full" at this count

    def on_message(self, data: bytes) -> bool:
        self.got.append(bytes(data))
        return self.full_after is None or len(self.got) < self.full_after

    async def run(self, script: Script, *, compression: str | None = None,
                  until: Callable[[FeedConnection], Awaitable[None]] | None = None
                  ) -> FeedConnection:
        async def handler(ws: ServerConnection) -> None:
            await script(ws)
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0, compression=compression) as server:
            port = server.sockets[0].getsockname()[1]
            conn = await connect(f"ws://127.0.0.1:{port}/", compression=compression,
                                 create_connection=functools.partial(  # type: ignore[arg-type]
                                     FeedConnection, on_message=self.on_message))
            assert isinstance(conn, FeedConnection)
            if until is not None:
                await until(conn)
            await asyncio.wait_for(conn.wait_closed(), 10)
            return conn


async def write_in_pieces(ws: ServerConnection, data: bytes, cuts: list[int]) -> None:
    """``data`` in separate writes, cut at ``cuts`` (each read apart by the client)."""
    start = 0
    for cut in [*cuts, len(data)]:
        ws.transport.write(data[start:cut])
        start = cut
        await asyncio.sleep(0.03)


def test_frame_bounds_reads_every_length_form():
    short, mid, long = ws_frame(b"a" * 5), ws_frame(b"b" * 300), ws_frame(b"c" * 70_000)
    assert frame_bounds(short, 0) == (2, 7)
    assert frame_bounds(mid, 0) == (4, 304)
    assert frame_bounds(long, 0) == (10, 70_010)
    assert frame_bounds(b"x" + short, 1) == (3, 8)
    masked = ws_frame(b"abc", mask=b"\x01\x02\x03\x04")
    assert frame_bounds(masked, 0) == (6, 9)
    for frame in (short, mid, long, masked):  # any prefix: not whole yet
        for cut in (c for c in (0, 1, 2, 3, 9, len(frame) - 1) if c < len(frame)):
            assert frame_bounds(frame[:cut], 0) is None


async def test_a_stream_read_in_two_pieces_cut_anywhere_gives_the_same_messages():
    """Every length form (7-bit, 16-bit - both read inline - and 64-bit), the stream cut at
    every byte of each frame's head and just after it: the same messages, in order."""
    payloads = [b"a" * 5, b"b" * 125, b"c" * 126, b"d" * 300, b"e" * 65_535, b"f" * 70_000]
    frames = [ws_frame(p) for p in payloads]
    stream = b"".join(frames)
    heads = [sum(map(len, frames[:i])) for i in range(len(frames))]
    cuts = sorted({c for h in heads for c in range(h + 1, h + 12)} | {len(stream) - 1})
    client = Client()

    async def read_cut(conn: FeedConnection) -> None:
        for cut in cuts:
            client.got.clear()
            conn.data_received(stream[:cut])  # as two reads off the socket
            conn.data_received(stream[cut:])
            assert client.got == payloads, f"cut at {cut}"
        await conn.close()

    await client.run(lambda ws: asyncio.sleep(0), until=read_cut)


async def test_split_long_and_fragmented_messages_arrive_whole_in_order_and_pings_answered():
    client = Client()
    pong: list[float] = []

    async def script(ws: ServerConnection) -> None:
        stream = b"".join(ws_frame(msg(i)) for i in range(5))
        stream += ws_frame(msg(5, pad=300)) + ws_frame(msg(6, pad=70_000))
        # cut inside a header, inside a 16-bit length, inside a payload, inside a 64-bit length
        f5 = stream.index(b'{"type": "orderbook_delta", "seq": 5') - 4
        f6 = stream.index(b'{"type": "orderbook_delta", "seq": 6') - 10
        await write_in_pieces(ws, stream, [1, f5 + 1, f5 + 3, f5 + 40, f6 + 5, f6 + 2000])
        whole = msg(7, pad=50)
        ws.transport.write(ws_frame(whole[:20], TEXT, fin=False) + ws_frame(whole[20:40], CONT,
                                                                            fin=False))
        waiter = await ws.ping(b"hb")  # a control frame between fragments
        ws.transport.write(ws_frame(whole[40:], CONT) + ws_frame(msg(8), BINARY)
                           + ws_frame(msg(9)))
        pong.append(await asyncio.wait_for(waiter, 5))
        await ws.close()

    conn = await client.run(script)
    assert client.got == [msg(i) for i in range(5)] + [msg(5, pad=300), msg(6, pad=70_000),
                                                       msg(7, pad=50), msg(8), msg(9)]
    assert pong  # the ping between the fragments was answered
    assert isinstance(conn.protocol.close_exc, ConnectionClosedOK)


async def test_compressed_frames_beside_uncompressed_ones_decode_in_order():
    """permessage-deflate: compressed frames go to the protocol's decoder (context kept
    across messages), an uncompressed message between them is taken as it is."""
    client = Client()

    async def script(ws: ServerConnection) -> None:
        deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)

        def compressed(data: bytes) -> bytes:
            body = deflate.compress(data) + deflate.flush(zlib.Z_SYNC_FLUSH)
            return ws_frame(body[:-4], rsv1=True)  # without the 00 00 ff ff tail (RFC 7692)

        ws.transport.write(compressed(msg(0)) + ws_frame(msg(1)) + compressed(msg(2))
                           + ws_frame(msg(3)) + compressed(msg(4, pad=500)))
        await ws.close()

    await client.run(script, compression="deflate")
    assert client.got == [msg(0), msg(1), msg(2), msg(3), msg(4, pad=500)]


@pytest.mark.parametrize("bad", ["masked", "text inside a fragmented message"])
async def test_a_protocol_violation_still_fails_the_connection(bad):
    client = Client()

    async def script(ws: ServerConnection) -> None:
        if bad == "masked":  # a server's frame must not be masked
            ws.transport.write(ws_frame(msg(0)) + ws_frame(msg(1), mask=b"abcd")
                               + ws_frame(msg(2)))
        else:
            ws.transport.write(ws_frame(msg(0), fin=False) + ws_frame(msg(1))
                               + ws_frame(msg(2), CONT))

    conn = await client.run(script)
    assert client.got == ([msg(0)] if bad == "masked" else [])
    exc = conn.protocol.close_exc
    assert isinstance(exc, ConnectionClosedError) and exc.sent is not None
    assert exc.sent.code == 1002  # protocol error


async def test_a_full_consumer_pauses_reading_and_resume_delivers_the_rest_in_order():
    client = Client()
    client.full_after = 10
    held: list[int] = []

    async def script(ws: ServerConnection) -> None:
        ws.transport.write(b"".join(ws_frame(msg(i)) for i in range(200)))
        await asyncio.sleep(0.05)
        ws.transport.write(b"".join(ws_frame(msg(i)) for i in range(200, 300)))
        await ws.wait_closed()

    async def until(conn: FeedConnection) -> None:
        for _ in range(200):
            if conn.held:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # the server wrote everything meanwhile
        held.append(len(client.got))
        assert conn.held
        client.full_after = None
        conn.resume()
        for _ in range(500):
            if len(client.got) == 300:
                break
            await asyncio.sleep(0.01)
        assert not conn.held
        await conn.close()

    await client.run(script, until=until)
    assert held == [10]  # nothing handed on while full
    assert client.got == [msg(i) for i in range(300)]
