"""Order endpoints: the V2 writes under /portfolio/events/orders, the legacy reads under
/portfolio/orders (list, get, queue positions), and HTTP 410 for the legacy writes.

The V2 book is single-sided and quoted from YES: `bid` at p buys YES at p, `ask` at p sells
YES at p (equivalently buys NO at 1 - p). Inside the simulator a V2 order is side "yes" with
action buy (bid) or sell (ask) at the YES price in $0.0001.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from app.sim import views
from app.sim.context import Ctx
from app.sim.matching import NO, YES, Order
from app.sim.money import ONE
from app.sim.venue import KEEP, TIFS, ExchangeError, OrderRequest
from app.sim.wire import MAX_UNIX_S, WireError, fp, parse_dollars, parse_fp_count, price_units

MAX_CLIENT_ORDER_ID = 256
BOOK_SIDES = {"bid": YES, "ask": NO}  # book side -> the outcome it positions for
STPS = ("taker_at_cross", "maker")
CANCEL_COST = 2  # tokens per cancel (single, batched item, cancel-all)
ORDER_COST = 10  # tokens per created order (single or batched item)


# --- request parsing ------------------------------------------------------------------

def text_field(body: dict, name: str, required: bool = False, max_len: int = 256) -> str | None:
    v = body.get(name)
    if v is None:
        if required:
            raise WireError("missing_parameters", f"missing required field: {name}")
        return None
    if not isinstance(v, str) or len(v) > max_len or (required and not v):
        raise WireError("invalid_parameters", f"{name} must be a string")
    return v


def flag_field(body: dict, name: str) -> bool:
    v = body.get(name, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise WireError("invalid_parameters", f"{name} must be a boolean")
    return v


def int_field(body: dict, name: str) -> int | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise WireError("invalid_parameters", f"{name} must be an integer")
    return v


def choice_field(body: dict, name: str, allowed: tuple[str, ...] | dict) -> str:
    v = body.get(name)
    if v is None:
        raise WireError("missing_parameters", f"missing required field: {name}")
    if not isinstance(v, str) or v not in allowed:
        raise WireError("invalid_parameters", f"{name} must be one of {', '.join(allowed)}")
    return v


def check_subaccount(value: object) -> None:
    """The simulator has only the primary subaccount (0)."""
    if value is None or value == 0 or value == "0":
        return
    raise WireError("invalid_parameters", "the simulator has no subaccounts; use 0")


def check_exchange_index(value: object) -> None:
    """One exchange shard (0); -1 asks for auto-routing, which lands there too."""
    if value is None or (not isinstance(value, bool) and value in (0, -1, "0", "-1")):
        return
    raise WireError("invalid_parameters", "exchange_index must be 0 (or -1 to auto-route)")


def price_field(body: dict, name: str = "price") -> int:
    d = parse_dollars(body.get(name), name)
    if d is None:
        raise WireError("missing_parameters", f"missing required field: {name}")
    return price_units(d, name)


def count_field(body: dict, name: str = "count") -> int:
    n = parse_fp_count(body.get(name), name)
    if n is None:
        raise WireError("missing_parameters", f"missing required field: {name}")
    return n


def expiration_field(body: dict, now_ms: int, name: str = "expiration_time") -> int | None:
    exp = int_field(body, name)
    if exp is None:
        return None
    if exp <= 0 or exp * 1000 <= now_ms:
        raise WireError("invalid_parameters", f"{name} must be a future unix time in seconds")
    if exp > MAX_UNIX_S:
        raise WireError("invalid_parameters",
                        f"{name} must be at most {MAX_UNIX_S} (9999-12-31T23:59:59Z)")
    return exp * 1000


def _flags(body: dict, tif: str) -> tuple[bool, bool, bool]:
    post_only, reduce_only = flag_field(body, "post_only"), flag_field(body, "reduce_only")
    if post_only and tif != "good_till_canceled":
        raise WireError("invalid_parameters", "post_only requires good_till_canceled")
    if reduce_only and tif != "immediate_or_cancel":
        raise WireError("invalid_parameters", "reduce_only requires immediate_or_cancel")
    return post_only, reduce_only, flag_field(body, "cancel_order_on_pause")


def parse_create(body: dict, now_ms: int) -> OrderRequest:
    """A CreateOrderV2Request as the exchange's OrderRequest."""
    ticker = text_field(body, "ticker", required=True)
    side = choice_field(body, "side", BOOK_SIDES)
    count, price = count_field(body), price_field(body)
    tif = choice_field(body, "time_in_force", TIFS)
    stp = choice_field(body, "self_trade_prevention_type", STPS)
    coid = text_field(body, "client_order_id", max_len=MAX_CLIENT_ORDER_ID) or ""
    expiration_ms = expiration_field(body, now_ms)
    if expiration_ms is not None and tif != "good_till_canceled":
        raise WireError("invalid_parameters", "expiration_time requires good_till_canceled")
    post_only, reduce_only, on_pause = _flags(body, tif)
    group = text_field(body, "order_group_id")
    check_subaccount(int_field(body, "subaccount"))
    check_exchange_index(int_field(body, "exchange_index"))
    assert ticker is not None
    return OrderRequest(ticker, YES, "buy" if side == "bid" else "sell", count, price, coid,
                        tif, post_only, reduce_only, stp, expiration_ms, on_pause, group)


