"""A small async HTTP/1.1 keep-alive client for KalshiRest's hot path.

httpx spent most of a request's client-side time in its own layers (request/response models,
auth and redirect plumbing, httpcore's per-request async-library detection, which retries a
failing ``import sniffio`` on every lock). This does one thing: send a request on a pooled
keep-alive connection (asyncio streams, TLS when the base URL is https) and parse the answer
with httptools, the parser uvicorn uses. Failures are raised as the httpx exceptions
KalshiRest already maps (``ConnectError``: nothing was sent; ``ReadError``/
``RemoteProtocolError``: the outcome is unknown), so its retry rules are unchanged.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from urllib.parse import urlsplit

import httptools
import httpx


class RawResponse:
    """What KalshiRest reads of an answer: status, headers, body."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code, self.headers, self.content = status_code, headers, content

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class _Parsed:
    __slots__ = ("body", "done", "headers", "keep_alive", "parser", "status")

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.done = False
        self.status = 0
        self.keep_alive = True
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        # asked here: after the message is complete httptools always answers False
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class _Conn:
    __slots__ = ("reader", "used", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.used = reader, writer, False

    def close(self) -> None:
        self.writer.close()


class Http1Pool:
    """Keep-alive connections to one origin, at most ``max_connections`` at a time."""

    def __init__(self, base_url: str, max_connections: int = 16,
                 default_headers: dict[str, str] | None = None) -> None:
        u = urlsplit(base_url)
        self.host = u.hostname or "127.0.0.1"
        self.tls = u.scheme == "https"
        self.port = u.port or (443 if self.tls else 80)
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if self.tls else None
        host_header = self.host if u.port is None else f"{self.host}:{self.port}"
        extra = "".join(f"{k}: {v}\r\n" for k, v in (default_headers or {}).items())
        self._fixed = f"Host: {host_header}\r\nUser-Agent: rec-kalshi\r\n{extra}"
        self._idle: deque[_Conn] = deque()
        self._slots = asyncio.Semaphore(max_connections)
        self._closed = False

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.ssl,
                server_hostname=self.host if self.tls else None, limit=2**20)
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") \
                from None
        return _Conn(reader, writer)

    def _take_idle(self) -> _Conn | None:
        """The newest idle connection the server has not closed meanwhile (its FIN already
        read: a keep-alive timeout, a restart); closed ones are dropped."""
        while self._idle:
            conn = self._idle.pop()
            if not (conn.reader.at_eof() or conn.writer.is_closing()):
                return conn
            conn.close()
        return None

    async def request(self, method: str, target: str, headers: dict[str, str],
                      body: bytes | None) -> RawResponse:
        """Send one request (``target``: path and query) and read the whole answer."""
        async with self._slots:
            conn = self._take_idle() or await self._connect()
            head = [f"{method} {target} HTTP/1.1\r\n", self._fixed]
            for k, v in headers.items():
                head.append(f"{k}: {v}\r\n")
            if body is not None:
                head.append(f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n")
            head.append("\r\n")
            data = "".join(head).encode("latin-1") + (body or b"")
            ok = False
            try:
                conn.writer.write(data)
                parsed = _Parsed()
                got = 0
                while not parsed.done:
                    chunk = await conn.reader.read(65536)
                    if not chunk:
                        raise httpx.RemoteProtocolError(
                            f"{method} {target}: the server closed the connection after "
                            f"{got} bytes of the answer")
                    got += len(chunk)
                    parsed.parser.feed_data(chunk)
                ok = parsed.keep_alive
            except httptools.HttpParserError as exc:
                raise httpx.RemoteProtocolError(f"{method} {target}: bad answer: {exc}") \
                    from None
            except (ConnectionError, OSError) as exc:
                raise httpx.ReadError(f"{method} {target}: {type(exc).__name__}: {exc}") \
                    from None
            finally:
                if ok and not self._closed:
                    conn.used = True
                    self._idle.append(conn)
                else:
                    conn.close()
            return RawResponse(parsed.parser.get_status_code(), parsed.headers,
                               b"".join(parsed.body))

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            conn = self._idle.pop()
            conn.close()
            try:
                await conn.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
