"""REST side: the Trade API v2 endpoints the simulator serves, under /trade-api/v2.

Every handler runs behind one wrapper that applies, in order: injected faults, signature
auth (required where the spec marks the operation secured; checked whenever headers are
sent), per-key rate limits, then maps errors to Kalshi's error body.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.sim import order_group_rest as og
from app.sim import orders, portfolio, views
from app.sim.auth import AuthError, authenticate, has_auth_headers
from app.sim.context import (
    PREFIX,
    Ctx,
    Handler,
    RateLimited,
    error_response,
    injected,
    json_response,
)
from app.sim.market import STATUS_FILTER, Market
from app.sim.paging import in_window, page
from app.sim.ratelimit import DEFAULT_COST
from app.sim.venue import ExchangeError
from app.sim.wire import WireError, iso

YEAR_MS = 365 * 86_400_000

if TYPE_CHECKING:
    from app.sim.sim import Sim

# --- market data --------------------------------------------------------------------------

async def exchange_status(ctx: Ctx) -> tuple[int, object]:
    w = ctx.sim.world
    resume = None
    if w.in_maintenance():
        window = w.maintenance_window()
        resume = iso(window[1]) if window else None
    return 200, {"exchange_active": True,
                 "trading_active": ctx.sim.exchange.trading_active,
                 "exchange_estimated_resume_time": resume}


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SCHEDULE_WEEKS = 4


async def exchange_schedule(ctx: Ctx) -> tuple[int, object]:
    """Open around the clock except the weekly maintenance pause (in ET, as Kalshi lists)."""
    w = ctx.sim.world
    p = w.p
    hours: dict[str, list[dict]] = {}
    for i, day in enumerate(DAYS):
        sessions = [(0, 1440)]
        if i == p.maintenance_weekday:
            sessions = [(0, p.maintenance_start_min), (p.maintenance_end_min, 1440)]
        hours[day] = [{"open_time": _hhmm(a), "close_time": _hhmm(b)} for a, b in sessions
                      if b > a]
    standard = {"start_time": iso(w.started_ms), "end_time": iso(w.started_ms + 10 * YEAR_MS),
                **hours}
    windows = []
    at = w.now_ms
    for _ in range(SCHEDULE_WEEKS):
        window = w.maintenance_window(at)
        if window is None:
            break
        windows.append({"start_datetime": iso(window[0]), "end_datetime": iso(window[1])})
        at = window[1]
    return 200, {"schedule": {"standard_hours": [standard], "maintenance_windows": windows}}


async def account_limits(ctx: Ctx) -> tuple[int, object]:
    return 200, ctx.sim.limiter.limits()


async def endpoint_costs(ctx: Ctx) -> tuple[int, object]:
    costs = [{"method": m, "path": PREFIX + p, "cost": c} for m, p, _, _, _, c in ROUTES
             if c is not None and c != DEFAULT_COST]
    costs += [{"method": m, "path": PREFIX + p, "cost": c} for m, p, c in PER_ITEM_COSTS
              if c != DEFAULT_COST]
    return 200, {"default_cost": DEFAULT_COST, "endpoint_costs": costs}


async def list_series(ctx: Ctx) -> tuple[int, object]:
    cat = ctx.q("category")
    out = [views.series_dict(s) for s in ctx.sim.exchange.series.values()
           if cat is None or s.category == cat]
    return 200, {"series": out}


async def get_series(ctx: Ctx) -> tuple[int, object]:
    s = ctx.sim.exchange.series.get(ctx.request.path_params["series_ticker"])
    if s is None:
        raise ExchangeError(404, "not_found", "series not found")
    return 200, {"series": views.series_dict(s)}


def _market_views(ctx: Ctx, tickers: Iterable[str]) -> list[dict]:
    ex = ctx.sim.exchange
    return [views.market_dict(ex.markets[t], ex.books.get(t)) for t in tickers
            if t in ex.markets]


def _event_status(ctx: Ctx, tickers: list[str]) -> str:
    states = {ctx.sim.exchange.markets[t].status for t in tickers if t in ctx.sim.exchange.markets}
    for name in ("open", "unopened", "closed"):
        if states & STATUS_FILTER[name]:
            return name
    return "settled"


async def list_events(ctx: Ctx) -> tuple[int, object]:
    limit = ctx.q_int("limit", 200, 1, 200)
    status = ctx.q("status")
    if status is not None and status not in ("unopened", "open", "closed", "settled"):
        raise WireError("invalid_parameters", "status must be unopened, open, closed or settled")
    series = ctx.q("series_ticker")
    min_close = ctx.q_int("min_close_ts", None)
    nested = ctx.q_bool("with_nested_markets")
    evs = [e for e in ctx.sim.exchange.events.values()
           if (series is None or e.series_ticker == series)
           and (status is None or _event_status(ctx, e.markets) == status)
           and (min_close is None or e.strike_ms > min_close * 1000)]
    got, cursor = page(evs, lambda e: e.seq, ctx.q("cursor"), limit)
    out = [views.event_dict(e, _market_views(ctx, e.markets) if nested else None) for e in got]
    return 200, {"events": out, "cursor": cursor}


async def get_event(ctx: Ctx) -> tuple[int, object]:
    e = ctx.sim.exchange.events.get(ctx.request.path_params["event_ticker"])
    if e is None:
        raise ExchangeError(404, "not_found", "event not found")
    markets = _market_views(ctx, e.markets)
    nested = ctx.q_bool("with_nested_markets")
    return 200, {"event": views.event_dict(e, markets if nested else None), "markets": markets}


async def list_markets(ctx: Ctx) -> tuple[int, object]:
    limit = ctx.q_int("limit", 100, 0, 1000) or 100
    status = ctx.q("status")
    if status is not None and status not in STATUS_FILTER:
        raise WireError("invalid_parameters",
                        "status must be one of unopened, open, paused, closed, settled")
    allowed = STATUS_FILTER[status] if status else None
    event, series = ctx.q("event_ticker"), ctx.q("series_ticker")
    tickers = set(ctx.q("tickers").split(",")) if ctx.q("tickers") else None
    min_close, max_close = ctx.q_int("min_close_ts", None), ctx.q_int("max_close_ts", None)

    def keep(m: Market) -> bool:
        return ((allowed is None or m.status in allowed)
                and (event is None or m.event_ticker == event)
                and (series is None or m.series_ticker == series)
                and (tickers is None or m.ticker in tickers)
                and (min_close is None or m.close_ms > min_close * 1000)
                and (max_close is None or m.close_ms < max_close * 1000))

    ex = ctx.sim.exchange
    got, cursor = page((m for m in ex.markets.values() if keep(m)), lambda m: m.seq,
                       ctx.q("cursor"), limit)
    return 200, {"markets": [views.market_dict(m, ex.books.get(m.ticker)) for m in got],
                 "cursor": cursor}


async def get_market(ctx: Ctx) -> tuple[int, object]:
    m = ctx.sim.exchange.market(ctx.request.path_params["ticker"])
    return 200, {"market": views.market_dict(m, ctx.sim.exchange.books.get(m.ticker))}


async def market_candlesticks(ctx: Ctx) -> tuple[int, object]:
    """Per-minute candles the world recorded (1, 60 or 1440 minutes per candle).
    include_latest_before_start is accepted and not applied."""
    m = ctx.sim.exchange.market(ctx.request.path_params["ticker"])
    if m.series_ticker != ctx.request.path_params["series_ticker"]:
        raise ExchangeError(404, "not_found", f"market {m.ticker} is not in that series")
    start, end = ctx.q_int("start_ts", None, 0), ctx.q_int("end_ts", None, 0)
    period = ctx.q_int("period_interval", None)
    if start is None or end is None or period is None:
        raise WireError("invalid_parameters", "start_ts, end_ts and period_interval are required")
    if period not in (1, 60, 1440):
        raise WireError("invalid_parameters", "period_interval must be 1, 60 or 1440")
    return 200, {"ticker": m.ticker,
                 "candlesticks": ctx.sim.world.candles.query(m.ticker, start, end, period)}


async def get_orderbook(ctx: Ctx) -> tuple[int, object]:
    m = ctx.sim.exchange.market(ctx.request.path_params["ticker"])
    # the spec: "0 or negative means all levels, 1-100 for specific depth" (and lists no
    # 400 here): a depth above 100 is 100
    depth = min(max(ctx.q_int("depth", 0) or 0, 0), 100)
    return 200, views.orderbook_dict(ctx.sim.exchange.books[m.ticker], depth)


async def get_orderbooks(ctx: Ctx) -> tuple[int, object]:
    """GET /markets/orderbooks: up to 100 books in one call (tickers repeated or comma-joined)."""
    tickers: list[str] = []
    for value in ctx.request.query_params.getlist("tickers"):
        tickers.extend(t for t in value.split(",") if t)
    if not 1 <= len(tickers) <= 100:
        raise WireError("invalid_parameters", "tickers: between 1 and 100 market tickers")
    ex = ctx.sim.exchange
    unknown = [t for t in dict.fromkeys(tickers) if t not in ex.markets]
    if unknown:  # the spec lists 400 (not 404) for this operation
        raise WireError("invalid_parameters", f"tickers: unknown market {unknown[0]}")
    out = [{"ticker": t, **views.orderbook_dict(ex.books[t], 0)} for t in dict.fromkeys(tickers)]
    return 200, {"orderbooks": out}


async def list_trades(ctx: Ctx) -> tuple[int, object]:
    limit = ctx.q_int("limit", 100, 0, 1000) or 100
    ticker = ctx.q("ticker")
    trades = (t for t in reversed(ctx.sim.exchange.trades)
              if (ticker is None or t.ticker == ticker) and in_window(t.ts_ms, ctx))
    got, cursor = page(trades, lambda t: t.seq, ctx.q("cursor"), limit, descending=True)
    return 200, {"trades": [views.trade_dict(t) for t in got], "cursor": cursor}


# --- routing ---------------------------------------------------------------------------------

# (method, path under PREFIX, handler, auth required, bucket, token cost; None: the handler
# charges per item)
ROUTES: list[tuple[str, str, Handler, bool, str, int | None]] = [
    ("GET", "/exchange/status", exchange_status, False, "read", DEFAULT_COST),
    ("GET", "/exchange/schedule", exchange_schedule, False, "read", DEFAULT_COST),
    ("GET", "/account/limits", account_limits, True, "read", DEFAULT_COST),
    ("GET", "/account/endpoint_costs", endpoint_costs, False, "read", DEFAULT_COST),
    ("GET", "/series", list_series, False, "read", DEFAULT_COST),
    ("GET", "/series/{series_ticker}", get_series, False, "read", DEFAULT_COST),
    ("GET", "/events", list_events, False, "read", DEFAULT_COST),
    ("GET", "/events/{event_ticker}", get_event, False, "read", DEFAULT_COST),
    ("GET", "/markets", list_markets, False, "read", DEFAULT_COST),
    ("GET", "/markets/trades", list_trades, False, "read", DEFAULT_COST),
    ("GET", "/markets/orderbooks", get_orderbooks, True, "read", DEFAULT_COST),
    ("GET", "/markets/{ticker}", get_market, False, "read", DEFAULT_COST),
    ("GET", "/markets/{ticker}/orderbook", get_orderbook, True, "read", DEFAULT_COST),
    ("GET", "/series/{series_ticker}/markets/{ticker}/candlesticks", market_candlesticks,
     False, "read", DEFAULT_COST),
    ("GET", "/portfolio/balance", portfolio.balance, True, "read", DEFAULT_COST),
    ("GET", "/portfolio/positions", portfolio.positions, True, "read", DEFAULT_COST),
    ("GET", "/portfolio/fills", portfolio.list_fills, True, "read", DEFAULT_COST),
    ("GET", "/portfolio/settlements", portfolio.list_settlements, True, "read", DEFAULT_COST),
    ("GET", "/portfolio/orders", portfolio.list_orders, True, "read", DEFAULT_COST),
    ("GET", "/portfolio/orders/queue_positions", orders.queue_positions, True, "read",
     DEFAULT_COST),
    ("GET", "/portfolio/orders/{order_id}", orders.get_order, True, "read", 2),
    ("GET", "/portfolio/orders/{order_id}/queue_position", orders.queue_position, True,
     "read", DEFAULT_COST),
    ("POST", "/portfolio/events/orders", orders.create_order, True, "write",
     orders.ORDER_COST),
    ("DELETE", "/portfolio/events/orders", orders.cancel_all, True, "write",
     orders.CANCEL_COST),
    ("POST", "/portfolio/events/orders/batched", orders.batch_create, True, "write", None),
    ("DELETE", "/portfolio/events/orders/batched", orders.batch_cancel, True, "write", None),
    ("DELETE", "/portfolio/events/orders/{order_id}", orders.cancel_order, True, "write",
     orders.CANCEL_COST),
    ("POST", "/portfolio/events/orders/{order_id}/amend", orders.amend_order, True, "write",
     DEFAULT_COST),
    ("POST", "/portfolio/events/orders/{order_id}/decrease", orders.decrease_order, True,
     "write", DEFAULT_COST),
    ("GET", "/historical/cutoff", portfolio.historical_cutoff, False, "read", DEFAULT_COST),
    ("GET", "/historical/orders", portfolio.historical_orders, True, "read", DEFAULT_COST),
    ("GET", "/historical/fills", portfolio.historical_fills, True, "read", DEFAULT_COST),
    ("GET", "/portfolio/order_groups", og.list_groups, True, "read", DEFAULT_COST),
    ("POST", "/portfolio/order_groups/create", og.create_group, True, "write", DEFAULT_COST),
    ("GET", "/portfolio/order_groups/{order_group_id}", og.get_group, True, "read",
     DEFAULT_COST),
    ("DELETE", "/portfolio/order_groups/{order_group_id}", og.delete_group, True, "write",
     DEFAULT_COST),
    ("PUT", "/portfolio/order_groups/{order_group_id}/reset", og.reset_group, True, "write",
     DEFAULT_COST),
    ("PUT", "/portfolio/order_groups/{order_group_id}/trigger", og.trigger_group, True,
     "write", DEFAULT_COST),
    ("PUT", "/portfolio/order_groups/{order_group_id}/limit", og.limit_group, True, "write",
     DEFAULT_COST),
]
# batched endpoints bill per item
PER_ITEM_COSTS = [("POST", "/portfolio/events/orders/batched", orders.ORDER_COST),
                  ("DELETE", "/portfolio/events/orders/batched", orders.CANCEL_COST)]
# The v1 order writes, gone from the spec since v3.31.0: answered 410 as production does.
GONE: list[tuple[str, str]] = [
    ("POST", "/portfolio/orders"), ("POST", "/portfolio/orders/batched"),
    ("DELETE", "/portfolio/orders/batched"), ("DELETE", "/portfolio/orders/{order_id}"),
    ("POST", "/portfolio/orders/{order_id}/amend"),
    ("POST", "/portfolio/orders/{order_id}/decrease"),
]


def _authenticate(sim: Sim, request: Request) -> str:
    # Kalshi signs the path as sent (percent-encoded as on the wire), query excluded
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1").split("?", 1)[0] if raw else request.url.path
    return authenticate(request.headers, request.method, path, sim.keys,
                        int(time.time() * 1000), sim.config.max_clock_skew_ms)


def _signed_key(sim: Sim, request: Request) -> str | Response:
    """The key id of a correctly signed request, or its 401."""
    try:
        return _authenticate(sim, request)
    except AuthError as exc:
        return error_response(401, "authentication_error", "authentication failed", str(exc))


async def _serve(ctx: Ctx, handler: Handler, bucket: str, cost: int | None) -> Response:
    """Charge the tokens, run the handler and map its errors to Kalshi's error body."""
    try:
        if cost is not None:
            ctx.charge(bucket, cost)
        code, body = await handler(ctx)
    except RateLimited:
        return error_response(429, "too_many_requests", "too many requests",
                              f"rate limit tier {ctx.sim.limiter.tier}")
    except ExchangeError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details)
    except WireError as exc:
        return error_response(400, exc.code, exc.message)
    if code == 204:
        return Response(status_code=204)
    return json_response(code, body)