# --- response shapes ---------------------------------------------------------------------

@dataclass
class Snapshot:
    """An order's fill totals before a request, to report what the request filled."""

    filled: int
    cost: int
    fees: int

    @classmethod
    def of(cls, o: Order) -> Snapshot:
        return cls(o.filled, o.taker_cost, o.taker_fees)


def _avg(units: int, n: int) -> str:
    d = (Decimal(units) / Decimal(ONE * n)).quantize(Decimal("0.0001"), ROUND_HALF_EVEN)
    return f"{d:.4f}"


def fill_summary(o: Order, before: Snapshot, always: bool = True) -> dict:
    """fill_count / remaining_count and, when it filled, the average price and fee."""
    n = o.filled - before.filled
    out: dict[str, Any] = {}
    if always or n:
        out = {"fill_count": fp(n), "remaining_count": fp(o.remaining)}
    if n:
        # V2 orders are quoted in YES terms, so the cost is in YES cents
        out["average_fill_price"] = _avg(o.taker_cost - before.cost, n)
        out["average_fee_paid"] = _avg(o.taker_fees - before.fees, n)
    return out


def _created(o: Order, before: Snapshot, ts_ms: int) -> dict:
    return {"order_id": o.order_id, "client_order_id": o.client_order_id,
            **fill_summary(o, before), "ts_ms": ts_ms}


# --- V2 writes -------------------------------------------------------------------------------

async def create_order(ctx: Ctx) -> tuple[int, object]:
    ex = ctx.sim.exchange
    req = parse_create(await ctx.body(), ex.clock())
    await ctx.sim.world.order_latency()
    try:
        order = ex.place(ctx.account, req)
    except ExchangeError as exc:  # CreateOrderV2 lists 400, not 404 (an unknown market)
        if exc.status != 404:
            raise
        raise ExchangeError(400, exc.code, exc.message, exc.details) from None
    return 201, _created(order, Snapshot(0, 0, 0), ex.clock())


async def batch_create(ctx: Ctx) -> tuple[int, object]:
    body = await ctx.body()
    items = body.get("orders")
    if not isinstance(items, list) or not items:
        raise WireError("missing_parameters", "orders must be a non-empty list")
    for item in items:  # the request's shape is checked whole, as the spec types it
        if not isinstance(item, dict):
            raise WireError("invalid_parameters", "each order must be an object")
        text_field(item, "client_order_id", max_len=MAX_CLIENT_ORDER_ID)
    _batch_size(ctx, len(items), ORDER_COST)
    ctx.charge("write", ORDER_COST * len(items))
    ex, acct = ctx.sim.exchange, ctx.account
    out = []
    for item in items:
        try:
            order = ex.place(acct, parse_create(item, ex.clock()))
            out.append({**_created(order, Snapshot(0, 0, 0), ex.clock()), "error": None})
        except (ExchangeError, WireError) as exc:
            out.append({"client_order_id": item.get("client_order_id"), "error": _err(exc)})
    return 201, {"orders": out}


