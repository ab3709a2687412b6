"""The dashboard's pages and their panels alone (``/fragments/<name>``, re-fetched by
``static/rec.js`` on a notification), the API's documentation page and its OpenAPI document,
and each service's Prometheus metrics file as the node exporter reads it (``/metrics/<name>``,
linked from the Services page). All need a session (without one: a redirect to the login)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from app.runtime import metrics
from app.web import panels
from app.web.deps import State, require_session
from app.web.errors import error
from app.web.views import page, panel

router = APIRouter(dependencies=[Depends(require_session)], include_in_schema=False)
MONITOR_PANELS = ["strikes", "watchlist", "open_trades", "auto"]


@router.get("/fragments/{name}", response_class=HTMLResponse)
async def fragment(request: Request, state: State, name: str) -> Response:
    if name not in panels.PANELS:
        return error(404, "not_found", f"name: no panel {name!r}", "name")
    return panel(request, name, await panels.PANELS[name](state, request))


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, state: State) -> HTMLResponse:
    return page(request, "overview.html",
                **await panels.context(state, request, ["account", "ledger", "open_trades",
                                                         "fills"]))


@router.get("/monitor", response_class=HTMLResponse)
async def trade_monitor(request: Request, state: State) -> HTMLResponse:
    return page(request, "monitor.html",
                **await panels.context(state, request, MONITOR_PANELS))


@router.get("/markets", response_class=HTMLResponse)
async def markets(request: Request, state: State) -> HTMLResponse:
    ctx = await panels.context(state, request, ["markets", "book", "feed"])
    ticker = ctx["book"].get("ticker")
    named = next((m for g in ctx["markets"].get("groups") or () for m in g["rows"]
                  if m["ticker"] == ticker), {})
    return page(request, "markets.html", ticker=ticker, market_name=named.get("name"), **ctx)


@router.get("/trades", response_class=HTMLResponse)
async def trades(request: Request, state: State) -> HTMLResponse:
    ctx = await panels.context(state, request, ["trades"])
    status = 422 if ctx["trades"].get("invalid") else 200
    return page(request, "trades.html", status=status, q=request.query_params, **ctx)


@router.get("/model", response_class=HTMLResponse)
async def model(request: Request, state: State) -> HTMLResponse:
    return page(request, "model.html", **await panels.context(state, request, ["model"]))


@router.get("/services", response_class=HTMLResponse)
async def services(request: Request, state: State) -> HTMLResponse:
    return page(request, "services.html",
                **await panels.context(state, request, ["services"]))


@router.get("/metrics/{service}", response_class=PlainTextResponse)
async def service_metrics(state: State, service: str) -> Response:
    if service not in state.metric_names:
        return error(404, "not_found", f"service: no service {service!r}", "service")
    text = metrics.read(state.settings, service) if state.settings else None
    if text is None:
        return error(404, "not_found", f"service: no metrics file of {service} on this host "
                                       "(not running here, or metrics_enabled is off)",
                     "service")
    return Response(text, media_type=metrics.CONTENT_TYPE)


@router.get("/docs", response_class=HTMLResponse)
async def api_docs(request: Request) -> HTMLResponse:
    return page(request, "docs.html", openapi=request.app.openapi())


@router.get("/openapi.json")
async def openapi_document(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())
