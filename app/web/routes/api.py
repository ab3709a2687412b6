"""The JSON API under ``/api/``: the panels' data, the market and model views, and the
trading calls passed on to rec-trade-manager. All need a session (without one: 401)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response

from app.web import data, history, manager, panels
from app.web.data import read
from app.web.deps import CurrentSession, Pool, State, require_session
from app.web.errors import error
from app.web.intent_form import TICKER_RE, CloseTradeIn, OpenTradeIn
from app.web.models import (
    AUTH,
    WRITE,
    ErrorOut,
    IndexPanel,
    ManagerOut,
    MarketsPanel,
    Panel,
)
from app.web.panels import FILTER_RE, STATUS_RE

router = APIRouter(dependencies=[Depends(require_session)], responses=AUTH)
INDEX_RE = r"^[A-Za-z0-9_]{1,64}$"  # an index name (price_feed_indices)


@router.get("/api/account", response_model=Panel, tags=["account"])
async def account(request: Request, state: State) -> dict:
    return await panels.account(state, request)


@router.get("/api/fills", response_model=Panel, tags=["account"])
async def fills(pool: Pool, limit: int = Query(20, ge=1, le=1000)) -> dict:
    return await read(data.fills, pool, limit)


@router.get("/api/trades", response_model=Panel, tags=["trades"])
async def trades(pool: Pool, status: str | None = Query(None, pattern=STATUS_RE),
                 market: str | None = Query(None, pattern=FILTER_RE, max_length=128),
                 strategy: str | None = Query(None, pattern=FILTER_RE, max_length=64),
                 since: dt.date | None = None, until: dt.date | None = None,
                 limit: int = Query(200, ge=1, le=1000)) -> dict:
    out = await read(data.trades, pool, status=status, ticker=market, strategy=strategy,
                     since=since, until=until, limit=limit)
    history.tell(out.get("data") or [])
    return out


@router.get("/api/trades.csv", tags=["trades"],
            responses={200: {"content": {"text/csv": {}}, "description": "the trades"},
                       422: {"model": ErrorOut}})
async def trades_csv(request: Request, state: State) -> Response:
    """The Trades page's trades (its filters, up to 10,000) as CSV, with how each opened and
    why it closed in words."""
    filters, invalid = panels.trade_filters(request.query_params)
    if invalid:
        return error(422, "invalid_field", invalid, field=invalid.split(":")[0])
    out = await read(data.trades, state.pool, **filters, limit=10_000)
    if out.get("data") is None:
        return error(503, "unavailable", str(out.get("missing") or out.get("error")))
    return Response(history.as_csv(history.tell(out["data"])), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="rec-trades.csv"'})


@router.get("/api/trades/open", response_model=Panel, tags=["trades"])
async def open_trades(request: Request, state: State) -> dict:
    return await panels.open_trades(state, request)


@router.post("/api/trades/open", response_model=ManagerOut, tags=["trades"], responses=WRITE)
async def open_trade(state: State, session: CurrentSession, body: OpenTradeIn) -> JSONResponse:
    intent = manager.open_intent(manager.new_key(), body.market, body.side, body.count,
                                 body.limit_price)
    return manager.passed_on(*await manager.call(state, session.user, "POST", "/trades",
                                                 intent, manager.WAIT))


@router.post("/api/trades/close", response_model=ManagerOut, tags=["trades"],
             responses=WRITE)
async def close_trade(state: State, session: CurrentSession,
                      body: CloseTradeIn) -> JSONResponse:
    intent = manager.close_intent(manager.new_key(), body.trade_id, body.limit_price)
    return manager.passed_on(*await manager.call(state, session.user, "POST", "/trades",
                                                 intent, manager.WAIT))


@router.post("/api/trades/{trade_id}/cancel", response_model=ManagerOut, tags=["trades"],
             responses=WRITE)
async def cancel_order(state: State, session: CurrentSession,
                       trade_id: int = PathParam(ge=1, le=2**62)) -> JSONResponse:
    """Cancel what rests of a trade's entry (rec-trade-manager ``POST /trades/{id}/cancel``)."""
    return manager.passed_on(*await manager.call(state, session.user, "POST",
                                                 f"/trades/{trade_id}/cancel", None))


@router.get("/api/trading-settings", response_model=Panel, tags=["trades"])
async def trading_settings(pool: Pool) -> dict:
    return await read(data.trading_settings, pool)


@router.put("/api/trading-settings", response_model=ManagerOut, tags=["trades"],
            responses=WRITE)
async def change_trading_settings(state: State, session: CurrentSession,
                                  body: dict[str, Any]) -> JSONResponse:
    return manager.passed_on(*await manager.call(state, session.user, "PUT", "/settings",
                                                 body))


@router.get("/api/markets", response_model=MarketsPanel, tags=["markets"])
async def markets(request: Request, state: State) -> dict:
    return await panels.markets(state, request)


@router.get("/api/markets/{ticker}/history", response_model=Panel, tags=["markets"])
async def market_history(pool: Pool, ticker: str = PathParam(pattern=TICKER_RE),
                         minutes: int = Query(120, ge=1, le=10_080)) -> dict:
    return await read(data.market_history, pool, ticker, minutes)


@router.get("/api/markets/{ticker}/book", response_model=Panel, tags=["markets"])
async def market_book(pool: Pool, ticker: str = PathParam(pattern=TICKER_RE)) -> dict:
    return await read(data.book, pool, ticker)


@router.get("/api/feed", response_model=Panel, tags=["markets"])
async def feed(request: Request, state: State) -> dict:
    return await panels.feed(state, request)


@router.get("/api/strike-table", response_model=Panel, tags=["pricing"])
async def strike_table(request: Request, state: State) -> dict:
    return await panels.strikes(state, request)


@router.get("/api/watchlist", response_model=Panel, tags=["pricing"])
async def watchlist(pool: Pool) -> dict:
    return await read(data.watchlist, pool)


@router.get("/api/index", response_model=IndexPanel, tags=["pricing"])
async def index(pool: Pool, minutes: int = Query(60, ge=1, le=1440),
                index: str | None = Query(None, pattern=INDEX_RE)) -> dict:
    """The index seconds (averaged to at most 1,500 points an index); with ``index``, that
    one alone and the strikes and settlement window the chart draws."""
    out = await read(data.index_history, pool, minutes, index)
    if index:
        out["marks"] = (await read(data.chart_marks, pool, index)).get("data")
    return out


@router.get("/api/model", response_model=Panel, tags=["pricing"])
async def model(pool: Pool) -> dict:
    return await read(data.model, pool)


@router.get("/api/model/{version}/reliability.png", tags=["pricing"],
            responses={200: {"content": {"image/png": {}}}, 404: {"model": ErrorOut}})
async def reliability_plot(pool: Pool, version: int) -> Response:
    out = await read(data.reliability_png, pool, version)
    if out.get("data"):
        return Response(out["data"], media_type="image/png")
    why = out.get("missing") or out.get("error")
    return error(404, "not_found", f"version: model {version} has no reliability plot"
                 + (f" ({why})" if why else ""), "version")


@router.get("/api/services", tags=["services"])
async def services(request: Request, state: State) -> dict:
    return (await panels.services(state, request))["data"]


@router.get("/api/settings", tags=["settings"])
async def settings() -> dict:
    return {"settings": panels.effective_settings()}