def _batch_size(ctx: Ctx, n: int, cost: int) -> None:
    """Kalshi scales the largest batch with the tier's write budget."""
    lim = ctx.sim.limiter
    most = lim.capacity("write") // cost if lim.write_rate else 20 * 10 // cost
    if n > most:
        raise WireError("invalid_parameters",
                        f"at most {most} orders per batch on the {lim.tier} tier")


def _err(exc: ExchangeError | WireError) -> dict:
    details = exc.details if isinstance(exc, ExchangeError) else ""
    return {"code": exc.code, "message": exc.message, "details": details}


def _routing(ctx: Ctx) -> None:
    check_subaccount(ctx.q("subaccount"))
    check_exchange_index(ctx.q("exchange_index"))


def resource_routing(ctx: Ctx) -> None:
    """Subaccount and shard of an operation on one resource whose spec lists 404 and no
    400 (cancel, the order-group reads and writes): the resource is not in a subaccount
    or shard the simulator does not have, so any other value is a 404."""
    try:
        _routing(ctx)
    except WireError as exc:
        raise ExchangeError(404, "not_found", exc.message) from None


async def cancel_order(ctx: Ctx) -> tuple[int, object]:
    resource_routing(ctx)
    ex = ctx.sim.exchange
    order, reduced = ex.cancel(ctx.account, ctx.request.path_params["order_id"])
    return 200, {"order_id": order.order_id, "client_order_id": order.client_order_id,
                 "reduced_by": fp(reduced), "ts_ms": ex.clock()}


async def batch_cancel(ctx: Ctx) -> tuple[int, object]:
    body = await ctx.body()
    items = body.get("orders")
    if not isinstance(items, list) or not items:
        raise WireError("missing_parameters", "orders must be a non-empty list")
    for o in items:
        if not isinstance(o, dict) or not isinstance(o.get("order_id"), str):
            raise WireError("invalid_parameters", "each order needs an order_id string")
        check_subaccount(int_field(o, "subaccount"))
        check_exchange_index(int_field(o, "exchange_index"))
        text_field(o, "market_ticker")
    _batch_size(ctx, len(items), CANCEL_COST)
    ctx.charge("write", CANCEL_COST * len(items))
    ex, acct = ctx.sim.exchange, ctx.account
    out = []
    for o in items:
        oid = o["order_id"]
        try:
            order, reduced = ex.cancel(acct, oid)
            out.append({"order_id": oid, "client_order_id": order.client_order_id,
                        "reduced_by": fp(reduced), "ts_ms": ex.clock(), "error": None})
        except ExchangeError as exc:
            out.append({"order_id": oid, "reduced_by": "0.00", "error": _err(exc)})
    return 200, {"orders": out}


async def cancel_all(ctx: Ctx) -> tuple[int, object]:
    ex, acct = ctx.sim.exchange, ctx.account
    try:
        check_subaccount(ctx.q("subaccount"))
    except WireError:  # CancelAllOrders lists no 400: nothing of this key rests there
        return 204, None
    for order in list(acct.resting.values()):
        ex.cancel_order(acct, order, None)
    return 204, None


