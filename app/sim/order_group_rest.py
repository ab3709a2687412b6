"""The order-group endpoints (v3.31.0): HTTP in and out; the groups themselves live in
app.sim.order_groups (which the exchange uses, so it imports nothing of the HTTP layer)."""

from __future__ import annotations

from app.sim.context import Ctx
from app.sim.order_groups import OrderGroup
from app.sim.orders import check_exchange_index, check_subaccount, resource_routing
from app.sim.wire import WireError, fp, parse_fp_count


def _limit(body: dict) -> int:
    n = body.get("contracts_limit")
    f = parse_fp_count(body.get("contracts_limit_fp"), "contracts_limit_fp")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise WireError("invalid_parameters", "contracts_limit must be an integer >= 1")
    if n is None and f is None:
        raise WireError("missing_parameters", "contracts_limit or contracts_limit_fp is required")
    if n is not None and f is not None and n != f:
        raise WireError("invalid_parameters", "contracts_limit and contracts_limit_fp differ")
    return n if n is not None else f  # type: ignore[return-value]


def _group(ctx: Ctx) -> OrderGroup:
    resource_routing(ctx)
    return ctx.sim.exchange.order_groups.owned(ctx.account,
                                               ctx.request.path_params["order_group_id"])


async def create_group(ctx: Ctx) -> tuple[int, object]:
    body = await ctx.body()
    check_subaccount(body.get("subaccount"))
    check_exchange_index(body.get("exchange_index"))
    g = ctx.sim.exchange.order_groups.create(ctx.account, _limit(body))
    return 201, {"order_group_id": g.group_id, "subaccount": 0, "exchange_index": 0}


async def list_groups(ctx: Ctx) -> tuple[int, object]:
    check_subaccount(ctx.q("subaccount"))
    groups = ctx.sim.exchange.order_groups.groups.values()
    return 200, {"order_groups": [g.view() for g in groups
                                  if g.account_id == ctx.account.account_id]}


async def get_group(ctx: Ctx) -> tuple[int, object]:
    g = _group(ctx)
    return 200, {"is_auto_cancel_enabled": True, "contracts_limit_fp": fp(g.limit),
                 "orders": list(g.orders), "exchange_index": 0}


async def delete_group(ctx: Ctx) -> tuple[int, object]:
    ctx.sim.exchange.order_groups.delete(_group(ctx))
    return 200, {}


async def reset_group(ctx: Ctx) -> tuple[int, object]:
    ctx.sim.exchange.order_groups.reset(_group(ctx))
    return 200, {}


async def trigger_group(ctx: Ctx) -> tuple[int, object]:
    ctx.sim.exchange.order_groups.trigger(_group(ctx))
    return 200, {}


async def limit_group(ctx: Ctx) -> tuple[int, object]:
    g = _group(ctx)
    ctx.sim.exchange.order_groups.set_limit(g, _limit(await ctx.body()))
    return 200, {}
