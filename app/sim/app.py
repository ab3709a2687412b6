"""The simulator as one ASGI app: REST under /trade-api/v2, WebSocket at /trade-api/ws/v2,
GET /healthz, and the loopback-only /_sim control API (faults, clock, test helpers)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from app.sim.auth import AuthError, KeyStore, authenticate
from app.sim.config import SimConfig
from app.sim.faults import Faults
from app.sim.ratelimit import RateLimiter
from app.sim.rest import Ctx, RateLimited, error_body, error_response, injected, json_response
from app.sim.rest import routes as rest_routes
from app.sim.world import World
from app.sim.ws import Hub

log = logging.getLogger("rec.sim")
WS_PATH = "/trade-api/ws/v2"


class Sim:
    """Everything one simulator instance holds."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.world = World(config.world_params())
        self.exchange = self.world.exchange
        self.hub = Hub(self.exchange)
        self.exchange.observers.append(self.hub)
        self.keys = KeyStore(config.keys_dir)
        self.limiter = RateLimiter(config.rate_tier)
        self.faults = Faults(enabled=config.faults_enabled)
        self.started = time.monotonic()

    def account(self, key_id: str):
        return self.exchange.account(key_id, cash=self.config.start_balance_cents)

    def rate_check(self, ctx: Ctx, kind: str, cost: float) -> None:
        who = ctx.key_id or (ctx.request.client.host if ctx.request.client else "?")
        if not self.limiter.allow(who, "read" if kind == "read" else "write", cost):
            raise RateLimited()


def _loopback(request: Request | WebSocket) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def control_routes(sim: Sim) -> list[Route]:
    async def control(request: Request) -> Response:
        if not sim.faults.enabled or not _loopback(request):
            return error_response(404, "not_found", "not found")
        if request.method == "GET":
            return json_response(200, state())
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return error_response(400, "invalid_request_body", "JSON object required")
        try:
            result = await apply(request.path_params["action"], body)
        except (KeyError, TypeError, ValueError) as exc:
            return error_response(400, "invalid_parameters", f"bad control request: {exc}")
        return json_response(200, {"ok": True, **result, "state": state()})

    def state() -> dict:
        w = sim.world
        return {"faults": sim.faults.state(), "trading_active": sim.exchange.trading_active,
                "sim_time_ms": w.now_ms, "spot": w.spot, "speed": sim.config.speed,
                "seed": sim.config.seed, "ws_connections": len(sim.hub.conns),
                "ws_messages_sent": sim.hub.sent}

    async def apply(action: str, body: dict) -> dict:
        f = sim.faults
        if action == "drop_ws":
            return {"dropped": await sim.hub.drop_all()}
        if action == "skip_seq":
            return {"subscriptions": sim.hub.skip_seq(body.get("sid"), int(body.get("n", 1)))}
        if action == "http_error":
            status = int(body.get("status", 503))
            if status != 429 and not 500 <= status <= 599:
                raise ValueError("status must be 429 or 5xx")
            f.error_status, f.error_count = status, int(body.get("count", 1))
            f.error_prefix = str(body.get("path_prefix", ""))
            return {}
        if action == "lose_response":
            status = int(body.get("status", 502))
            if not 500 <= status <= 599:
                raise ValueError("status must be 5xx")
            f.lost_status, f.lost_count = status, int(body.get("count", 1))
            f.lost_prefix = str(body.get("path_prefix", ""))
            return {}
        if action == "latency":
            f.latency_ms = int(body["ms"])
            return {}
        if action == "hang":
            f.hang(str(body["path"]))
            return {}
        if action == "release":
            f.release(body.get("path"))
            return {}
        if action == "halt":
            sim.exchange.set_trading(not bool(body.get("on", True)))
            return {}
        if action == "clear":
            f.clear()
            sim.exchange.set_trading(True)
            return {}
        if action == "advance":
            sim.world.advance(int(body["seconds"]))
            return {}
        if action == "set_spot":
            sim.world.spot = float(body["spot"])
            sim.world.samples.clear()
            sim.world.samples.append(sim.world.spot)
            return {}
        if action == "set_balance":
            sim.account(str(body["key_id"])).cash = int(body["cents"])
            return {}
        raise KeyError(action)

    return [Route("/_sim/{action}", control, methods=["GET", "POST"])]


def create_app(config: SimConfig) -> Starlette:
    sim = Sim(config)

    async def healthz(request: Request) -> Response:
        return json_response(200, {"status": "ok", "sim_time_ms": sim.world.now_ms})

    async def websocket(ws: WebSocket) -> None:
        status = await sim.faults.before_request(WS_PATH)
        if status:
            await _deny(ws, injected(status))
            return
        try:
            key_id = authenticate(ws.headers, "GET", WS_PATH, sim.keys,
                                  int(time.time() * 1000), config.max_clock_skew_ms)
        except AuthError as exc:
            body = error_body("authentication_error", "authentication failed", str(exc))
            await _deny(ws, json_response(401, body))
            return
        sim.account(key_id)
        await ws.accept()
        await sim.hub.serve(ws, key_id)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(sim.world.run(config.speed))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await sim.hub.drop_all()

    routes = [Route("/healthz", healthz), WebSocketRoute(WS_PATH, websocket),
              *control_routes(sim), *rest_routes(sim)]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sim = sim
    return app


async def _deny(ws: WebSocket, response: Response) -> None:
    try:
        await ws.send_denial_response(response)
    except RuntimeError:  # server without the websocket.http.response extension
        await ws.close(code=1008)
