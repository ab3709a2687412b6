"""Portfolio reads: balance, positions (by settlement status), orders, fills,
settlements, and the historical orders with their cutoff.

Since Kalshi v3.32: positions take `settlement_status` (unsettled by default; settled and
all page by event ticker, and a cursor belongs to its status); fills take up to 100
comma-separated tickers; orders canceled or executed before the cutoff (`order_history_ms`
before now) are served by /historical/orders instead of /portfolio/orders, and fills made
before theirs (`fill_history_ms`) by /historical/fills instead of /portfolio/fills.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from app.sim import orders, views
from app.sim.accounts import Account, Position
from app.sim.context import Ctx
from app.sim.matching import Order
from app.sim.money import CENT, ONE
from app.sim.paging import check_cursor_scope, in_window, page
from app.sim.wire import WireError, dollars, iso

MAX_FILL_TICKERS = 100
SETTLEMENT_STATUSES = ("unsettled", "settled", "all")

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
        value += p.position * mark if p.position > 0 else -p.position * (ONE - mark)
    updated = acct.updated_ms or ex.clock()
    cents = acct.balance // CENT  # a resting sub-cent order may lock a fraction of a cent
    return 200, {"balance": cents, "balance_dollars": dollars(cents * CENT),
                 "portfolio_value": value // CENT,
                 "updated_ts": updated // 1000}


# --- positions -------------------------------------------------------------------------------

def _position_filter(ctx: Ctx) -> Callable[[Position], bool]:
    ticker, event = ctx.q("ticker"), ctx.q("event_ticker")
    filters = set((ctx.q("count_filter") or "").split(",")) - {""}
    if filters - {"position", "total_traded"}:
        raise WireError("invalid_parameters", "count_filter accepts position, total_traded")
    status = _settlement_status(ctx)
    markets = ctx.sim.exchange.markets

    def keep(p: Position) -> bool:
        m = markets.get(p.ticker)
        settled = m is None or m.settled_ms is not None  # a removed market was settled
        if status != "all" and settled != (status == "settled"):
            return False
        if (ticker is not None and p.ticker != ticker) or (
                event is not None and p.event_ticker != event):
            return False
        if "position" in filters and p.position == 0 and not (
                "total_traded" in filters and p.total_traded):
            return False
        return not ("total_traded" in filters and "position" not in filters
                    and p.total_traded == 0)

    return keep


def _settlement_status(ctx: Ctx) -> str:
    status = ctx.q("settlement_status") or "unsettled"
    if status not in SETTLEMENT_STATUSES:
        raise WireError("invalid_parameters", "settlement_status must be unsettled, settled or all")
    return status


async def positions(ctx: Ctx) -> tuple[int, object]:
    orders.check_subaccount(ctx.q("subaccount"))
    acct = ctx.account
    limit = ctx.q_int("limit", 100, 1, 1000)
    status, cursor = _settlement_status(ctx), ctx.q("cursor")
    check_cursor_scope(cursor, status + "|")
    keep = _position_filter(ctx)
    ps = sorted((p for p in acct.positions.values() if keep(p)),
                key=lambda p: p.ticker if status == "unsettled" else (p.event_ticker, p.ticker))
    if status == "unsettled":  # a page of markets
        got, nxt = page(ps, lambda p: f"{status}|{p.ticker}", cursor, limit)
        by_event = _by_event(got)
    else:  # a page of events, each with all its markets
        events, nxt = page(list(_by_event(ps).items()), lambda e: f"{status}|{e[0]}",
                           cursor, limit)
        by_event = dict(events)
        got = [p for _, v in events for p in v]
    resting = _resting_counts(acct)
    return 200, {
        "market_positions": [views.position_dict(p, resting.get(p.ticker, 0)) for p in got],
        "event_positions": [views.event_position_dict(e, v) for e, v in by_event.items()],
        "cursor": nxt,
    }


def _by_event(ps: Iterable[Position]) -> dict[str, list[Position]]:
    out: dict[str, list[Position]] = {}
    for p in ps:
        out.setdefault(p.event_ticker, []).append(p)
    return out


def _resting_counts(acct: Account) -> dict[str, int]:
    resting: dict[str, int] = {}
    for o in acct.resting.values():
        resting[o.ticker] = resting.get(o.ticker, 0) + o.remaining
    return resting


# --- orders, live and historical ---------------------------------------------------------

def history_cutoff_ms(ctx: Ctx) -> int:
    return ctx.sim.exchange.clock() - ctx.sim.config.order_history_ms


def _historical(o: Order, cutoff_ms: int) -> bool:
    """Canceled or executed before the cutoff (a resting order is always live)."""
    return o.status != "resting" and o.updated_ms < cutoff_ms


def _order_page(ctx: Ctx, historical: bool, statuses: tuple[str, ...]) -> tuple[int, object]:
    acct = ctx.account
    limit = ctx.q_int("limit", 100, 1, 1000)
    ticker, status = ctx.q("ticker"), ctx.q("status")
    if status is not None and status not in statuses:
        raise WireError("invalid_parameters", f"status must be {' or '.join(statuses)}")
    events = set(ctx.q("event_ticker").split(",")) if ctx.q("event_ticker") else None
    markets, cutoff = ctx.sim.exchange.markets, history_cutoff_ms(ctx)

    def keep(o: Order) -> bool:
        if _historical(o, cutoff) != historical:
            return False
        if (ticker is not None and o.ticker != ticker) or (
                status is not None and o.status != status):
            return False
        if events is not None:
            m = markets.get(o.ticker)
            if m is None or m.event_ticker not in events:
                return False
        return in_window(o.created_ms, ctx)

    rows = (o for o in reversed(acct.orders.values()) if keep(o))
    got, cursor = page(rows, lambda o: o.seq, ctx.q("cursor"), limit, descending=True)
    return 200, {"orders": [views.order_dict(o, acct) for o in got], "cursor": cursor}


async def list_orders(ctx: Ctx) -> tuple[int, object]:
    return _order_page(ctx, False, ("resting", "canceled", "executed"))


async def historical_orders(ctx: Ctx) -> tuple[int, object]:
    orders.check_subaccount(ctx.q("subaccount"))
    return _order_page(ctx, True, ("canceled", "executed"))


def fill_cutoff_ms(ctx: Ctx) -> int:
    return ctx.sim.exchange.clock() - ctx.sim.config.fill_history_ms


async def historical_cutoff(ctx: Ctx) -> tuple[int, object]:
    """Orders and fills move to the historical section here; markets and positions never
    do, so their cutoffs are the epoch (nothing of them is historical)."""
    never = iso(0)
    return 200, {"orders_updated_ts": iso(history_cutoff_ms(ctx)), "market_settled_ts": never,
                 "trades_created_ts": iso(fill_cutoff_ms(ctx)),
                 "market_positions_last_updated_ts": never}


# --- fills and settlements -------------------------------------------------------------------

def _account_history(ctx: Ctx, records_of: Callable[[Any], list], ts_of: Callable[[Any], int],
                     matches: Callable[[Any], bool], name: str,
                     view: Callable[[Any], dict]) -> tuple[int, object]:
    """Newest-first page of an account's records (fills, settlements), filtered."""
    orders.check_subaccount(ctx.q("subaccount"))
    limit = ctx.q_int("limit", 100, 1, 1000)
    rows = (r for r in reversed(records_of(ctx.account))
            if matches(r) and in_window(ts_of(r), ctx))
    got, cursor = page(rows, lambda r: r.seq, ctx.q("cursor"), limit, descending=True)
    return 200, {name: [view(r) for r in got], "cursor": cursor}


