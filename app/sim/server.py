"""uvicorn options for the simulator: Kalshi's WebSocket heartbeat and request limits.

Kalshi pings every 10 s with the payload ``heartbeat``; uvicorn's keepalive pings carry
a random payload, so the simulator swaps in a protocol class that sends Kalshi's.
Request heads (request line and headers) above MAX_HEAD_BYTES are answered 431 and the
connection closed before they are parsed further; bodies are capped at 1 MiB by the
REST layer (413). WebSocket messages are capped at MAX_WS_MESSAGE.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from app.sim.config import SimConfig

HEARTBEAT = b"heartbeat"
MAX_HEAD_BYTES = 64 * 1024
MAX_WS_MESSAGE = 1 << 20
_431 = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: 93\r\n\r\n"
        b'{"code":"request_header_fields_too_large","message":"request headers too large",'
        b'"details":""}')


class LimitedHttpProtocol(HttpToolsProtocol):
    """httptools with a cap on the bytes of a request head."""

    _head_bytes = 0
    _in_head = True

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            end = data.find(b"\r\n\r\n")  # the head ends in this chunk: count up to there
            self._head_bytes += len(data) if end < 0 else end
            if self._head_bytes > MAX_HEAD_BYTES:
                self._in_head = False
                self.transport.write(_431)
                self.transport.close()
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._in_head, self._head_bytes = True, 0
        super().connection_made(transport)


class HeartbeatWSProtocol(WebSocketsSansIOProtocol):
    def send_keepalive_ping(self) -> None:
        self.ping_timer = None
        if self.close_sent or self.transport.is_closing():
            return
        self.pending_ping_payload = HEARTBEAT
        self.ping_sent_at = self.loop.time()
        self.conn.send_ping(HEARTBEAT)
        self.transport.write(b"".join(self.conn.data_to_send()))
        if self.ping_timeout is not None:
            self.pong_timer = self.loop.call_later(self.ping_timeout, self.keepalive_timeout)
        else:
            self.schedule_ping()


def uvicorn_options(config: SimConfig) -> dict[str, Any]:
    return {
        "ws": HeartbeatWSProtocol,
        "ws_ping_interval": config.ws_ping_interval,
        "ws_ping_timeout": max(20.0, config.ws_ping_interval * 2),
        "ws_per_message_deflate": False,
        "ws_max_size": MAX_WS_MESSAGE,
        "http": LimitedHttpProtocol,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,  # should h11 ever serve it
    }
