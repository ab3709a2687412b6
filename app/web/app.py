"""The rec-web ASGI app: the trader's dashboard, its JSON API and the bundle's health.

- ``/healthz`` (the process answers) and ``/readyz`` (database, feed freshness, account
  sync, the settlement index and the strike tables) are public; every other page and API
  call needs a login (pages redirect to ``/login``, the API answers 401).
- Pages are rendered on the server (Jinja2 ``templates/``). Each live part of a page is a
  *panel* (``templates/panels/<name>.html``), also served alone at ``/fragments/<name>``;
  ``static/rec.js`` listens to ``/api/events`` (Server-Sent Events fed by PostgreSQL
  NOTIFY, :mod:`app.web.live`) and re-fetches the panels and charts a notification concerns.
  No timers ask the server for anything: rec-web sends a ``heartbeat`` with the age of the
  market feed and the indices (:mod:`app.web.freshness`), and every page shows "DATA STALE"
  in its top bar when those, or the stream itself, go quiet.
- ``/api/...`` serves the same data as JSON; ``/docs`` lists it (from the OpenAPI document,
  rendered here: no CDN).
- Trading (manual open/close, auto-entry and auto-stop settings) goes through
  rec-trade-manager's HTTP API; rec-web never writes a trade or a setting itself.
- Every answer carries the security headers (a Content-Security-Policy of this origin only);
  HEAD is served wherever GET is.

The routes live in :mod:`app.web.routes`, one router per area; what they take from a request
is in :mod:`app.web.deps`; here they are only assembled. Health answers come from the
background :class:`~app.web.health.HealthMonitor`: they never wait on a dependency. Slashes
are not redirected (a redirect would echo the Host header).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.config import Settings
from app.web import errors
from app.web.freshness import Heartbeat
from app.web.middleware import HeadAsGet, SecurityHeaders
from app.web.routes import api, backtests, health, kill, live, login, manual, pages, settings
from app.web.state import WebState
from app.web.views import HERE

DESCRIPTION = ("rec-web: the trader's dashboard and its JSON API. Every path except /healthz "
               "and /readyz needs a session (POST /login); state-changing calls need the "
               "session's CSRF token in X-CSRF-Token (GET /api/session).")


def lifespan(state: WebState):
    """The heartbeat on the event stream runs while the app serves (with a database)."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        beat = None
        if state.pool is not None and state.settings is not None:
            beat = Heartbeat(state.hub, state.pool, state.settings)
            beat.start()
        try:
            yield
        finally:
            if beat is not None:
                await beat.stop()

    return run


def create_app(state: WebState, title: str = "rec") -> FastAPI:
    app = FastAPI(title=title, docs_url=None, redoc_url=None, redirect_slashes=False,
                  openapi_url=None, description=DESCRIPTION, lifespan=lifespan(state))
    app.state.web = state
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    errors.install(app)
    for area in (health, login, live, pages, manual, kill, settings, api, backtests):
        app.include_router(area.router)
    app.add_middleware(HeadAsGet)
    app.add_middleware(SecurityHeaders)
    return app


def forwarding(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for forwarded headers: X-Forwarded-For/-Proto are believed only from
    ``web_trusted_proxy`` (the TLS proxy's address, set when the role puts one in front of
    rec-web); with none set, never (a client on this host could claim any address)."""
    if not settings.web_trusted_proxy:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": settings.web_trusted_proxy}
