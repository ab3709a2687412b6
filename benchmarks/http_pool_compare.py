"""KalshiRest's HTTP/1.1 pool against aiohttp's, on one simulator, in one run: figures, not a test.

    .venv/bin/python -m benchmarks.http_pool_compare [--rounds 20] [--seconds 0.5]

aiohttp is a dev requirement (requirements-dev.txt), for this comparison only. The simulator
runs in a process of its own (uvloop + httptools, unlimited rate tier). Two
KalshiRest clients talk to it, one on the hand-written pool (:mod:`app.kalshi.http1`), one on
aiohttp's keep-alive pool (C parser); rounds alternate A/B so both see the same machine load.
Per round and client: signed ``GET /portfolio/balance`` sequentially, unsigned
``GET /exchange/status`` sequentially (transport and parsing only, no RSA signature), and
signed ``GET /portfolio/balance`` with 8 in flight. Prints the median of each (requests/s, and
this process's CPU time per request: the client's own cost, steadier than req/s on a shared
machine), the ratios and the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx

from app.kalshi import signing
from app.kalshi.http1 import Http1Pool, RawResponse
from app.kalshi.rest import KalshiRest, RetryPolicy
from benchmarks.simproc import SimProcess

PREFIX = "/trade-api/v2"


class AiohttpPool:
    """KalshiRest's pool interface over one aiohttp session (keep-alive pool, C parser);
    failures as the httpx exceptions KalshiRest maps."""

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
                      body: bytes | None, *, resend_if_stale: bool = True) -> RawResponse:
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


POOLS = {"hand-written": Http1Pool, "aiohttp": AiohttpPool}


async def rate(call: Callable[[], Awaitable[object]], seconds: float,
               in_flight: int) -> tuple[float, float]:
    """Calls per second of ``call`` run by ``in_flight`` workers for ``seconds``, and this
    process's CPU time per call in microseconds (the client's own cost, whatever the load)."""
    count = 0
    end = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < end:
            await call()
            count += 1

    t0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return count / (time.perf_counter() - t0), 1e6 * (time.process_time() - cpu0) / count


def client(base: str, signer: signing.Signer | None, pool: type) -> KalshiRest:
    return KalshiRest(base + PREFIX, signer, retry=RetryPolicy(max_attempts=1),
                      pool=pool(base + PREFIX, 16, {"Accept": "application/json"}))


async def compare(rounds: int, seconds: float) -> None:
    signer = signing.Signer("pool-bench", signing.generate_private_key())
    srv = SimProcess([signer], liquid=False)
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        await srv.ready()
        signed = {name: client(srv.base, signer, pool) for name, pool in POOLS.items()}
        unsigned = {name: client(srv.base, None, pool) for name, pool in POOLS.items()}
        for name in POOLS:  # warm-up: connections open, code paths hot
            for _ in range(200):
                await signed[name].get_balance()
                await unsigned[name].get_exchange_status()
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for n in range(rounds):
            order = list(POOLS) if n % 2 == 0 else list(reversed(POOLS))
            for name in order:
                cases = {
                    "signed GET, sequential": (signed[name].get_balance, 1),
                    "unsigned GET, sequential": (unsigned[name].get_exchange_status, 1),
                    "signed GET, 8 in flight": (signed[name].get_balance, 8),
                }
                for case, (call, width) in cases.items():
                    figures.setdefault((case, name), []).append(
                        await rate(call, seconds, width))
        for c in (*signed.values(), *unsigned.values()):
            await c.aclose()
    finally:
        srv.stop()
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"medians of {rounds} alternating rounds of {seconds:g} s; ratio = hand-written's "
          "advantage (> 1: the hand-written pool is faster)")
    for case in dict.fromkeys(c for c, _ in figures):
        (mine, mine_cpu), (lib, lib_cpu) = (
            tuple(statistics.median(x) for x in zip(*figures[(case, name)], strict=True))
            for name in POOLS)
        print(f"  {case:<25} req/s: hand-written {mine:>6,.0f}  aiohttp {lib:>6,.0f}  "
              f"ratio {mine / lib:.2f}x | client CPU/req: {mine_cpu:>4,.0f} us vs "
              f"{lib_cpu:>4,.0f} us  ratio {lib_cpu / mine_cpu:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=0.5)
    args = ap.parse_args()
    asyncio.run(compare(args.rounds, args.seconds))


if __name__ == "__main__":
    main()
