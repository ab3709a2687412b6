"""The rec-web ASGI app.

- ``/healthz``: the process answers.
- ``/readyz``: rec-web's own dependencies (the database); 503 names the failed check.
- ``/api/health``: the bundle's aggregate (database, exchange, every expected rec unit);
  503 if any fails.
- ``/``: a status page rendered on the server from ``templates/status.html`` (works with
  scripts disabled), refreshed every 5 s; its stylesheet is ``static/rec.css``.

Health answers come from the background :class:`~app.web.health.HealthMonitor`: they never
wait on a dependency. Slashes are not redirected (a redirect would echo the Host header).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from app.web.health import HealthMonitor

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


class CheckOut(BaseModel):
    ok: bool
    error: str | None = None


class UnitOut(BaseModel):
    unit: str
    active: str
    sub: str
    restarts: int
    result: str
    status: str
    ok: bool


class HealthOut(BaseModel):
    """The last results of the background checks; ``status`` "fail" answers 503."""

    status: str
    failed: list[str]
    checks: dict[str, CheckOut]
    age_sec: float | None


class AggregateOut(HealthOut):
    units: list[UnitOut] | None  # None: not running under systemd (units_note says why)
    units_note: str | None


class AliveOut(BaseModel):
    status: str


UNHEALTHY = {503: {"description": "a check failed: `failed` names it"}}


def create_app(monitor: HealthMonitor, ready: list[str], title: str = "rec") -> FastAPI:
    app = FastAPI(title=title, docs_url=None, redoc_url=None, redirect_slashes=False)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/healthz", response_model=AliveOut)
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", response_model=HealthOut,
             responses={503: {**UNHEALTHY[503], "model": HealthOut}})
    async def readyz() -> JSONResponse:
        body = monitor.snapshot(ready)
        return JSONResponse(body, status_code=http_status(body))

    @app.get("/api/health", response_model=AggregateOut,
             responses={503: {**UNHEALTHY[503], "model": AggregateOut}})
    async def health() -> JSONResponse:
        body = monitor.snapshot(with_units=True)
        return JSONResponse(body, status_code=http_status(body))

    @app.get("/", response_class=HTMLResponse, responses=UNHEALTHY)
    async def index(request: Request) -> HTMLResponse:
        body = monitor.snapshot(with_units=True)
        overall = "all healthy" if body["status"] == "ok" else "unhealthy: " + ", ".join(
            body["failed"])
        return templates.TemplateResponse(
            request, "status.html", {"title": title, "health": body, "overall": overall},
            status_code=http_status(body))

    return app


def http_status(body: dict) -> int:
    return 200 if body["status"] == "ok" else 503
