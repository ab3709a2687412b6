"""The rec-web ASGI app: the trader's dashboard, its JSON API and the bundle's health.

- ``/healthz`` (the process answers) and ``/readyz`` (database, feed freshness, account
  sync, the settlement index and the strike tables) are public; every other page and API
  call needs a login (pages redirect to ``/login``, the API answers 401).
- Pages are rendered on the server (Jinja2 ``templates/``). Each live part of a page is a
  *panel* (``templates/panels/<name>.html``), also served alone at ``/fragments/<name>``;
  ``static/rec.js`` listens to ``/api/events`` (Server-Sent Events fed by PostgreSQL
  NOTIFY, :mod:`app.web.live`) and re-fetches the panels and charts a notification concerns.
  No timers ask the server for anything.
- ``/api/...`` serves the same data as JSON; ``/docs`` lists it (from the OpenAPI document,
  rendered here: no CDN).
- Trading (manual open/close, auto-entry and auto-stop settings) goes through
  rec-trade-manager's HTTP API; rec-web never writes a trade or a setting itself.

Health answers come from the background :class:`~app.web.health.HealthMonitor`: they never
wait on a dependency. Slashes are not redirected (a redirect would echo the Host header).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import psycopg
import psycopg_pool
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.web import auth, data
from app.web.health import HealthMonitor
from app.web.live import Hub

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
TICKER_RE = r"^[A-Za-z0-9_.\-]{1,128}$"
STATUS_RE = r"^[a-z_]{1,32}$"
FILTER_RE = r"^[A-Za-z0-9_.:\-]{0,128}$"  # part of a ticker or a strategy name
SAFE = ("GET", "HEAD", "OPTIONS")

NAV = [("/", "Overview"), ("/monitor", "Trade monitor"), ("/markets", "Markets"),
       ("/trades", "Trades"), ("/manual", "Manual trading"), ("/model", "Model"),
       ("/services", "Services"), ("/settings", "Settings"), ("/docs", "API")]


# ---- formatting helpers for the templates ----------------------------------------------------

def money_cents(v: Any) -> str:
    if v is None:
        return "—"
    sign = "-" if v < 0 else ""
    return f"{sign}${abs(v) / 100:,.2f}"


def money(v: Any) -> str:
    """Dollars (a float from NUMERIC) with the sign first."""
    if v is None:
        return "—"
    sign = "-" if v < 0 else ""
    return f"{sign}${abs(v):,.2f}"


def price(v: Any) -> str:
    if v is None:
        return "—"
    return f"{v * 100:.1f}¢" if round(v * 100, 1) != round(v * 100) else f"{round(v * 100)}¢"


def ago(v: Any) -> str:
    if v is None:
        return "never"
    if isinstance(v, str):
        v = dt.datetime.fromisoformat(v)
    sec = (dt.datetime.now(dt.UTC) - v).total_seconds()
    return duration(sec) + " ago"


def duration(sec: Any) -> str:
    if sec is None:
        return "—"
    sec = float(sec)
    if sec < 0:
        return "0s"
    if sec < 120:
        return f"{sec:.0f}s"
    if sec < 7200:
        return f"{sec / 60:.0f}m"
    if sec < 172800:
        return f"{sec / 3600:.1f}h"
    return f"{sec / 86400:.1f}d"


def num(v: Any, digits: int = 2) -> str:
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def ts(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, str):
        v = dt.datetime.fromisoformat(v)
    return v.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def epoch(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, str):
        v = dt.datetime.fromisoformat(v)
    return v.timestamp()


for _f in (money_cents, money, price, ago, duration, num, ts, epoch):
    templates.env.filters[_f.__name__] = _f


# ---- the models of the JSON API ---------------------------------------------------------------

class CheckOut(BaseModel):
    ok: bool
    error: str | None = None
    note: str | None = None  # not checked: the check it depends on failed


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


class ErrorOut(BaseModel):
    code: str
    message: str
    field: str | None = None


class Panel(BaseModel):
    """A panel's data, or why there is none: ``missing`` (a table that does not exist yet)
    or ``error`` (the database did not answer)."""

    missing: str | None = None
    error: str | None = None
    data: Any = None


class OpenTradeIn(BaseModel):
    market: str = Field(pattern=TICKER_RE, description="market ticker")
    side: Literal["yes", "no"]
    count: int = Field(ge=1, le=100_000, description="contracts")
    limit_price: float = Field(gt=0, lt=1, description="limit in dollars of the side, e.g. 0.55")


class CloseTradeIn(BaseModel):
    trade_id: int = Field(ge=1)
    limit_price: float | None = Field(default=None, gt=0, lt=1)


class ManagerOut(BaseModel):
    """rec-trade-manager's answer, passed on as it came (``status`` is its HTTP status)."""

    status: int
    body: Any


