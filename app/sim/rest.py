"""REST side: the Trade API v2 endpoints the simulator serves, under /trade-api/v2.

Every handler runs behind one wrapper that applies, in order: injected faults, signature
auth (required where the spec marks the operation secured; checked whenever headers are
sent), per-key rate limits, then maps errors to Kalshi's error body.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.sim import views
from app.sim.auth import AuthError, authenticate, has_auth_headers
from app.sim.exchange import TIFS, ExchangeError, OrderRequest
from app.sim.market import STATUS_FILTER, Market
from app.sim.matching import YES
from app.sim.wire import WireError, parse_count, parse_price

if TYPE_CHECKING:
    from app.sim.accounts import Account
    from app.sim.app import Sim

PREFIX = "/trade-api/v2"
SERVICE = "exchange-sim"
MAX_BATCH = 20


def error_body(code: str, message: str, details: str = "") -> dict:
    """Kalshi's error body: the spec's ErrorResponse fields, also nested under "error"
    the way the production API wraps them, so clients of either shape can read it."""
    inner = {"code": code, "message": message, "details": details, "service": SERVICE}
    return {**inner, "error": dict(inner)}


def json_response(status: int, body: object) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def error_response(status: int, code: str, message: str, details: str = "") -> Response:
    return json_response(status, error_body(code, message, details))


STATUS_CODES = {429: ("too_many_requests", "too many requests"),
                500: ("internal_server_error", "internal server error"),
                502: ("bad_gateway", "bad gateway"),
                503: ("service_unavailable", "service unavailable"),
                504: ("gateway_timeout", "gateway timeout")}


def injected(status: int) -> Response:
    code, msg = STATUS_CODES.get(status, ("injected_fault", "injected fault"))
    return error_response(status, code, msg, "injected by the simulator's fault control")


@dataclass
class Ctx:
    sim: Sim
    request: Request
    key_id: str | None

    @property
    def account(self) -> Account:
        assert self.key_id is not None
        return self.sim.account(self.key_id)

    def q(self, name: str) -> str | None:
        v = self.request.query_params.get(name)
        return v if v not in (None, "") else None

    def q_int(self, name: str, default: int | None, lo: int | None = None,
              hi: int | None = None) -> int | None:
        v = self.q(name)
        if v is None:
            return default
        try:
            n = int(v)
        except ValueError:
            raise WireError("invalid_parameters", f"{name} must be an integer") from None
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise WireError("invalid_parameters", f"{name} must be between {lo} and {hi}")
        return n

    def q_bool(self, name: str) -> bool:
        return (self.q(name) or "").lower() in ("true", "1")

    async def body(self) -> dict:
        try:
            data = orjson.loads(await self.request.body() or b"null")
        except orjson.JSONDecodeError:
            raise WireError("invalid_request_body", "the request body is not JSON") from None
        if not isinstance(data, dict):
            raise WireError("invalid_request_body", "the request body must be a JSON object")
        return data


Handler = Callable[[Ctx], Awaitable[tuple[int, object]]]


# --- pagination ------------------------------------------------------------------------

def _cursor_in(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        return base64.urlsafe_b64decode(cursor.encode() + b"==").decode()
    except (ValueError, UnicodeDecodeError):
        raise WireError("invalid_parameters", "invalid cursor") from None


def page(items: Iterable[Any], key: Callable[[Any], Any], cursor: str | None, limit: int,
         descending: bool = False) -> tuple[list[Any], str]:
    """Keyset pagination over items sorted by `key`; the cursor is the last key sent."""
    after = _cursor_in(cursor)
    after_int = None
    if after is not None and after.lstrip("-").isdigit():
        after_int = int(after)
    elif after is not None and not after.startswith("t:"):
        raise WireError("invalid_parameters", "invalid cursor")
    out = []
    more = False
    for it in items:
        k = key(it)
        if after is not None:
            if isinstance(k, int):
                if after_int is None:
                    raise WireError("invalid_parameters", "invalid cursor")
                if (k >= after_int) if descending else (k <= after_int):
                    continue
            else:
                ks = "t:" + str(k)
                if (ks >= after) if descending else (ks <= after):
                    continue
        if len(out) == limit:
            more = True
            break
        out.append(it)
    nxt = ""
    if more and out:
        last = key(out[-1])
        raw = str(last) if isinstance(last, int) else "t:" + str(last)
        nxt = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    return out, nxt


def _in_window(ts_ms: int, ctx: Ctx) -> bool:
    lo = ctx.q_int("min_ts", None)
    hi = ctx.q_int("max_ts", None)
    return (lo is None or ts_ms >= lo * 1000) and (hi is None or ts_ms <= hi * 1000)


# --- market data --------------------------------------------------------------------------

async def exchange_status(ctx: Ctx) -> tuple[int, object]:
    return 200, {"exchange_active": True,
                 "trading_active": ctx.sim.exchange.trading_active,
                 "exchange_estimated_resume_time": None}


async def account_limits(ctx: Ctx) -> tuple[int, object]:
    lim = ctx.sim.limiter
    return 200, {"usage_tier": lim.tier, "read_limit": lim.read_limit,
                 "write_limit": lim.write_limit}


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


async def get_orderbook(ctx: Ctx) -> tuple[int, object]:
    m = ctx.sim.exchange.market(ctx.request.path_params["ticker"])
    depth = ctx.q_int("depth", 0, 0, 100) or 0
    return 200, views.orderbook_dict(ctx.sim.exchange.books[m.ticker], depth)


async def list_trades(ctx: Ctx) -> tuple[int, object]:
    limit = ctx.q_int("limit", 100, 0, 1000) or 100
    ticker = ctx.q("ticker")
    trades = (t for t in reversed(ctx.sim.exchange.trades)
              if (ticker is None or t.ticker == ticker) and _in_window(t.ts_ms, ctx))
    got, cursor = page(trades, lambda t: t.seq, ctx.q("cursor"), limit, descending=True)
    return 200, {"trades": [views.trade_dict(t) for t in got], "cursor": cursor}


# --- portfolio ------------------------------------------------------------------------------

async def balance(ctx: Ctx) -> tuple[int, object]:
    acct = ctx.account
    ex = ctx.sim.exchange
    value = 0
    for p in acct.positions.values():
        if p.position == 0:
            continue
        book = ex.books.get(p.ticker)
        m = ex.markets.get(p.ticker)
        yb, _, ya, _ = views.top(book)
        mark = (yb + ya) // 2 if yb else (m.last_price if m else 0)
        value += p.position * mark if p.position > 0 else -p.position * (100 - mark)
    updated = acct.updated_ms or ex.clock()
    return 200, {"balance": acct.balance, "portfolio_value": value,
                 "updated_ts": updated // 1000}


def _check_subaccount(ctx: Ctx, value: object) -> None:
    if value not in (None, 0, "0"):
        raise WireError("invalid_parameters", "the simulator has no subaccounts; use 0")


async def positions(ctx: Ctx) -> tuple[int, object]:
    _check_subaccount(ctx, ctx.q("subaccount"))
    acct = ctx.account
    limit = ctx.q_int("limit", 100, 1, 1000)
    ticker, event = ctx.q("ticker"), ctx.q("event_ticker")
    filters = set((ctx.q("count_filter") or "").split(",")) - {""}
    if filters - {"position", "total_traded"}:
        raise WireError("invalid_parameters", "count_filter accepts position, total_traded")
    resting: dict[str, int] = {}
    for o in acct.resting.values():
        resting[o.ticker] = resting.get(o.ticker, 0) + o.remaining

    def keep(p: Any) -> bool:
        if ticker is not None and p.ticker != ticker:
            return False
        if event is not None and p.event_ticker != event:
            return False
        if "position" in filters and p.position == 0 and not (
                "total_traded" in filters and p.total_traded):
            return False
        return not ("total_traded" in filters and "position" not in filters
                    and p.total_traded == 0)

    ps = sorted((p for p in acct.positions.values() if keep(p)), key=lambda p: p.ticker)
    got, cursor = page(ps, lambda p: p.ticker, ctx.q("cursor"), limit)
    by_event: dict[str, list] = {}
    for p in got:
        by_event.setdefault(p.event_ticker, []).append(p)
    return 200, {
        "market_positions": [views.position_dict(p, resting.get(p.ticker, 0)) for p in got],
        "event_positions": [views.event_position_dict(e, v) for e, v in by_event.items()],
        "cursor": cursor,
    }


async def list_orders(ctx: Ctx) -> tuple[int, object]:
    acct = ctx.account
    limit = ctx.q_int("limit", 100, 1, 1000)
    ticker, status = ctx.q("ticker"), ctx.q("status")
    if status is not None and status not in ("resting", "canceled", "executed"):
        raise WireError("invalid_parameters", "status must be resting, canceled or executed")
    events = set(ctx.q("event_ticker").split(",")) if ctx.q("event_ticker") else None
    ex = ctx.sim.exchange

    def keep(o: Any) -> bool:
        if ticker is not None and o.ticker != ticker:
            return False
        if status is not None and o.status != status:
            return False
        if events is not None:
            m = ex.markets.get(o.ticker)
            if m is None or m.event_ticker not in events:
                return False
        return _in_window(o.created_ms, ctx)

    orders = (o for o in reversed(acct.orders.values()) if keep(o))
    got, cursor = page(orders, lambda o: o.seq, ctx.q("cursor"), limit, descending=True)
    return 200, {"orders": [views.order_dict(o, acct) for o in got], "cursor": cursor}


def _bool(body: dict, name: str) -> bool:
    v = body.get(name, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise WireError("invalid_parameters", f"{name} must be a boolean")
    return v


def parse_order(body: dict, now_ms: int) -> OrderRequest:
    missing = [k for k in ("ticker", "side", "action") if not body.get(k)]
    if missing:
        raise WireError("missing_parameters", f"missing required field(s): {', '.join(missing)}")
    ticker, side, action = body["ticker"], body["side"], body["action"]
    if not isinstance(ticker, str):
        raise WireError("invalid_parameters", "ticker must be a string")
    if side not in ("yes", "no"):
        raise WireError("invalid_parameters", "side must be yes or no")
    if action not in ("buy", "sell"):
        raise WireError("invalid_parameters", "action must be buy or sell")
    count = parse_count(body.get("count"), body.get("count_fp"), "count")
    if count is None:
        raise WireError("missing_parameters", "count or count_fp is required")
    yes = parse_price(body.get("yes_price"), body.get("yes_price_dollars"), "yes_price")
    no = parse_price(body.get("no_price"), body.get("no_price_dollars"), "no_price")
    if yes is not None and no is not None:
        raise WireError("invalid_parameters", "give either a yes price or a no price, not both")
    buy_max_cost = body.get("buy_max_cost")
    if buy_max_cost is not None and (isinstance(buy_max_cost, bool)
                                     or not isinstance(buy_max_cost, int) or buy_max_cost < 1):
        raise WireError("invalid_parameters", "buy_max_cost must be a positive integer (cents)")
    if yes is None and no is None:
        if buy_max_cost is None:
            raise WireError("missing_parameters", "a price is required (yes_price or no_price)")
        price = 99
    elif side == YES:
        price = yes if yes is not None else 100 - no  # type: ignore[operator]
    else:
        price = no if no is not None else 100 - yes  # type: ignore[operator]
    tif = body.get("time_in_force") or "good_till_canceled"
    if tif not in TIFS:
        raise WireError("invalid_parameters", f"time_in_force must be one of {', '.join(TIFS)}")
    if buy_max_cost is not None:
        tif = "fill_or_kill"
    stp = body.get("self_trade_prevention_type") or "taker_at_cross"
    if stp not in ("taker_at_cross", "maker"):
        raise WireError("invalid_parameters",
                        "self_trade_prevention_type must be taker_at_cross or maker")
    coid = body.get("client_order_id") or ""
    if not isinstance(coid, str) or len(coid) > 256:
        raise WireError("invalid_parameters", "client_order_id must be a string")
    exp = body.get("expiration_ts")
    expiration_ms = None
    if exp is not None:
        if isinstance(exp, bool) or not isinstance(exp, int):
            raise WireError("invalid_parameters", "expiration_ts must be unix seconds")
        expiration_ms = exp * 1000
        if expiration_ms <= now_ms:
            raise WireError("invalid_parameters", "expiration_ts is in the past")
    if body.get("order_group_id"):
        raise WireError("invalid_parameters", "order groups are not supported by the simulator")
    _check_subaccount_body(body)
    reduce_only = _bool(body, "reduce_only")
    floor = body.get("sell_position_floor")
    if floor is not None:
        if floor != 0:
            raise WireError("invalid_parameters", "sell_position_floor only accepts 0")
        reduce_only = True
    post_only = _bool(body, "post_only")
    if post_only and tif != "good_till_canceled":
        raise WireError("invalid_parameters", "post_only requires good_till_canceled")
    return OrderRequest(ticker, side, action, count, price, coid, tif, post_only, reduce_only,
                        stp, expiration_ms, buy_max_cost, _bool(body, "cancel_order_on_pause"))


def _check_subaccount_body(body: dict) -> None:
    if body.get("subaccount") not in (None, 0):
        raise WireError("invalid_parameters", "the simulator has no subaccounts; use 0")


async def create_order(ctx: Ctx) -> tuple[int, object]:
    req = parse_order(await ctx.body(), ctx.sim.exchange.clock())
    acct = ctx.account
    order = ctx.sim.exchange.place(acct, req)
    return 201, {"order": views.order_dict(order, acct)}


async def get_order(ctx: Ctx) -> tuple[int, object]:
    acct = ctx.account
    order = ctx.sim.exchange.owned(acct, ctx.request.path_params["order_id"])
    return 200, {"order": views.order_dict(order, acct)}


async def cancel_order(ctx: Ctx) -> tuple[int, object]:
    _check_subaccount(ctx, ctx.q("subaccount"))
    acct = ctx.account
    order, reduced = ctx.sim.exchange.cancel(acct, ctx.request.path_params["order_id"])
    return 200, {"order": views.order_dict(order, acct), "reduced_by_fp": f"{reduced}.00"}


async def amend_order(ctx: Ctx) -> tuple[int, object]:
    body = await ctx.body()
    acct = ctx.account
    _check_subaccount_body(body)
    missing = [k for k in ("ticker", "side", "action") if not body.get(k)]
    if missing:
        raise WireError("missing_parameters", f"missing required field(s): {', '.join(missing)}")
    side = body["side"]
    if side not in ("yes", "no"):
        raise WireError("invalid_parameters", "side must be yes or no")
    yes = parse_price(body.get("yes_price"), body.get("yes_price_dollars"), "yes_price")
    no = parse_price(body.get("no_price"), body.get("no_price_dollars"), "no_price")
    if (yes is None) == (no is None):
        raise WireError("invalid_parameters", "exactly one of a yes or a no price is required")
    if side == YES:
        price = yes if yes is not None else 100 - no  # type: ignore[operator]
    else:
        price = no if no is not None else 100 - yes  # type: ignore[operator]
    count = parse_count(body.get("count"), body.get("count_fp"), "count")
    new_id = body.get("updated_client_order_id")
    if new_id is not None and not isinstance(new_id, str):
        raise WireError("invalid_parameters", "updated_client_order_id must be a string")
    old, order = ctx.sim.exchange.amend(acct, ctx.request.path_params["order_id"],
                                        body["ticker"], side, body["action"], price, count, new_id)
    return 200, {"old_order": views.order_dict(old, acct), "order": views.order_dict(order, acct)}


async def decrease_order(ctx: Ctx) -> tuple[int, object]:
    body = await ctx.body()
    _check_subaccount_body(body)
    by = parse_count(body.get("reduce_by"), body.get("reduce_by_fp"), "reduce_by")
    to = parse_count(body.get("reduce_to"), body.get("reduce_to_fp"), "reduce_to", minimum=0)
    if (by is None) == (to is None):
        raise WireError("invalid_parameters", "exactly one of reduce_by or reduce_to is required")
    acct = ctx.account
    order = ctx.sim.exchange.decrease(acct, ctx.request.path_params["order_id"], by, to)
    return 200, {"order": views.order_dict(order, acct)}


def _err(exc: ExchangeError | WireError) -> dict:
    if isinstance(exc, ExchangeError):
        return {"code": exc.code, "message": exc.message, "details": exc.details,
                "service": SERVICE}
    return {"code": exc.code, "message": exc.message, "details": "", "service": SERVICE}


async def batch_create(ctx: Ctx) -> tuple[int, object]:
    body = await ctx.body()
    items = body.get("orders")
    if not isinstance(items, list) or not items:
        raise WireError("missing_parameters", "orders must be a non-empty list")
    if len(items) > MAX_BATCH:
        raise WireError("invalid_parameters", f"at most {MAX_BATCH} orders per batch")
    ctx.sim.rate_check(ctx, "write", len(items))
    acct = ctx.account
    out = []
    for item in items:
        coid = item.get("client_order_id") if isinstance(item, dict) else None
        try:
            if not isinstance(item, dict):
                raise WireError("invalid_parameters", "each order must be an object")
            order = ctx.sim.exchange.place(acct, parse_order(item, ctx.sim.exchange.clock()))
            out.append({"client_order_id": coid, "order": views.order_dict(order, acct),
                        "error": None})
        except (ExchangeError, WireError) as exc:
            out.append({"client_order_id": coid, "order": None, "error": _err(exc)})
    return 201, {"orders": out}


async def batch_cancel(ctx: Ctx) -> tuple[int, object]:
    body = await ctx.body()
    ids: list = []
    if isinstance(body.get("orders"), list):
        for o in body["orders"]:
            if not isinstance(o, dict) or not isinstance(o.get("order_id"), str):
                raise WireError("invalid_parameters", "each order needs an order_id")
            _check_subaccount_body(o)
            ids.append(o["order_id"])
    elif isinstance(body.get("ids"), list):
        ids = body["ids"]
    if not ids or not all(isinstance(i, str) for i in ids):
        raise WireError("missing_parameters", "orders (or ids) must be a non-empty list")
    if len(ids) > MAX_BATCH:
        raise WireError("invalid_parameters", f"at most {MAX_BATCH} orders per batch")
    ctx.sim.rate_check(ctx, "write", 0.2 * len(ids))
    acct = ctx.account
    out = []
    for oid in ids:
        try:
            order, reduced = ctx.sim.exchange.cancel(acct, oid)
            out.append({"order_id": oid, "order": views.order_dict(order, acct),
                        "reduced_by_fp": f"{reduced}.00", "error": None})
        except ExchangeError as exc:
            out.append({"order_id": oid, "order": None, "reduced_by_fp": "0.00",
                        "error": _err(exc)})
    return 200, {"orders": out}


def _account_history(ctx: Ctx, records_of: Callable[[Any], list], ts_of: Callable[[Any], int],
                     matches: Callable[[Any], bool], name: str,
                     view: Callable[[Any], dict]) -> tuple[int, object]:
    """Newest-first page of an account's records (fills, settlements), filtered."""
    _check_subaccount(ctx, ctx.q("subaccount"))
    limit = ctx.q_int("limit", 100, 1, 1000)
    rows = (r for r in reversed(records_of(ctx.account))
            if matches(r) and _in_window(ts_of(r), ctx))
    got, cursor = page(rows, lambda r: r.seq, ctx.q("cursor"), limit, descending=True)
    return 200, {name: [view(r) for r in got], "cursor": cursor}