async def amend_order(ctx: Ctx) -> tuple[int, object]:
    _routing(ctx)
    body = await ctx.body()
    ex, acct = ctx.sim.exchange, ctx.account
    ticker = text_field(body, "ticker", required=True)
    side = choice_field(body, "side", BOOK_SIDES)
    price, count = price_field(body), count_field(body)
    text_field(body, "client_order_id", max_len=MAX_CLIENT_ORDER_ID)
    new_id = text_field(body, "updated_client_order_id", max_len=MAX_CLIENT_ORDER_ID)
    check_exchange_index(int_field(body, "exchange_index"))
    exp = int_field(body, "expiration_time")
    expiration_ms: Any = KEEP
    if exp == 0:
        expiration_ms = None
    elif exp is not None:
        expiration_ms = expiration_field(body, ex.clock())
    order = ex.owned(acct, ctx.request.path_params["order_id"])
    before = Snapshot.of(order)
    assert ticker is not None
    # V2 prices are YES prices whichever the side
    old, order = ex.amend(acct, order.order_id, ticker, BOOK_SIDES[side], price, count,
                          new_id, expiration_ms)
    changed = order.remaining != old.remaining or order.filled != before.filled
    return 200, {"order_id": order.order_id, "client_order_id": order.client_order_id,
                 **fill_summary(order, before, always=changed), "ts_ms": ex.clock()}


async def decrease_order(ctx: Ctx) -> tuple[int, object]:
    _routing(ctx)
    body = await ctx.body()
    by = parse_fp_count(body.get("reduce_by"), "reduce_by")
    to = parse_fp_count(body.get("reduce_to"), "reduce_to", minimum=0)
    if (by is None) == (to is None):
        raise WireError("invalid_parameters", "exactly one of reduce_by or reduce_to is required")
    check_exchange_index(int_field(body, "exchange_index"))
    text_field(body, "market_ticker")
    ex = ctx.sim.exchange
    order = ex.decrease(ctx.account, ctx.request.path_params["order_id"], by, to)
    return 200, {"order_id": order.order_id, "client_order_id": order.client_order_id,
                 "remaining_count": fp(order.remaining), "ts_ms": ex.clock()}


async def legacy_write(ctx: Ctx) -> tuple[int, object]:
    """Production answers the v1 order writes with 410 since the V2 endpoints replaced them."""
    raise ExchangeError(410, "deprecated_v1_order_endpoint",
                        "this order endpoint is deprecated; use /portfolio/events/orders",
                        f"{ctx.request.method} {ctx.request.url.path}")


# --- legacy reads ----------------------------------------------------------------------------

async def get_order(ctx: Ctx) -> tuple[int, object]:
    acct = ctx.account
    order = ctx.sim.exchange.owned(acct, ctx.request.path_params["order_id"])
    return 200, {"order": views.order_dict(order, acct)}


def _queue_position(ctx: Ctx, o: Order) -> int:
    book = ctx.sim.exchange.books.get(o.ticker)
    if book is None or not o.in_book:
        return 0
    ahead = 0
    for other in book.levels[o.outcome].get(o.price, ()):
        if other is o:
            break
        ahead += other.remaining
    return ahead


async def queue_positions(ctx: Ctx) -> tuple[int, object]:
    check_subaccount(ctx.q("subaccount"))
    tickers = set((ctx.q("market_tickers") or "").split(",")) - {""}
    event = ctx.q("event_ticker")
    ex = ctx.sim.exchange
    out = []
    for o in ctx.account.resting.values():
        m = ex.markets.get(o.ticker)
        if (tickers and o.ticker not in tickers) or (
                event and (m is None or m.event_ticker != event)):
            continue
        out.append({"order_id": o.order_id, "market_ticker": o.ticker,
                    "queue_position_fp": fp(_queue_position(ctx, o))})
    return 200, {"queue_positions": out}


async def queue_position(ctx: Ctx) -> tuple[int, object]:
    order = ctx.sim.exchange.owned(ctx.account, ctx.request.path_params["order_id"])
    if order.status != "resting":
        raise ExchangeError(404, "not_found", f"order {order.order_id} is not resting")
    return 200, {"queue_position_fp": fp(_queue_position(ctx, order))}