async def list_fills(ctx: Ctx) -> tuple[int, object]:
    """`ticker` takes up to 100 comma-separated tickers (Kalshi since v3.32); fills made
    before the cutoff are only in /historical/fills."""
    tickers = _tickers(ctx.q("ticker"))
    order_id, cutoff = ctx.q("order_id"), fill_cutoff_ms(ctx)
    return _account_history(
        ctx, lambda a: a.fills, lambda f: f.ts_ms,
        lambda f: f.ts_ms >= cutoff and (tickers is None or f.ticker in tickers)
        and (order_id is None or f.order_id == order_id),
        "fills", views.fill_dict)


async def historical_fills(ctx: Ctx) -> tuple[int, object]:
    """Fills made before the cutoff (one `ticker`, as the spec's TickerQuery)."""
    ticker, cutoff = ctx.q("ticker"), fill_cutoff_ms(ctx)
    return _account_history(
        ctx, lambda a: a.fills, lambda f: f.ts_ms,
        lambda f: f.ts_ms < cutoff and (ticker is None or f.ticker == ticker),
        "fills", views.fill_dict)


def _tickers(value: str | None) -> set[str] | None:
    if value is None:
        return None
    tickers = {t for t in value.split(",") if t}
    if not 1 <= len(tickers) <= MAX_FILL_TICKERS:
        raise WireError("invalid_parameters",
                        f"ticker: between 1 and {MAX_FILL_TICKERS} comma-separated tickers")
    return tickers


async def list_settlements(ctx: Ctx) -> tuple[int, object]:
    ticker, event = ctx.q("ticker"), ctx.q("event_ticker")
    return _account_history(
        ctx, lambda a: a.settlements, lambda s: s.settled_ms,
        lambda s: (ticker is None or s.ticker == ticker)
        and (event is None or s.event_ticker == event),
        "settlements", views.settlement_dict)

