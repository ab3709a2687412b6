"""rec's Kalshi client against the simulator: figures, not a test.

    .venv/bin/python -m benchmarks.client_bench [--seconds N] [--sim-seconds N]

The simulator runs in its own process (uvloop + httptools, unlimited rate tier);
the client runs here on the default asyncio loop, as services run it.

1. RSA-PSS signatures/s (2048-bit key) - every request pays one - and Ed25519's;
2. signed GET /exchange/status through KalshiRest: sequential (latency p50/p99)
   and with 8 requests in flight;
3. orders through KalshiRest.create_order (V2 POST /portfolio/events/orders, resting,
   non-crossing; round trip p50/p99) and cancel_order (V2 DELETE), prices checked
   against each market's grid (read once with the market list);
4. WebSocket: messages/s received by KalshiWS (JSON with Decimal, seq checks,
   local books kept) while the simulator's world runs flat out.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from app.kalshi import signing
from app.kalshi.rest import KalshiRest, RetryPolicy
from app.kalshi.ws import KalshiWS
from benchmarks.simproc import SimProcess

PREFIX = "/trade-api/v2"

def bench_signing(seconds: float, signer: signing.Signer) -> None:
    """Signatures/s of the RSA key the benchmark uses and of an Ed25519 key (spec v3.31)."""
    ed = signing.Signer("client-bench-ed", signing.generate_ed25519_key())
    for name, s in (("RSA-PSS sign (2048):", signer), ("Ed25519 sign:", ed)):
        n, end = 0, time.perf_counter() + seconds
        t0 = time.perf_counter()
        while time.perf_counter() < end:
            s.headers("GET", PREFIX + "/exchange/status")
            n += 1
        dt = time.perf_counter() - t0
        print(f"{name:<29} {n / dt:>9,.0f} signatures/s ({1e6 * dt / n:.0f} us each)")


async def bench_rest(seconds: float, signer: signing.Signer) -> None:
    srv = SimProcess([signer], liquid=False)
    try:
        await srv.ready()
        # baseline: bare httpx with the same signing, to show the client's own overhead
        async with httpx.AsyncClient(base_url=srv.base, timeout=10) as raw:
            path = PREFIX + "/exchange/status"
            for _ in range(200):
                await raw.get(path, headers=signer.headers("GET", path))
            n, end = 0, time.perf_counter() + seconds
            t0 = time.perf_counter()
            while time.perf_counter() < end:
                r = await raw.get(path, headers=signer.headers("GET", path))
                r.json()
                n += 1
            dt = time.perf_counter() - t0
            print(f"bare httpx signed GET, seq.:  {n / dt:>9,.0f} req/s (baseline)")
            # the same for a V2 create + cancel, to separate the exchange's time from ours
            r = await raw.get(PREFIX + "/markets", params={"status": "open", "limit": 1},
                              headers=signer.headers("GET", PREFIX + "/markets"))
            ticker = r.json()["markets"][0]["ticker"]
            create = PREFIX + "/portfolio/events/orders"
            lat = []
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                s = time.perf_counter()
                r = await raw.post(create, headers=signer.headers("POST", create), json={
                    "ticker": ticker, "side": "bid", "count": "1.00", "price": "0.0200",
                    "client_order_id": f"bare-{len(lat)}", "time_in_force": "good_till_canceled",
                    "self_trade_prevention_type": "taker_at_cross"})
                lat.append(time.perf_counter() - s)
                path = f"{create}/{r.json()['order_id']}"
                await raw.delete(path, headers=signer.headers("DELETE", path))
            q = statistics.quantiles(lat, n=100)
            print(f"bare httpx V2 create:          p50 {1e3 * q[49]:.2f} ms, "
                  f"p99 {1e3 * q[98]:.2f} ms round trip (baseline)")
        policy = RetryPolicy(max_attempts=1)
        async with KalshiRest(srv.base + PREFIX, signer, retry=policy, timeout=10) as c:
            await c.start()  # rate budget from /account/limits (the unlimited tier: unpaced)
            for _ in range(200):  # warm-up
                await c.get_exchange_status()
            lat: list[float] = []
            end = time.perf_counter() + seconds
            t0 = time.perf_counter()
            while time.perf_counter() < end:
                s = time.perf_counter()
                await c.get_exchange_status()
                lat.append(time.perf_counter() - s)
            dt = time.perf_counter() - t0
            q = statistics.quantiles(lat, n=100)
            print(
                f"signed GET, sequential:       {len(lat) / dt:>9,.0f} req/s "
                f"(p50 {1e3 * q[49]:.2f} ms, p99 {1e3 * q[98]:.2f} ms)"
            )

            count = 0

            async def worker(end: float) -> None:
                nonlocal count
                while time.perf_counter() < end:
                    await c.get_exchange_status()
                    count += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(worker(t0 + seconds) for _ in range(8)))
            dt = time.perf_counter() - t0
            print(f"signed GET, 8 in flight:      {count / dt:>9,.0f} req/s")

            tickers = [m.ticker for m in (await c.get_markets(status="open", limit=1000)).items]
            ids: list[tuple[str, str]] = []
            lat = []
            end = time.perf_counter() + seconds
            t0 = time.perf_counter()
            i = 0
            while time.perf_counter() < end:
                ticker = tickers[i % len(tickers)]
                s = time.perf_counter()
                o = await c.create_order(ticker, "yes", "buy", 1, "0.02")
                lat.append(time.perf_counter() - s)
                ids.append((o.order_id, ticker))
                i += 1
            dt = time.perf_counter() - t0
            q = statistics.quantiles(lat, n=100)
            print(
                f"create_order (resting):       {len(ids) / dt:>9,.0f} orders/s "
                f"(round trip p50 {1e3 * q[49]:.2f} ms, p99 {1e3 * q[98]:.2f} ms)"
            )
            t0 = time.perf_counter()
            for oid, ticker in ids:
                await c.cancel_order(oid, ticker=ticker)
            dt = time.perf_counter() - t0
            print(f"cancel_order:                 {len(ids) / dt:>9,.0f} cancels/s")
    finally:
        srv.stop()


async def bench_ws(sim_seconds: int, signer: signing.Signer) -> None:
    srv = SimProcess([signer], liquid=True)
    try:
        await srv.ready()
        async with KalshiRest(srv.base + PREFIX, signer) as c:
            tickers = [m.ticker for m in (await c.get_markets(limit=1000)).items]
        ws = KalshiWS(srv.ws_url, signer, compression=None)
        async with ws:
            await ws.subscribe("orderbook_delta", market_tickers=tickers)
            await ws.subscribe("ticker", market_tickers=tickers)
            await ws.subscribe("trade", market_tickers=tickers)
            await ws.wait_connected(within=10)
            async with httpx.AsyncClient(base_url=srv.base, timeout=300) as h:
                advance = asyncio.create_task(
                    h.post("/_sim/advance", json={"seconds": sim_seconds})
                )
                n = 0
                first = last = None
                while True:
                    try:
                        # idle cutoff, not part of the figure (first..last message); long
                        # enough for a busy host to start streaming after the snapshots
                        m = await asyncio.wait_for(ws.recv(), 10.0)
                    except TimeoutError:
                        break
                    if m.type.startswith("client."):
                        continue
                    last = time.perf_counter()
                    first = first or last
                    n += 1
                await advance
            valid = sum(b.valid for b in ws.books.values())
        dt = (last - first) if first and last else 0
        if dt:
            print(
                f"WS via KalshiWS:              {n / dt:>9,.0f} msgs/s received, parsed, "
                f"seq-checked ({n:,} in {dt:.2f}s; {valid}/{len(ws.books)} books valid, "
                f"{ws.stats.seq_gaps} gaps)"
            )
    finally:
        srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--sim-seconds", type=int, default=1800)
    args = ap.parse_args()
    signer = signing.Signer("client-bench", signing.generate_private_key())
    bench_signing(args.seconds, signer)
    asyncio.run(bench_rest(args.seconds, signer))
    asyncio.run(bench_ws(args.sim_seconds, signer))


if __name__ == "__main__":
    main()
