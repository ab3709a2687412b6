"""Public health: ``/healthz`` (the process answers), ``/readyz`` (rec-web's own
dependencies) and ``/api/health`` (the bundle's aggregate), all from the background
:class:`~app.web.health.HealthMonitor`: they never wait on a dependency."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.web.deps import Monitor, State, local_unproxied, require_session
from app.web.models import AUTH, UNHEALTHY, AggregateOut, AliveOut, HealthOut

router = APIRouter(tags=["health"])


def answer(body: dict) -> JSONResponse:
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


@router.get("/healthz", response_model=AliveOut)
async def alive() -> dict:
    return {"status": "ok"}


@router.get("/readyz", response_model=HealthOut,
            responses={503: {**UNHEALTHY[503], "model": HealthOut}})
async def ready(state: State, monitor: Monitor) -> JSONResponse:
    return answer(monitor.snapshot(state.ready_checks))


@router.get("/api/health", response_model=AggregateOut,
            responses={**AUTH, 503: {**UNHEALTHY[503], "model": AggregateOut}})
async def bundle_health(request: Request, monitor: Monitor) -> JSONResponse:
    """The bundle's aggregate. Needs a session, except from the host itself: a loopback
    client with no proxy's forwarding header (`rec status`, the play's health proof)."""
    if not local_unproxied(request):
        await require_session(request)
    return answer(monitor.snapshot(with_units=True))