UNHEALTHY = {503: {"description": "a check failed: `failed` names it"}}
AUTH = {401: {"model": ErrorOut, "description": "no session: log in at /login"}}
WRITE = {**AUTH, 400: {"model": ErrorOut, "description": "the body is not JSON"},
         403: {"model": ErrorOut, "description": "CSRF token or Origin refused"},
         422: {"model": ErrorOut, "description": "invalid input: `field` names it"},
         502: {"model": ErrorOut, "description": "rec-trade-manager did not answer"},
         503: {"model": ErrorOut, "description": "no rec-trade-manager in this build"}}


# ---- the app's state -------------------------------------------------------------------------

@dataclass
class Web:
    """What the routes use: the pool, the settings, sessions, live hub, manager client."""

    monitor: HealthMonitor
    settings: Any = None  # app.config.Settings
    pool: Any = None
    hub: Hub = field(default_factory=Hub)
    sessions: auth.Sessions | None = None
    limiter: auth.LoginLimiter | None = None
    client: httpx.AsyncClient | None = None
    expected_units: list[str] = field(default_factory=list)
    descriptions: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    @property
    def manager_url(self) -> str:
        return f"http://{self.settings.target_host}:{self.settings.trade_manager_port}"

    @property
    def stale_after(self) -> float:
        return float(self.settings.market_feed_stale_after_sec)


class NotLoggedIn(Exception):
    pass


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body = {"code": code, "message": message}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


FORWARDED = ("x-forwarded-for", "forwarded", "x-real-ip")


def local_unproxied(request: Request) -> bool:
    """A client on this host itself, not a request relayed by a reverse proxy (the proxy
    rec provisions always sets X-Forwarded-For)."""
    if not request.client or request.client.host not in ("127.0.0.1", "::1"):
        return False
    return not any(h in request.headers for h in FORWARDED)