async def _deliver(sim: Sim, request: Request, response: Response) -> Response:
    """The answer as the faults let it through: held until released, or lost (the work is
    done either way; a lost answer, refusals included, becomes the fault's 5xx)."""
    held = sim.faults.hold_for(request.url.path)
    if held is not None:
        await held.wait()
    lost = sim.faults.take_lost(request.url.path, response.status_code)
    return injected(lost) if lost else response


def make_endpoint(sim: Sim, handler: Handler, auth_required: bool, bucket: str,
                  cost: int | None):
    async def endpoint(request: Request) -> Response:
        status = await sim.faults.before_request(request.url.path)
        if status:
            return injected(status)
        key_id: str | Response | None = None
        if auth_required or has_auth_headers(request.headers):
            key_id = _signed_key(sim, request)
        if isinstance(key_id, Response):
            return await _deliver(sim, request, key_id)
        response = await _serve(Ctx(sim, request, key_id), handler, bucket, cost)
        return await _deliver(sim, request, response)

    return endpoint


def routes(sim: Sim) -> list[Route]:
    out = [Route(PREFIX + path, make_endpoint(sim, h, auth, bucket, cost), methods=[method])
           for method, path, h, auth, bucket, cost in ROUTES]
    out += [Route(PREFIX + path, make_endpoint(sim, orders.legacy_write, False, "write", 0),
                  methods=[method]) for method, path in GONE]

    async def not_found(request: Request) -> Response:
        return error_response(404, "not_found", "no such endpoint on the simulator",
                              f"{request.method} {request.url.path}")

    out.append(Route(PREFIX + "/{rest:path}", not_found,
                     methods=["GET", "POST", "PUT", "DELETE", "PATCH"]))
    return out