async def list_fills(ctx: Ctx) -> tuple[int, object]:
    ticker, order_id = ctx.q("ticker"), ctx.q("order_id")
    return _account_history(
        ctx, lambda a: a.fills, lambda f: f.ts_ms,
        lambda f: (ticker is None or f.ticker == ticker)
        and (order_id is None or f.order_id == order_id),
        "fills", views.fill_dict)


async def list_settlements(ctx: Ctx) -> tuple[int, object]:
    ticker, event = ctx.q("ticker"), ctx.q("event_ticker")
    return _account_history(
        ctx, lambda a: a.settlements, lambda s: s.settled_ms,
        lambda s: (ticker is None or s.ticker == ticker)
        and (event is None or s.event_ticker == event),
        "settlements", views.settlement_dict)


# --- routing ---------------------------------------------------------------------------------

# (method, path under PREFIX, handler, auth required, rate-limit kind)
ROUTES: list[tuple[str, str, Handler, bool, str]] = [
    ("GET", "/exchange/status", exchange_status, False, "read"),
    ("GET", "/account/limits", account_limits, True, "read"),
    ("GET", "/series", list_series, False, "read"),
    ("GET", "/series/{series_ticker}", get_series, False, "read"),
    ("GET", "/events", list_events, False, "read"),
    ("GET", "/events/{event_ticker}", get_event, False, "read"),
    ("GET", "/markets", list_markets, False, "read"),
    ("GET", "/markets/trades", list_trades, False, "read"),
    ("GET", "/markets/{ticker}", get_market, False, "read"),
    ("GET", "/markets/{ticker}/orderbook", get_orderbook, True, "read"),
    ("GET", "/portfolio/balance", balance, True, "read"),
    ("GET", "/portfolio/positions", positions, True, "read"),
    ("GET", "/portfolio/fills", list_fills, True, "read"),
    ("GET", "/portfolio/settlements", list_settlements, True, "read"),
    ("GET", "/portfolio/orders", list_orders, True, "read"),
    ("POST", "/portfolio/orders", create_order, True, "write"),
    ("POST", "/portfolio/orders/batched", batch_create, True, "batch"),
    ("DELETE", "/portfolio/orders/batched", batch_cancel, True, "batch"),
    ("GET", "/portfolio/orders/{order_id}", get_order, True, "read"),
    ("DELETE", "/portfolio/orders/{order_id}", cancel_order, True, "write"),
    ("POST", "/portfolio/orders/{order_id}/amend", amend_order, True, "write"),
    ("POST", "/portfolio/orders/{order_id}/decrease", decrease_order, True, "write"),
]


