"""uvicorn options for the simulator: Kalshi's WebSocket heartbeat and request limits.

Kalshi pings every 10 s with the payload ``heartbeat``; uvicorn's keepalive pings carry
a random payload, so the simulator swaps in a protocol class that sends Kalshi's.
Request heads and bodies are capped by the HTTP server every rec service shares
(app.runtime.http: 431 and 413); WebSocket messages are capped at MAX_WS_MESSAGE.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from app.sim.config import SimConfig

HEARTBEAT = b"heartbeat"
MAX_WS_MESSAGE = 1 << 20


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
    }
