"""The simulator as one ASGI app: REST under /trade-api/v2, WebSocket at /trade-api/ws/v2,
GET /healthz, and the loopback-only /_sim control API (faults, clock, test helpers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from app.runtime.http import MAX_BODY_BYTES, BodyTooLarge
from app.sim.auth import AuthError, authenticate
from app.sim.config import SimConfig
from app.sim.context import error_body, error_response, injected, json_response
from app.sim.control import control_routes, loopback
from app.sim.rest import routes as rest_routes
from app.sim.sim import Sim

log = logging.getLogger("rec.sim")
WS_PATH = "/trade-api/ws/v2"
_loopback = loopback  # kept for callers of the old name

__all__ = ["WS_PATH", "Sim", "create_app"]


def create_app(config: SimConfig, world=None) -> Starlette:
    sim = Sim(config, world)

    async def healthz(request: Request) -> Response:
        return json_response(200, {"status": "ok", "sim_time_ms": sim.world.now_ms})

    async def websocket(ws: WebSocket) -> None:
        status = await sim.faults.before_request(WS_PATH)
        if status:
            await _deny(ws, injected(status))
            return
        raw = ws.scope.get("raw_path")
        path = raw.decode("latin-1").split("?", 1)[0] if raw else WS_PATH
        try:
            key_id = authenticate(ws.headers, "GET", path, sim.keys,
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
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={BodyTooLarge: _too_large})
    # no trailing-slash redirects: Starlette builds them from the Host header, which would
    # send a client wherever the request said it was going (a wrong path is a 404)
    app.router.redirect_slashes = False
    app.state.sim = sim
    return app


async def _too_large(request: Request, exc: Exception) -> Response:
    """A body over the server's cap that arrived without a Content-Length (chunked): the
    cap is found while the body is read, inside the app, so the 413 is answered here."""
    client = request.client
    log.warning("request body from %s over %d bytes (chunked): answered 413",
                client.host if client else "unknown", MAX_BODY_BYTES)
    return error_response(413, "payload_too_large", "the request body is too large",
                          f"at most {MAX_BODY_BYTES} bytes")


async def _deny(ws: WebSocket, response: Response) -> None:
    try:
        await ws.send_denial_response(response)
    except RuntimeError:  # server without the websocket.http.response extension
        await ws.close(code=1008)