class RateLimited(Exception):
    pass


def make_endpoint(sim: Sim, handler: Handler, auth_required: bool, kind: str):
    async def endpoint(request: Request) -> Response:
        path = request.url.path
        status = await sim.faults.before_request(path)
        if status:
            return injected(status)
        key_id = None
        if auth_required or has_auth_headers(request.headers):
            try:
                key_id = authenticate(request.headers, request.method, path, sim.keys,
                                      int(time.time() * 1000), sim.config.max_clock_skew_ms)
            except AuthError as exc:
                return error_response(401, "authentication_error", "authentication failed",
                                      str(exc))
        ctx = Ctx(sim, request, key_id)
        try:
            if kind != "batch":
                sim.rate_check(ctx, kind, 1)
            code, body = await handler(ctx)
        except RateLimited:
            return error_response(429, "too_many_requests", "too many requests",
                                  f"rate limit tier {sim.limiter.tier}")
        except ExchangeError as exc:
            return error_response(exc.status, exc.code, exc.message, exc.details)
        except WireError as exc:
            return error_response(400, exc.code, exc.message)
        lost = sim.faults.take_lost(path)
        if lost:
            return injected(lost)  # the work is done; only the answer is lost
        return json_response(code, body)

    return endpoint


def routes(sim: Sim) -> list[Route]:
    out = [Route(PREFIX + path, make_endpoint(sim, h, auth, kind), methods=[method])
           for method, path, h, auth, kind in ROUTES]

    async def not_found(request: Request) -> Response:
        return error_response(404, "not_found", "no such endpoint on the simulator",
                              f"{request.method} {request.url.path}")

    out.append(Route(PREFIX + "/{rest:path}", not_found,
                     methods=["GET", "POST", "PUT", "DELETE", "PATCH"]))
    return out
