"""An ASGI app served by uvicorn inside a rec service, with READY gated on the bound socket.

Every rec HTTP server (rec-web, the simulator, later APIs) has the same limits and the same
logging of bad requests: request line + headers at most ``MAX_HEAD_BYTES`` (else 431,
connection closed), a body at most ``MAX_BODY_BYTES`` (else 413), each with a JSON error
``{"code", "message", "details"}``, and an invalid request is logged with the client's
address.
"""

from __future__ import annotations

import asyncio
import json
import logging

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import ConfigError
from app.runtime.notify import listen_sockets
from app.runtime.service import Phase, Service

log = logging.getLogger(__name__)


MAX_HEAD_BYTES = 64 * 1024  # request line + headers
MAX_BODY_BYTES = 1024 * 1024


def _json_error(status: bytes, code: str, message: str) -> bytes:
    body = json.dumps({"code": code, "message": message, "details": ""}).encode()
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
            + body)


_431 = _json_error(b"431 Request Header Fields Too Large", "request_header_fields_too_large",
                   "request headers too large")


class BindError(Exception):
    pass


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a cap on the bytes of a request head (431, connection
    closed before more is parsed) and the client's address in the log line of every invalid
    request."""

    _head_bytes = 0
    _in_head = True

    def _client(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "unknown client"

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._in_head, self._head_bytes = True, 0
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            end = data.find(b"\r\n\r\n")  # the head ends in this chunk: count up to there
            self._head_bytes += len(data) if end < 0 else end
            if self._head_bytes > MAX_HEAD_BYTES:
                self._in_head = False
                log.warning("request head from %s over %d bytes: answered 431", self._client(),
                            MAX_HEAD_BYTES)
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

    def send_400_response(self, msg: str) -> None:
        log.warning("invalid HTTP request from %s: answered 400", self._client())
        super().send_400_response(msg)


class _NoBareInvalidRequestLine(logging.Filter):
    """uvicorn's own 'Invalid HTTP request received.' has no client: ours replaces it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Invalid HTTP request received."


logging.getLogger("uvicorn.error").addFilter(_NoBareInvalidRequestLine())


class LimitBody:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413, unread."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, send)
            return
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, send)

    async def _refuse(self, scope, send) -> None:
        client = scope.get("client") or ("unknown", 0)
        log.warning("request body from %s:%s over %d bytes: answered 413", client[0],
                    client[1], self.limit)
        body = json.dumps({"code": "payload_too_large",
                           "message": "the request body is too large", "details": ""}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    pass


class _Server(uvicorn.Server):
    # the runner owns signals; uvicorn must not install its own handlers
    def install_signal_handlers(self) -> None:  # pragma: no cover - older uvicorn
        pass


class HttpServer:
    """``await start()`` returns once the socket is bound and the app's lifespan ran."""

    def __init__(self, app, host: str, port: int, sockets: list | None = None,
                 **options) -> None:
        self.sockets = sockets  # already listening (socket activation): served, not bound
        options.setdefault("http", LimitedHttpProtocol)
        self.config = uvicorn.Config(
            LimitBody(app), host=host, port=port, log_config=None, access_log=False,
            lifespan="on", timeout_graceful_shutdown=5, **options,
        )
        self.server = _Server(self.config)
        self._main: asyncio.Task | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        return self.server.servers[0].sockets[0].getsockname()[1]

    async def start(self) -> None:
        if not self.config.loaded:
            self.config.load()
        self.server.lifespan = self.config.lifespan_class(self.config)
        try:
            await self.server.startup(sockets=self.sockets)
        except SystemExit:
            raise BindError(
                f"cannot serve on {self.config.host}:{self.config.port} (see the line above)"
            ) from None
        self._main = asyncio.create_task(self.server.main_loop(), name="http")

    async def wait(self) -> None:
        """Until the server stops; raises if it stopped by itself."""
        if self._main is not None:
            await asyncio.shield(self._main)

    async def stop(self) -> None:
        if not self.server.started:
            return
        self.server.should_exit = True
        if self._main is not None:
            await asyncio.gather(self._main, return_exceptions=True)
        await self.server.shutdown()


class HttpService(Service):
    """A service whose work is serving an ASGI app: bound in a startup phase (so READY means
    the port accepts connections), run until the server stops, stopped on SIGTERM."""

    http: HttpServer | None = None

    async def serve_http(self, phase: Phase, app, port: int, what: str = "http",
                         host: str | None = None, **options) -> None:
        """Bind ``host``, else REC_BIND_HOST if the service is public (its port is reached
        from other hosts), else REC_TARGET_HOST, where rec's own services reach each other.
        A public service serves the socket systemd passed instead, if any (rec-<name>.socket:
        the unit's IP allow-list then stays closed to the world, services.listen)."""
        host = host or (self.settings.bind_host if self.public else self.settings.target_host)
        sockets = listen_sockets() if self.public else []
        if sockets:
            address = "{}:{}".format(*sockets[0].getsockname()[:2])
            if sockets[0].getsockname()[1] != port:
                raise ConfigError(f"{what} port {port} (settings) but systemd passes a socket "
                                  f"on {address}: set the port in rec.env (the play renders "
                                  f"the socket unit from it), not in a drop-in")
            self.http = HttpServer(app, host, port, sockets=sockets, **options)
            await phase(f"serve {what} on {address} (socket from systemd)", self.http.start())
            return
        self.http = HttpServer(app, host, port, **options)
        await phase(f"bind {what} {host}:{port}", self.http.start())

    def watched(self) -> list[asyncio.Future]:
        assert self.http is not None, "serve_http() was not called in start()"
        return [asyncio.create_task(self.http.wait(), name="the HTTP server")]

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.stop()
        await super().stop()
