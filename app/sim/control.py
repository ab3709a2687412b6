"""The loopback-only /_sim control API: fault injection, the clock and test helpers.

Each action is a row in ACTIONS: its name, the handler and the body fields it reads.
GET /_sim/state answers the state; POST /_sim/<action> applies one action.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.websockets import WebSocket

from app.sim.context import error_response, json_response
from app.sim.money import CENT

if TYPE_CHECKING:
    from app.sim.sim import Sim

Action = Callable[["Sim", dict], Awaitable[dict] | dict]


def _status(body: dict, default: int, allow_429: bool) -> int:
    status = int(body.get("status", default))
    if not (500 <= status <= 599 or (allow_429 and status == 429)):
        raise ValueError("status must be 429 or 5xx" if allow_429 else "status must be 5xx")
    return status


async def drop_ws(sim: Sim, body: dict) -> dict:
    return {"dropped": await sim.hub.drop_all()}


def skip_seq(sim: Sim, body: dict) -> dict:
    return {"subscriptions": sim.hub.skip_seq(body.get("sid"), int(body.get("n", 1)))}


def http_error(sim: Sim, body: dict) -> dict:
    f = sim.faults
    f.error_status = _status(body, 503, allow_429=True)
    f.error_count, f.error_prefix = int(body.get("count", 1)), str(body.get("path_prefix", ""))
    return {}


def lose_response(sim: Sim, body: dict) -> dict:
    f = sim.faults
    f.lost_status = _status(body, 502, allow_429=False)
    f.lost_count, f.lost_prefix = int(body.get("count", 1)), str(body.get("path_prefix", ""))
    f.lost_only_success = bool(body.get("only_success", False))
    return {}


def latency(sim: Sim, body: dict) -> dict:
    sim.faults.latency_ms = int(body["ms"])
    return {}


def hang(sim: Sim, body: dict) -> dict:
    sim.faults.hang(str(body["path"]))
    return {}


def hold(sim: Sim, body: dict) -> dict:
    sim.faults.hold(str(body["path"]))
    return {}


def release(sim: Sim, body: dict) -> dict:
    sim.faults.release(body.get("path"))
    return {}


def halt(sim: Sim, body: dict) -> dict:
    sim.world.halted = bool(body.get("on", True))
    sim.world.sync_trading()
    return {}


def clear(sim: Sim, body: dict) -> dict:
    sim.faults.clear()
    sim.world.halted = False
    sim.world.sync_trading()
    return {}


def advance(sim: Sim, body: dict) -> dict:
    sim.world.advance(int(body["seconds"]))
    return {}


def set_spot(sim: Sim, body: dict) -> dict:
    w = sim.world
    w.spot = float(body["spot"])
    w.samples.clear()
    w.samples.append(w.spot)
    return {}


def pause_index(sim: Sim, body: dict) -> dict:
    """Stop (paused true) or resume publishing one index on the cfbenchmarks channels; the
    index keeps moving and markets still settle on it (a feed outage, not a market halt)."""
    ix = sim.world.indices.get(str(body["index_id"]))
    if ix is None:
        raise KeyError(f"unknown index {body['index_id']!r}")
    ix.paused = bool(body.get("paused", True))
    return {}


def set_balance(sim: Sim, body: dict) -> dict:
    sim.account(str(body["key_id"])).cash = int(body["cents"]) * CENT
    return {}


ACTIONS: dict[str, Action] = {
    "drop_ws": drop_ws, "skip_seq": skip_seq, "http_error": http_error,
    "lose_response": lose_response, "latency": latency, "hang": hang, "hold": hold,
    "release": release,
    "halt": halt, "clear": clear, "advance": advance, "set_spot": set_spot,
    "pause_index": pause_index,
    "set_balance": set_balance,
}


def loopback(request: Request | WebSocket) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def state(sim: Sim) -> dict:
    w = sim.world
    return {"faults": sim.faults.state(), "trading_active": sim.exchange.trading_active,
            "halted": w.halted, "in_maintenance": w.in_maintenance(),
            "sim_time_ms": w.now_ms, "spot": w.spot,
            "indices": {k: {"value": ix.value, "paused": ix.paused}
                        for k, ix in w.indices.items()}, "speed": sim.config.speed,
            "seed": sim.config.seed, "ws_connections": len(sim.hub.conns),
            "ws_messages_sent": sim.hub.sent}


async def _body(request: Request) -> dict | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def control_routes(sim: Sim) -> list[Route]:
    async def control(request: Request) -> Response:
        if not sim.faults.enabled or not loopback(request):
            return error_response(404, "not_found", "not found")
        if request.method == "GET":
            return json_response(200, state(sim))
        body = await _body(request)
        if body is None:
            return error_response(400, "invalid_request_body", "JSON object required")
        action = ACTIONS.get(request.path_params["action"])
        if action is None:
            return error_response(400, "invalid_parameters", "unknown control action")
        try:
            result = action(sim, body)
            if not isinstance(result, dict):
                result = await result
        except (KeyError, TypeError, ValueError) as exc:
            return error_response(400, "invalid_parameters", f"bad control request: {exc}")
        return json_response(200, {"ok": True, **result, "state": state(sim)})

    return [Route("/_sim/{action}", control, methods=["GET", "POST"])]
