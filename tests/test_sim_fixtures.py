"""Shared fixtures for the simulator tests: a simulator on a free loopback port, signed
httpx clients and WebSocket helpers. (No tests here; test modules import from it.)"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from app.kalshi.signing import Signer, generate_private_key, public_pem
from app.runtime.http import HttpServer
from app.sim.app import Sim, create_app
from app.sim.cli import register_public_key
from app.sim.config import SimConfig
from app.sim.server import uvicorn_options
from app.sim.world import WorldParams
from testkit.sim import START_MS

PREFIX = "/trade-api/v2"


@cache
def signer(key_id: str = "test-key") -> Signer:
    return Signer(key_id, generate_private_key())


class KalshiAuth(httpx.Auth):
    def __init__(self, s: Signer) -> None:
        self.s = s

    def auth_flow(self, request: httpx.Request):
        # Kalshi signs the path as sent (percent-encoded), without the query
        path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        request.headers.update(self.s.headers(request.method, path))
        yield request


@dataclass
class SimHandle:
    base: str
    ws_url: str
    sim: Sim
    signer: Signer
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self, s: Signer | None = None, auth: bool = True) -> httpx.AsyncClient:
        c = httpx.AsyncClient(base_url=self.base + PREFIX, timeout=10,
                              auth=KalshiAuth(s or self.signer) if auth else None)
        self.clients.append(c)
        return c

    async def control(self, action: str, **body) -> dict:
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as c:
            r = await c.post(f"/_sim/{action}", json=body)
            assert r.status_code == 200, r.text
            return r.json()

    async def ws(self, s: Signer | None = None) -> ClientConnection:
        headers = (s or self.signer).headers("GET", "/trade-api/ws/v2")
        return await websockets.connect(self.ws_url, additional_headers=headers,
                                        compression=None, max_size=2**24)

    def open_tickers(self, series: str = "KXBTCD") -> list[str]:
        return [m.ticker for m in self.sim.exchange.markets.values()
                if m.status == "active" and m.series_ticker == series]


def make_config(keys_dir: Path, **over) -> SimConfig:
    world = over.pop("world", None) or WorldParams()
    cfg = SimConfig(keys_dir=keys_dir, seed=over.pop("seed", 7), speed=over.pop("speed", 0.0),
                    start_ms=over.pop("start_ms", START_MS),
                    faults_enabled=over.pop("faults_enabled", True),
                    rate_tier=over.pop("rate_tier", "unlimited"), world=world, **over)
    return cfg


async def start_sim(tmp_path: Path, **over) -> tuple[SimHandle, HttpServer]:
    keys = tmp_path / "keys"
    s = signer()
    for k in (s, signer("other-key")):
        register_public_key(keys, k.key_id, public_pem(k.private_key))
    cfg = make_config(keys, **over)
    app = create_app(cfg)
    server = HttpServer(app, "127.0.0.1", 0, **uvicorn_options(cfg))
    await server.start()
    port = server.port
    handle = SimHandle(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/trade-api/ws/v2",
                       app.state.sim, s)
    return handle, server


async def stop_sim(handle: SimHandle, server: HttpServer) -> None:
    for c in handle.clients:
        await c.aclose()
    await server.stop()


@pytest.fixture
async def sim(tmp_path):
    """A simulator with liquidity, its clock moved only by the test."""
    handle, server = await start_sim(tmp_path)
    yield handle
    await stop_sim(handle, server)



@pytest.fixture
async def quiet_sim(tmp_path):
    """A simulator without simulated liquidity: only the test's two accounts trade."""
    handle, server = await start_sim(tmp_path, world=WorldParams(mm_levels=0, flow_rate_per_s=0.0))
    yield handle
    await stop_sim(handle, server)


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws: ClientConnection, pred, timeout: float = 5.0) -> list[dict]:
    """Messages up to and including the first that satisfies pred."""
    out = []
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        msg = await recv_json(ws, max(0.01, end - loop.time()))
        out.append(msg)
        if pred(msg):
            return out


_MARKS = iter(range(2_000_000_000, 2_100_000_000))


async def drain(ws: ClientConnection, timeout: float = 10.0) -> list[dict]:
    """Every message the simulator has queued for this connection so far.

    No quiet period to guess: a list_subscriptions command goes out as a marker, and the
    messages before its reply are returned. The simulator queues a connection's messages
    in order, and everything a finished REST call or control action caused is queued
    before that call returns, so nothing of it can arrive after the marker."""
    mark = next(_MARKS)
    await ws.send(json.dumps({"id": mark, "cmd": "list_subscriptions"}))
    got = await recv_until(ws, lambda m: m.get("id") == mark and m.get("type") == "ok",
                           timeout)
    return got[:-1]


ORDERS = "/portfolio/events/orders"  # the V2 order endpoints


def order_body(ticker: str, side: str = "yes", action: str = "buy", count: int | str = 1,
               price: int = 50, **extra) -> dict:
    """A CreateOrderV2Request from the legacy vocabulary: (side, action, price in `side`
    cents) -> the YES book (bid/ask at a YES dollar price)."""
    outcome = side if action == "buy" else ("no" if side == "yes" else "yes")
    yes_price = price if side == "yes" else 100 - price
    body = {"ticker": ticker, "side": "bid" if outcome == "yes" else "ask",
            "count": f"{count}.00" if isinstance(count, int) else count,
            "price": f"{yes_price / 100:.4f}", "time_in_force": "good_till_canceled",
            "self_trade_prevention_type": "taker_at_cross"}
    body.update(extra)
    return body


async def place(c: httpx.AsyncClient, ticker: str, **kw) -> dict:
    """Create a V2 order (must succeed) and return the full Order from the legacy read."""
    r = await c.post(ORDERS, json=order_body(ticker, **kw))
    assert r.status_code == 201, r.text
    got = await c.get(f"/portfolio/orders/{r.json()['order_id']}")
    assert got.status_code == 200, got.text
    return got.json()["order"]