def same_origin(request: Request) -> bool:
    """A browser's Origin (or Referer) must name this host; none at all is a non-browser."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return True
    host = request.headers.get("x-forwarded-host") or request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def create_app(web: HealthMonitor | Web, ready: list[str] | None = None,
               title: str = "rec") -> FastAPI:
    if isinstance(web, HealthMonitor):
        web = Web(web)
    ready = ready or ["database"]
    monitor = web.monitor
    app = FastAPI(title=title, docs_url=None, redoc_url=None, redirect_slashes=False,
                  openapi_url=None,
                  description="rec-web: the trader's dashboard and its JSON API. Every path "
                              "except /healthz and /readyz needs a session (POST /login); "
                              "state-changing calls need the session's CSRF token in "
                              "X-CSRF-Token (GET /api/session).")
    app.state.web = web
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    # ---- sessions ----------------------------------------------------------------------------
    def session_of(request: Request) -> auth.Session | None:
        if web.sessions is None:
            return None
        return web.sessions.get(request.cookies.get(auth.COOKIE))

    async def need_session(request: Request) -> auth.Session:
        s = session_of(request)
        if s is None:
            raise NotLoggedIn()
        if request.method not in SAFE:
            token = request.headers.get("x-csrf-token")
            if token is None and request.headers.get("content-type", "").startswith(
                    "application/x-www-form-urlencoded"):
                token = (await form_of(request)).get("csrf")
            if not auth.csrf_ok(s, token if isinstance(token, str) else None):
                log.warning("CSRF token refused: %s %s from %s", request.method,
                            request.url.path, client_address(request))
                raise Refused(403, "csrf", "missing or wrong CSRF token")
            if not same_origin(request):
                log.warning("cross-origin %s %s from %s refused (Origin %s)", request.method,
                            request.url.path, client_address(request),
                            request.headers.get("origin"))
                raise Refused(403, "origin", "cross-origin request refused")
        request.state.session = s
        return s

    @app.exception_handler(NotLoggedIn)
    async def not_logged_in(request: Request, exc: NotLoggedIn) -> Response:
        path = request.url.path
        if path.startswith(("/api/", "/fragments/", "/openapi.json")) or \
                request.method not in SAFE:
            return error(401, "login_required", "log in first: POST /login")
        target = path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
        r = error(exc.status_code, codes.get(exc.status_code, f"http_{exc.status_code}"),
                  str(exc.detail))
        for k, v in (exc.headers or {}).items():
            r.headers[k] = v
        return r

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return error(exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errs = exc.errors()
        first = errs[0] if errs else {"loc": (), "msg": "invalid input"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        name = ".".join(loc) or "body"
        return JSONResponse({"code": "invalid_field", "message": f"{name}: {first['msg']}",
                             "field": name,
                             "fields": {".".join(str(p) for p in e.get("loc", ())
                                                 if p not in ("body", "query", "path")) or
                                        "body": e["msg"] for e in errs}},
                            status_code=422)

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        s = getattr(request.state, "session", None) or session_of(request)
        return templates.TemplateResponse(
            request, name, {"title": title, "nav": NAV, "path": request.url.path,
                            "session": s, "mode": getattr(web.settings, "account_mode", None),
                            "stale_after": web.stale_after, **ctx},
            status_code=status)

    # ---- public: health ----------------------------------------------------------------------
    @app.get("/healthz", response_model=AliveOut, tags=["health"])
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", response_model=HealthOut, tags=["health"],
             responses={503: {**UNHEALTHY[503], "model": HealthOut}})
    async def readyz() -> JSONResponse:
        body = monitor.snapshot(ready)
        return JSONResponse(body, status_code=http_status(body))

    @app.get("/api/health", response_model=AggregateOut, tags=["health"],
             responses={**AUTH, 503: {**UNHEALTHY[503], "model": AggregateOut}})
    async def health(request: Request) -> Response:
        """The bundle's aggregate. Needs a session, except from the host itself: a loopback
        client with no proxy's forwarding header (`rec status`, the play's health proof)."""
        if not local_unproxied(request):
            await need_session(request)
        body = monitor.snapshot(with_units=True)
        return JSONResponse(body, status_code=http_status(body))

    # ---- login -------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_form(request: Request, next: str = "/") -> HTMLResponse:
        return page(request, "login.html", next=safe_next(next), error=None)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        address = client_address(request)
        form = await form_of(request)
        user, password = form.get("user"), form.get("password")
        target = safe_next(str(form.get("next") or "/"))
        wants_json = "application/json" in request.headers.get("accept", "")

        def answer(status: int, code: str, message: str, field: str | None = None,
                   headers: dict | None = None) -> Response:
            if wants_json:
                r = error(status, code, message, field)
            else:
                r = page(request, "login.html", status=status, next=target, error=message)
            for k, v in (headers or {}).items():
                r.headers[k] = v
            return r

        if not same_origin(request):
            log.warning("cross-origin login from %s refused", address)
            return answer(403, "origin", "cross-origin login refused")
        if web.sessions is None or web.settings is None or \
                web.settings.web_password_hash is None:
            return answer(503, "no_login", "no login is provisioned (credential "
                                           "web_password_hash)")
        wait = web.limiter.retry_after(address)
        if wait is not None:
            log.warning("login from %s refused: too many failed logins (retry in %.0fs)",
                        address, wait)
            return answer(429, "rate_limited",
                          f"too many failed logins; try again in {wait:.0f}s",
                          headers={"Retry-After": str(int(wait) + 1)})
        for name, value in (("user", user), ("password", password)):
            if not isinstance(value, str) or not value:
                return answer(422, "invalid_field", f"{name}: is required", name)
            if len(value) > 256:
                return answer(422, "invalid_field", f"{name}: at most 256 characters", name)
        ok_user = secrets.compare_digest(user.encode(), web.settings.web_user.encode())
        ok = auth.verify_password(password, web.settings.web_password_hash.get_secret_value())
        if not (ok and ok_user):
            n = web.limiter.failed(address)
            log.warning("failed login for user %r from %s (%d in the last %ds)", user[:64],
                        address, n, web.settings.web_login_window_sec)
            return answer(401, "bad_login", "wrong user or password")
        web.limiter.succeeded(address)
        s = web.sessions.create(user)
        log.info("login: %s from %s", user, address)
        r: Response = (JSONResponse({"user": s.user, "csrf": s.csrf, "expires": s.expires})
                       if wants_json else RedirectResponse(target, status_code=303))
        r.set_cookie(auth.COOKIE, s.token, max_age=int(web.sessions.ttl), httponly=True,
                     samesite="strict", path="/",
                     secure=request.headers.get("x-forwarded-proto") == "https")
        return r

    # ---- everything below needs a session ----------------------------------------------------
    api = APIRouter(dependencies=[Depends(need_session)], responses=AUTH)
    pages = APIRouter(dependencies=[Depends(need_session)], include_in_schema=False)

    @pages.post("/logout")
    async def logout(request: Request) -> Response:
        web.sessions.drop(request.cookies.get(auth.COOKIE))
        r = RedirectResponse("/login", status_code=303)
        r.delete_cookie(auth.COOKIE, path="/")
        return r

    @api.get("/api/session", tags=["session"])
    async def whoami(request: Request) -> dict:
        s = request.state.session
        return {"user": s.user, "csrf": s.csrf, "expires": s.expires}


    @api.get("/api/events", tags=["live"], response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "Server-Sent Events: one per NOTIFY"}})
    async def events() -> StreamingResponse:
        return StreamingResponse(web.hub.stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})

    # ---- panels: one reader each, as JSON and as an HTML fragment -----------------------------
    async def read(fn, *args, **kw) -> dict:
        if web.pool is None:
            return {"data": None, "error": "no database connection"}
        try:
            return {"data": await fn(*args, **kw)}
        except data.Missing as exc:
            return {"data": None, "missing": str(exc)}
        except psycopg.DataError as exc:
            return {"data": None, "error": f"not a valid query: {str(exc).splitlines()[0]}"}
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            why = str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__
            return {"data": None, "error": f"database: {why}"}

    async def p_account(request: Request) -> dict:
        return await read(data.account, web.pool)

    async def p_fills(request: Request) -> dict:
        return await read(data.fills, web.pool)

    async def p_open_trades(request: Request) -> dict:
        out = await read(data.open_trades, web.pool)
        rules = await read(data.trading_settings, web.pool, data.EXIT_RULE_KEYS)
        out["rules"] = rules.get("data")
        return out

    async def p_strikes(request: Request) -> dict:
        out = await read(data.strike_tables, web.pool)
        out["series"] = (await read(data.series_status, web.pool)).get("data")
        return out

    async def p_watchlist(request: Request) -> dict:
        return await read(data.watchlist, web.pool)

    async def p_auto(request: Request) -> dict:
        out = await read(data.trading_settings, web.pool, data.AUTO_KEYS)
        out["manager"] = web.manager_url
        return out

    async def p_markets(request: Request) -> dict:
        return await read(data.markets, web.pool)

    async def p_book(request: Request) -> dict:
        ticker = request.query_params.get("ticker") or ""
        if not re.match(TICKER_RE, ticker):
            return {"data": None, "ticker": None}
        out = await read(data.book, web.pool, ticker)
        out["ticker"] = ticker
        return out

    async def p_trades(request: Request) -> dict:
        q = request.query_params
        for key, pattern in (("status", STATUS_RE), ("market", FILTER_RE),
                             ("strategy", FILTER_RE)):
            if q.get(key) and not re.match(pattern, q[key]):
                return {"data": None, "filters": {},
                        "invalid": f"{key}: letters, digits and . _ : - only"}
        try:
            since = dt.date.fromisoformat(q["since"]) if q.get("since") else None
            until = dt.date.fromisoformat(q["until"]) if q.get("until") else None
        except ValueError:
            return {"data": None, "filters": {}, "invalid": "since/until: dates as YYYY-MM-DD"}
        out = await read(data.trades, web.pool, status=q.get("status") or None,
                         ticker=q.get("market") or None, strategy=q.get("strategy") or None,
                         since=since, until=until)
        out["filters"] = dict(q)
        return out

    async def p_services(request: Request) -> dict:
        from app.web.systemd import services

        return {"data": await services(web.expected_units, web.descriptions,
                                       web.settings.journal_export_path),
                "health": monitor.snapshot(with_units=True),
                "failures": await read(data.unit_failures, web.pool)}

    async def p_model(request: Request) -> dict:
        return await read(data.model, web.pool)

    async def p_feed(request: Request) -> dict:
        return await read(data.feed_status, web.pool)

    PANELS = {"account": p_account, "fills": p_fills, "open_trades": p_open_trades,
              "strikes": p_strikes, "watchlist": p_watchlist, "auto": p_auto,
              "markets": p_markets, "book": p_book, "trades": p_trades,
              "services": p_services, "model": p_model, "feed": p_feed}

    async def panels_ctx(request: Request, names: list[str]) -> dict:
        return {n: await PANELS[n](request) for n in names}

    @pages.get("/fragments/{name}", response_class=HTMLResponse)
    async def fragment(request: Request, name: str) -> Response:
        if name not in PANELS:
            return error(404, "not_found", f"name: no panel {name!r}", "name")
        ctx = await PANELS[name](request)
        return templates.TemplateResponse(
            request, f"panels/{name}.html",
            {"p": ctx, "stale_after": web.stale_after, "session": request.state.session,
             "q": request.query_params}, headers={"Cache-Control": "no-store"})

    # ---- pages -------------------------------------------------------------------------------
    @pages.get("/", response_class=HTMLResponse)
    async def overview(request: Request) -> HTMLResponse:
        return page(request, "overview.html",
                    **await panels_ctx(request, ["account", "open_trades", "fills"]))

    @pages.get("/monitor", response_class=HTMLResponse)
    async def monitor_page(request: Request) -> HTMLResponse:
        return page(request, "monitor.html", **await panels_ctx(
            request, ["strikes", "watchlist", "open_trades", "auto"]))

    @pages.get("/markets", response_class=HTMLResponse)
    async def markets_page(request: Request) -> HTMLResponse:
        ctx = await panels_ctx(request, ["markets", "book", "feed"])
        return page(request, "markets.html", ticker=ctx["book"].get("ticker"), **ctx)

    @pages.get("/trades", response_class=HTMLResponse)
    async def trades_page(request: Request) -> HTMLResponse:
        ctx = await panels_ctx(request, ["trades"])
        status = 422 if ctx["trades"].get("invalid") else 200
        return page(request, "trades.html", status=status, q=request.query_params, **ctx)

    @pages.get("/model", response_class=HTMLResponse)
    async def model_page(request: Request) -> HTMLResponse:
        return page(request, "model.html", **await panels_ctx(request, ["model"]))

    @pages.get("/services", response_class=HTMLResponse)
    async def services_page(request: Request) -> HTMLResponse:
        return page(request, "services.html", **await panels_ctx(request, ["services"]))

    @pages.get("/settings", response_class=HTMLResponse)
    async def settings_page(request: Request) -> HTMLResponse:
        return page(request, "settings.html", values=effective_settings())

    @pages.get("/docs", response_class=HTMLResponse)
    async def docs_page(request: Request) -> HTMLResponse:
        return page(request, "docs.html", openapi=app.openapi())

    @pages.get("/openapi.json")
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    # ---- manual trading (through rec-trade-manager) -------------------------------------------
    def validate_open(form: dict) -> tuple[dict, dict[str, str]]:
        errs: dict[str, str] = {}
        out: dict[str, Any] = {}
        market = str(form.get("market") or "").strip()
        if not re.match(TICKER_RE, market):
            errs["market"] = "market: a market ticker is required (letters, digits, . _ -)"
        out["market"] = market
        side = form.get("side")
        if side not in ("yes", "no"):
            errs["side"] = "side: must be yes or no"
        out["side"] = side
        try:
            count = int(str(form.get("count") or ""))
            if not 1 <= count <= 100_000:
                raise ValueError
            out["count"] = count
        except ValueError:
            errs["count"] = "count: a whole number of contracts from 1 to 100000"
            out["count"] = form.get("count")
        out["limit_price"], e = parse_price(form.get("limit_price"), "limit_price")
        if e:
            errs["limit_price"] = e
        return out, errs

    async def manager(method: str, path: str, body: dict | None, request: Request,
                      params: dict | None = None) -> tuple[int, Any]:
        if web.client is None:
            return 503, {"code": "no_manager",
                         "message": "rec-trade-manager is not part of this build"}
        by = f"web:{request.state.session.user}"
        try:
            r = await web.client.request(method, web.manager_url + path, json=body,
                                         params={"by": by, **(params or {})}, timeout=35)
        except httpx.HTTPError as exc:
            return 502, {"code": "manager_unreachable",
                         "message": f"rec-trade-manager did not answer: "
                                    f"{type(exc).__name__}: {exc}"}
        try:
            payload = r.json()
        except ValueError:
            payload = {"code": "manager_error", "message": r.text[:2000]}
        return r.status_code, payload

    @pages.get("/manual", response_class=HTMLResponse)
    async def manual_page(request: Request) -> HTMLResponse:
        q = request.query_params
        form = {"market": q.get("market", ""), "side": q.get("side", "yes"),
                "count": q.get("count", "1"), "limit_price": q.get("limit_price", "")}
        return page(request, "manual.html", form=form, errors={}, step="form",
                    **await panels_ctx(request, ["open_trades"]))

    @pages.post("/manual/open", response_class=HTMLResponse)
    async def manual_open(request: Request) -> HTMLResponse:
        form = dict(await form_of(request))
        values, errs = validate_open(form)
        ctx = await panels_ctx(request, ["open_trades"])
        if errs:
            return page(request, "manual.html", status=422, form=form, errors=errs,
                        step="form", **ctx)
        if form.get("confirm") != "yes":
            return page(request, "manual.html", form=values, errors={}, step="confirm",
                        key="web-" + secrets.token_hex(8), **ctx)
        key = str(form.get("idempotency_key") or "")
        if not re.match(r"^[A-Za-z0-9_.:\-]{1,128}$", key):
            return page(request, "manual.html", status=422, form=values,
                        errors={"idempotency_key": "idempotency_key: missing; confirm again"},
                        step="form", **ctx)
        status, body = await manager("POST", "/trades", {
            "intent": "open", "idempotency_key": key, "market": values["market"],
            "side": values["side"], "count": values["count"],
            "limit_price": str(values["limit_price"]), "strategy": "manual",
            "entry_method": "manual"}, request, {"wait": "10"})
        log.warning("manual open %s %s x%s @ %s by %s: manager answered %s",
                    values["market"], values["side"], values["count"], values["limit_price"],
                    request.state.session.user, status)
        ctx = await panels_ctx(request, ["open_trades"])
        return page(request, "manual.html", status=200 if status < 400 else status,
                    form=values, errors={}, step="result", result={"status": status,
                                                                   "body": body}, **ctx)

    @pages.post("/manual/close", response_class=HTMLResponse)
    async def manual_close(request: Request) -> HTMLResponse:
        form = dict(await form_of(request))
        ctx = await panels_ctx(request, ["open_trades"])
        errs = {}
        try:
            trade_id = int(str(form.get("trade_id") or ""))
            if trade_id < 1:
                raise ValueError
        except ValueError:
            errs["trade_id"] = "trade_id: a positive trade number"
            trade_id = None
        limit, e = parse_price(form.get("limit_price"), "limit_price", required=False)
        if e:
            errs["limit_price"] = e
        blank = {"market": "", "side": "yes", "count": "1", "limit_price": ""}
        if errs:
            return page(request, "manual.html", status=422, form=blank, errors=errs,
                        step="form", **ctx)
        close = {"trade_id": trade_id, "limit_price": limit}
        if form.get("confirm") != "yes":
            return page(request, "manual.html", form=blank, errors={}, step="confirm_close",
                        close=close, key="web-" + secrets.token_hex(8), **ctx)
        key = str(form.get("idempotency_key") or "")
        body = {"intent": "close", "idempotency_key": key, "trade_id": trade_id,
                "close_method": "manual"}
        if limit is not None:
            body["limit_price"] = str(limit)
        status, answer = await manager("POST", "/trades", body, request, {"wait": "10"})
        log.warning("manual close of trade %s by %s: manager answered %s", trade_id,
                    request.state.session.user, status)
        ctx = await panels_ctx(request, ["open_trades"])
        return page(request, "manual.html", status=200 if status < 400 else status,
                    form=blank, errors={}, step="result",
                    result={"status": status, "body": answer}, **ctx)

    @pages.post("/monitor/auto", response_class=HTMLResponse)
    async def monitor_auto(request: Request) -> Response:
        form = await form_of(request)
        body: dict[str, Any] = {"auto_entry_enabled": form.get("auto_entry_enabled") == "on",
                                "auto_stop": form.get("auto_stop") == "on"}
        for key in ("auto_entry_position_size", "auto_entry_multiplier"):
            try:
                v = int(str(form.get(key)))
                if not 1 <= v <= 10_000:
                    raise ValueError
                body[key] = v
            except ValueError:
                return page(request, "monitor.html", status=422,
                            auto_error=f"{key}: a whole number from 1 to 10000",
                            **await panels_ctx(request, ["strikes", "watchlist", "open_trades",
                                                         "auto"]))
        status, answer = await manager("PUT", "/settings", body, request)
        log.warning("trading settings %s by %s: manager answered %s", body,
                    request.state.session.user, status)
        if status >= 400:
            return page(request, "monitor.html", status=status,
                        auto_error=f"rec-trade-manager answered {status}: "
                                   f"{answer.get('message', answer)}",
                        **await panels_ctx(request, ["strikes", "watchlist", "open_trades",
                                                     "auto"]))
        return RedirectResponse("/monitor", status_code=303)

    # ---- the JSON API ------------------------------------------------------------------------
    @api.get("/api/account", response_model=Panel, tags=["account"])
    async def api_account(request: Request) -> dict:
        return await p_account(request)

    @api.get("/api/fills", response_model=Panel, tags=["account"])
    async def api_fills(limit: int = Query(20, ge=1, le=1000)) -> dict:
        return await read(data.fills, web.pool, limit)

    @api.get("/api/trades", response_model=Panel, tags=["trades"])
    async def api_trades(status: str | None = Query(None, pattern=STATUS_RE),
                         market: str | None = Query(None, pattern=FILTER_RE, max_length=128),
                         strategy: str | None = Query(None, pattern=FILTER_RE, max_length=64),
                         since: dt.date | None = None, until: dt.date | None = None,
                         limit: int = Query(200, ge=1, le=1000)) -> dict:
        return await read(data.trades, web.pool, status=status, ticker=market,
                          strategy=strategy, since=since, until=until, limit=limit)

    @api.get("/api/trades/open", response_model=Panel, tags=["trades"])
    async def api_open_trades(request: Request) -> dict:
        return await p_open_trades(request)

    @api.post("/api/trades/open", response_model=ManagerOut, tags=["trades"], responses=WRITE)
    async def api_open(request: Request, body: OpenTradeIn) -> JSONResponse:
        status, answer = await manager("POST", "/trades", {
            "intent": "open", "idempotency_key": "web-" + secrets.token_hex(8),
            "market": body.market, "side": body.side, "count": body.count,
            "limit_price": str(body.limit_price), "strategy": "manual",
            "entry_method": "manual"}, request, {"wait": "10"})
        return passed_on(status, answer)

    @api.post("/api/trades/close", response_model=ManagerOut, tags=["trades"], responses=WRITE)
    async def api_close(request: Request, body: CloseTradeIn) -> JSONResponse:
        payload = {"intent": "close", "idempotency_key": "web-" + secrets.token_hex(8),
                   "trade_id": body.trade_id, "close_method": "manual"}
        if body.limit_price is not None:
            payload["limit_price"] = str(body.limit_price)
        status, answer = await manager("POST", "/trades", payload, request, {"wait": "10"})
        return passed_on(status, answer)

    @api.get("/api/trading-settings", response_model=Panel, tags=["trades"])
    async def api_trading_settings() -> dict:
        return await read(data.trading_settings, web.pool)

    @api.put("/api/trading-settings", response_model=ManagerOut, tags=["trades"],
             responses=WRITE)
    async def api_put_trading_settings(request: Request, body: dict[str, Any]) -> JSONResponse:
        status, answer = await manager("PUT", "/settings", body, request)
        return passed_on(status, answer)

    @api.get("/api/markets", response_model=Panel, tags=["markets"])
    async def api_markets(request: Request) -> dict:
        out = await p_markets(request)
        if out.get("data"):
            for m in out["data"]:
                m["stale"] = m["feed_state"] != "closed" and (
                    m["age_sec"] is None or m["age_sec"] > web.stale_after)
        return out

    @api.get("/api/markets/{ticker}/history", response_model=Panel, tags=["markets"])
    async def api_market_history(ticker: str = PathParam(pattern=TICKER_RE),
                                 minutes: int = Query(120, ge=1, le=10_080)) -> dict:
        return await read(data.market_history, web.pool, ticker, minutes)

    @api.get("/api/markets/{ticker}/book", response_model=Panel, tags=["markets"])
    async def api_market_book(ticker: str = PathParam(pattern=TICKER_RE)) -> dict:
        return await read(data.book, web.pool, ticker)

    @api.get("/api/feed", response_model=Panel, tags=["markets"])
    async def api_feed(request: Request) -> dict:
        return await p_feed(request)

    @api.get("/api/strike-table", response_model=Panel, tags=["pricing"])
    async def api_strikes(request: Request) -> dict:
        return await p_strikes(request)

    @api.get("/api/watchlist", response_model=Panel, tags=["pricing"])
    async def api_watchlist() -> dict:
        return await read(data.watchlist, web.pool)

    @api.get("/api/index", response_model=Panel, tags=["pricing"])
    async def api_index(minutes: int = Query(60, ge=1, le=1440)) -> dict:
        return await read(data.index_history, web.pool, minutes)

    @api.get("/api/model", response_model=Panel, tags=["pricing"])
    async def api_model() -> dict:
        return await read(data.model, web.pool)

    @api.get("/api/model/{version}/reliability.png", tags=["pricing"],
             responses={200: {"content": {"image/png": {}}}, 404: {"model": ErrorOut}})
    async def api_reliability(version: int) -> Response:
        out = await read(data.reliability_png, web.pool, version)
        if not out.get("data"):
            return error(404, "not_found",
                         f"version: model {version} has no reliability plot"
                         + (f" ({out.get('missing') or out.get('error')})"
                            if out.get("missing") or out.get("error") else ""), "version")
        return Response(out["data"], media_type="image/png")

    @api.get("/api/services", tags=["services"])
    async def api_services(request: Request) -> dict:
        return (await p_services(request))["data"]

    @api.get("/api/settings", tags=["settings"])
    async def api_settings() -> dict:
        return {"settings": effective_settings()}

    def effective_settings() -> list[dict]:
        from app import config

        try:
            return [{"key": v.key, "env": config.env_name(v.key), "value": v.value,
                     "source": v.source} for v in config.provenance()]
        except config.ConfigError as exc:
            return [{"key": "error", "env": "", "value": str(exc), "source": ""}]

    app.include_router(pages)
    app.include_router(api)
    return app


async def form_of(request: Request) -> dict[str, str]:
    """An urlencoded form body (the only kind rec-web's pages send; no multipart parser is
    needed), read once per request. Repeated fields keep the first value."""
    cached = getattr(request.state, "form", None)
    if cached is None:
        ctype = request.headers.get("content-type", "")
        cached = {}
        if ctype.startswith("application/x-www-form-urlencoded"):
            body = (await request.body()).decode("utf-8", errors="replace")
            for k, v in parse_qsl(body, keep_blank_values=True, max_num_fields=100):
                cached.setdefault(k, v)
        request.state.form = cached
    return cached


def parse_price(v: Any, name: str, required: bool = True) -> tuple[Any, str | None]:
    """A limit price in dollars ("0.55") or cents ("55c", "55¢")."""
    text = str(v or "").strip().lower().rstrip("¢c").strip()
    if not text:
        return (None, f"{name}: required, in dollars (0.55) or cents (55c)") if required \
            else (None, None)
    try:
        value = float(text)
    except ValueError:
        return v, f"{name}: not a price; give dollars (0.55) or cents (55c)"
    if str(v).strip().lower().endswith(("c", "¢")):
        value = value / 100
    if not 0 < value < 1:
        return v, f"{name}: a price is above $0 and below $1 (dollars 0.55, or cents 55c)"
    return round(value, 4), None


def safe_next(target: str) -> str:
    """Only a local path: never another host (an open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def passed_on(status: int, answer: Any) -> JSONResponse:
    """rec-trade-manager's answer: on success ``{"status", "body"}``; on an error its own
    ``code`` and ``message`` as they came (the exchange's words included), with its status."""
    if status < 400:
        return JSONResponse({"status": status, "body": answer})
    a = answer if isinstance(answer, dict) else {}
    return JSONResponse({"code": str(a.get("code") or "manager_error"),
                         "message": str(a.get("message") or answer), "manager": answer},
                        status_code=status)


def http_status(body: dict) -> int:
    return 200 if body["status"] == "ok" else 503
