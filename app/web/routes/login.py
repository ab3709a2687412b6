"""The login (a form, or JSON with ``Accept: application/json``), the logout and the
session's own view (``/api/session``: who, and the CSRF token)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.web import auth
from app.web.deps import CurrentSession, Form, State, require_session, same_origin
from app.web.errors import client_address, error
from app.web.models import AUTH
from app.web.state import WebState
from app.web.views import page

log = logging.getLogger(__name__)
router = APIRouter()
MAX_FIELD = 256


def safe_next(target: str) -> str:
    """Only a local path: never another host (an open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@dataclass
class LoginReply:
    """A refusal as JSON (an API client) or as the login page again (a browser)."""

    request: Request
    target: str
    user: str = ""  # typed: a refused login keeps it in the form

    @property
    def wants_json(self) -> bool:
        return "application/json" in self.request.headers.get("accept", "")

    def refuse(self, status: int, code: str, message: str, field: str | None = None,
               headers: dict[str, str] | None = None) -> Response:
        if self.wants_json:
            return error(status, code, message, field, headers)
        r = page(self.request, "login.html", status=status, next=self.target, error=message,
                 user=self.user[:MAX_FIELD])
        r.headers.update(headers or {})
        return r


def _missing_field(form: dict[str, str]) -> tuple[str, str] | None:
    for name in ("user", "password"):
        value = form.get(name)
        if not value:
            return name, f"{name}: is required"
        if len(value) > MAX_FIELD:
            return name, f"{name}: at most {MAX_FIELD} characters"
    return None


def _limit_keys(request: Request, user: str) -> tuple[str, str]:
    """What failed logins are counted against: the client's address and the user name."""
    return f"address {client_address(request)}", f"user {user}"


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return page(request, "login.html", next=safe_next(next), error=None, user="")


@router.post("/login", include_in_schema=False)
async def login(request: Request, state: State, form: Form) -> Response:
    address = client_address(request)
    reply = LoginReply(request, safe_next(str(form.get("next") or "/")),
                       str(form.get("user") or ""))
    if not same_origin(request):
        log.warning("cross-origin login from %s refused", address)
        return reply.refuse(403, "origin", "cross-origin login refused")
    if state.sessions is None or state.settings is None or \
            state.settings.web_password_hash is None:
        return reply.refuse(503, "no_login",
                            "no login is provisioned (credential web_password_hash)")
    if bad := _missing_field(form):
        return reply.refuse(422, "invalid_field", bad[1], bad[0])
    user, password = form["user"], form["password"]
    keys = _limit_keys(request, user)
    if (wait := state.limiter.retry_after(*keys)) is not None:
        log.warning("login as %r from %s refused: too many failed logins (retry in %.0fs)",
                    user[:64], address, wait)
        return reply.refuse(429, "rate_limited",
                            f"too many failed logins; try again in {wait:.0f}s",
                            headers={"Retry-After": str(int(wait) + 1)})
    # counted as failed before the check (which waits its turn in a thread), so concurrent
    # guesses cannot all pass the limit before any of them is counted
    n = state.limiter.failed(*keys)
    ok_user = secrets.compare_digest(user.encode(), state.settings.web_user.encode())
    ok = await state.passwords.verify(password,
                                      state.settings.web_password_hash.get_secret_value())
    if not (ok and ok_user):
        log.warning("failed login for user %r from %s (%d in the last %ds)", user[:64],
                    address, n, state.settings.web_login_window_sec)
        return reply.refuse(401, "bad_login", "wrong user or password")
    state.limiter.succeeded(*keys)
    return _logged_in(request, state, user, reply)


def _logged_in(request: Request, state: WebState, user: str, reply: LoginReply) -> Response:
    s = state.sessions.create(user)
    log.info("login: %s from %s", user, client_address(request))
    r: Response = (JSONResponse({"user": s.user, "csrf": s.csrf, "expires": s.expires})
                   if reply.wants_json else RedirectResponse(reply.target, status_code=303))
    r.set_cookie(auth.COOKIE, s.token, max_age=int(state.sessions.ttl), httponly=True,
                 samesite="strict", path="/", secure=request.url.scheme == "https")
    return r


@router.post("/logout", include_in_schema=False, dependencies=[Depends(require_session)])
async def logout(request: Request, state: State) -> Response:
    state.sessions.drop(request.cookies.get(auth.COOKIE))
    r = RedirectResponse("/login", status_code=303)
    r.delete_cookie(auth.COOKIE, path="/")
    return r


@router.get("/api/session", tags=["session"], responses=AUTH)
async def session_view(session: CurrentSession) -> dict:
    return {"user": session.user, "csrf": session.csrf, "expires": session.expires}
