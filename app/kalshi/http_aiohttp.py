"""KalshiRest's pool interface over aiohttp (C parser, keep-alive pool).

Measured against :mod:`app.kalshi.http1` by ``benchmarks/http_pool_compare.py``. Failures are
raised as the httpx exceptions KalshiRest maps (``ConnectError``: nothing was sent; others: the
outcome is unknown).
"""

from __future__ import annotations

import aiohttp
import httpx

from app.kalshi.http1 import RawResponse


class AiohttpPool:
    """Keep-alive connections to one origin through one aiohttp session."""

    def __init__(self, base_url: str, max_connections: int = 16,
                 default_headers: dict[str, str] | None = None) -> None:
        parts = base_url.split("/", 3)
        self.origin = "/".join(parts[:3])
        self._limit = max_connections
        self._headers = {"User-Agent": "rec-kalshi", **(default_headers or {})}
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                self.origin, headers=self._headers, auto_decompress=False,
                connector=aiohttp.TCPConnector(limit=self._limit),
                timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    async def request(self, method: str, target: str, headers: dict[str, str],
                      body: bytes | None) -> RawResponse:
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        try:
            async with self._open().request(method, target, headers=headers, data=body) as r:
                return RawResponse(r.status, r.headers, await r.read())  # type: ignore[arg-type]
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(f"cannot connect to {self.origin}: {exc}") from None
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(f"{method} {target}: {exc}") from None
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(f"{method} {target}: {type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
