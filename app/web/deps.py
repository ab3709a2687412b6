"""What a route takes from its request, as ``Annotated`` dependencies: the shared state and
its parts (pool, settings, health monitor), the form, and the logged-in session (with the
CSRF and Origin checks of a state-changing request)."""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from app.config import Settings
from app.web import auth
from app.web.errors import SAFE, NotLoggedIn, Refused, client_address
from app.web.health import HealthMonitor
from app.web.state import WebState

log = logging.getLogger(__name__)
MAX_FORM_FIELDS = 100
FORWARDED = ("x-forwarded-for", "forwarded", "x-real-ip")


def web_state(request: Request) -> WebState:
    return request.app.state.web


State = Annotated[WebState, Depends(web_state)]


def _pool(state: State) -> AsyncConnectionPool | None:
    return state.pool


def _settings(state: State) -> Settings | None:
    return state.settings


def _monitor(state: State) -> HealthMonitor:
    return state.monitor


Pool = Annotated[AsyncConnectionPool | None, Depends(_pool)]
AppSettings = Annotated[Settings | None, Depends(_settings)]
Monitor = Annotated[HealthMonitor, Depends(_monitor)]


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the only kind rec-web's pages send; no multipart parser is
    needed), read once per request. Repeated fields keep the first value; more than
    ``MAX_FORM_FIELDS`` fields are refused (400)."""
    cached = getattr(request.state, "form", None)
    if cached is None:
        cached = {}
        if request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            body = (await request.body()).decode("utf-8", errors="replace")
            try:
                fields = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
            except ValueError:
                log.warning("form with over %d fields from %s: answered 400", MAX_FORM_FIELDS,
                            client_address(request))
                raise Refused(400, "too_many_fields",
                              f"the form has more than {MAX_FORM_FIELDS} fields") from None
            for k, v in fields:
                cached.setdefault(k, v)
        request.state.form = cached
    return cached


Form = Annotated[dict[str, str], Depends(read_form)]


def same_origin(request: Request) -> bool:
    """A browser's Origin (or Referer) must name this host; none at all is a non-browser."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return True
    host = request.headers.get("x-forwarded-host") or request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def local_unproxied(request: Request) -> bool:
    """A client on this host itself, not a request relayed by a reverse proxy (the proxy
    rec provisions always sets X-Forwarded-For)."""
    if not request.client or request.client.host not in ("127.0.0.1", "::1"):
        return False
    return not any(h in request.headers for h in FORWARDED)


def session_of(request: Request) -> auth.Session | None:
    sessions = web_state(request).sessions
    return None if sessions is None else sessions.get(request.cookies.get(auth.COOKIE))


async def _check_write(request: Request, session: auth.Session) -> None:
    """A state-changing request carries the session's CSRF token and no foreign Origin."""
    token = request.headers.get("x-csrf-token")
    if token is None and request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        token = (await read_form(request)).get("csrf")
    if not auth.csrf_ok(session, token if isinstance(token, str) else None):
        log.warning("CSRF token refused: %s %s from %s", request.method, request.url.path,
                    client_address(request))
        raise Refused(403, "csrf", "missing or wrong CSRF token")
    if not same_origin(request):
        log.warning("cross-origin %s %s from %s refused (Origin %s)", request.method,
                    request.url.path, client_address(request), request.headers.get("origin"))
        raise Refused(403, "origin", "cross-origin request refused")


async def require_session(request: Request) -> auth.Session:
    s = session_of(request)
    if s is None:
        raise NotLoggedIn()
    if request.method not in SAFE:
        await _check_write(request, s)
    request.state.session = s
    return s


CurrentSession = Annotated[auth.Session, Depends(require_session)]
