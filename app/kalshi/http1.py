"""A small async HTTP/1.1 keep-alive client for KalshiRest's hot path.

This does one thing: send a request on a pooled keep-alive connection (asyncio streams, TLS
when the base URL is https) and parse the answer with httptools, the parser uvicorn uses.
Failures are raised as the httpx exceptions KalshiRest maps (``ConnectError``: nothing was
sent; ``ReadError``/``RemoteProtocolError``: the outcome is unknown), so its retry rules are
unchanged.

Why hand-written: httpx spent most of a request's client-side time in its own layers, and
aiohttp (C parser, keep-alive pool), measured side by side on one simulator in one run
(``python -m benchmarks.http_pool_compare``: 20 alternating rounds of 0.5 s, medians), costs
more too. This pool's advantage over aiohttp 3.14, 2026-12-07, four runs at load average
4-14 (two cores shared by seven sessions, so CPU per request is the steadier figure; a signed
request spends ~0.3 ms of it in the RSA signature, the same for both):

=========================  ===================  ==================
case                       client CPU/request   requests/s
=========================  ===================  ==================
signed GET, sequential     1.23-1.30x           1.05-1.32x
unsigned GET, sequential   1.46-1.70x           1.22-2.29x
signed GET, 8 in flight    1.20-1.31x           1.01-1.49x
=========================  ===================  ==================

(An earlier run at load 1-2, 8 rounds of 1 s, requests/s only, gave 1.18x, 1.15x and 0.83x:
the wall-clock figure moves with the machine; the client's own cost does not.)

A kept-alive connection the server closed is a reconnect, never an error: one whose close
was already read is dropped before use; one that ends without a byte of the answer (the
server's close crossed the request) is replaced by a new connection and the request sent
again on it, when the caller says a repeat is harmless (``resend_if_stale``: reads, cancels,
order creation by client_order_id). Other writes only go out on a connection used within
STALE_AFTER_S, well inside any server's keep-alive timeout (uvicorn's is 5 s), or a new one.
"""

from __future__ import annotations

import asyncio
import ssl
import time
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
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.idle_since = reader, writer, 0.0

    def closed_by_server(self) -> bool:
        return self.reader.at_eof() or self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class _NoAnswer(Exception):
    """The connection ended before a byte of the answer (``eof``: closed, else reset)."""

    def __init__(self, eof: bool, detail: str) -> None:
        super().__init__(detail)
        self.eof = eof


# a write that must not be repeated goes out only on a connection used this recently
STALE_AFTER_S = 1.0


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
        self._max_idle = max_connections
        self._closed = False
        self.reconnects = 0  # kept-alive connections found closed by the server

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.ssl,
                server_hostname=self.host if self.tls else None, limit=2**20)
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") \
                from None
        return _Conn(reader, writer)

    def _take_idle(self, max_idle: float | None) -> _Conn | None:
        """The newest idle connection the server has not closed meanwhile (its FIN already
        read: a keep-alive timeout, a restart), idle at most ``max_idle`` seconds when given;
        closed ones are dropped."""
        while self._idle:
            conn = self._idle[-1]
            if max_idle is not None and time.monotonic() - conn.idle_since > max_idle:
                return None  # the newest is too old: so are the others (kept for other calls)
            self._idle.pop()
            if not conn.closed_by_server():
                return conn
            self.reconnects += 1
            conn.close()
        return None

    def _encode(self, method: str, target: str, headers: dict[str, str],
                body: bytes | None) -> bytes:
        head = [f"{method} {target} HTTP/1.1\r\n", self._fixed]
        for k, v in headers.items():
            head.append(f"{k}: {v}\r\n")
        if body is not None:
            head.append(f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n")
        head.append("\r\n")
        return "".join(head).encode("latin-1") + (body or b"")

    async def request(self, method: str, target: str, headers: dict[str, str],
                      body: bytes | None, *, resend_if_stale: bool = True) -> RawResponse:
        """Send one request (``target``: path and query) and read the whole answer.

        ``resend_if_stale``: the request may be sent again on a new connection when a
        kept-alive one ends before a byte of the answer (see the module docstring)."""
        data = self._encode(method, target, headers, body)
        what = f"{method} {target}"
        async with self._slots:
            conn = self._take_idle(None if resend_if_stale else STALE_AFTER_S)
            if conn is not None:
                try:
                    return await self._exchange(conn, data, what)
                except _NoAnswer as exc:
                    if not resend_if_stale:
                        raise _unknown(what, exc) from None
                    self.reconnects += 1  # the server's close crossed the request
            try:
                return await self._exchange(await self._connect(), data, what)
            except _NoAnswer as exc:
                raise _unknown(what, exc) from None

    async def _exchange(self, conn: _Conn, data: bytes, what: str) -> RawResponse:
        """Write one request on ``conn`` and read its answer; ``conn`` then goes back to the
        idle connections when both sides keep it alive, else it is closed."""
        ok = False
        parsed = _Parsed()
        got = 0
        try:
            conn.writer.write(data)
            while not parsed.done:
                chunk = await conn.reader.read(65536)
                if not chunk:
                    if got == 0:
                        raise _NoAnswer(True, "the server closed the connection before "
                                              "answering")
                    raise httpx.RemoteProtocolError(
                        f"{what}: the server closed the connection after {got} bytes of the "
                        "answer")
                got += len(chunk)
                parsed.parser.feed_data(chunk)
            ok = parsed.keep_alive
        except httptools.HttpParserError as exc:
            raise httpx.RemoteProtocolError(f"{what}: bad answer: {exc}") from None
        except (ConnectionError, OSError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
            if got == 0:
                raise _NoAnswer(False, detail) from None
            raise httpx.ReadError(f"{what}: {detail}") from None
        finally:
            self._release(conn, ok)
        return RawResponse(parsed.parser.get_status_code(), parsed.headers,
                           b"".join(parsed.body))

    def _release(self, conn: _Conn, keep: bool) -> None:
        if keep and not self._closed:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()
        # the oldest idle connections, under the newest that are taken first, are closed once
        # the server closed them or when more are kept than may be open
        while self._idle and (len(self._idle) > self._max_idle
                              or self._idle[0].closed_by_server()):
            self._idle.popleft().close()

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            conn = self._idle.pop()
            conn.close()
            try:
                await conn.writer.wait_closed()
            except (ConnectionError, OSError):
                pass


def _unknown(what: str, exc: _NoAnswer) -> httpx.TransportError:
    """The error for a request whose connection ended before an answer: outcome unknown."""
    cls = httpx.RemoteProtocolError if exc.eof else httpx.ReadError
    return cls(f"{what}: {exc}")
