"""The panels: one reader each, served as JSON (``/api/...``), as an HTML fragment
(``/fragments/<name>``) and inside the pages. A reader answers ``{"data": ...}``, or
``{"data": None, "missing"|"error": why}``: a page never fails for a table that is absent
or a database that does not answer."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable

from fastapi import Request

from app.web import data, freshness, history, names, ticket
from app.web.data import read
from app.web.intent_form import TICKER_RE
from app.web.state import WebState
from app.web.trade_pnl import annotate

STATUS_RE = r"^[a-z_]{1,32}$"
FILTER_RE = r"^[A-Za-z0-9_.:\-]{0,128}$"  # part of a ticker or a strategy name


async def named(state: WebState, out: dict, key: str = "ticker") -> dict:
    """The panel's rows with their markets in words (:func:`names.annotate`)."""
    if out.get("data"):
        await read(names.annotate, state.pool, out["data"], key)
    return out


async def account(state: WebState, request: Request) -> dict:
    out = await read(data.account, state.pool)
    if out.get("data"):
        await read(names.annotate, state.pool, out["data"]["positions"])
    return out


async def fills(state: WebState, request: Request) -> dict:
    return await named(state, await read(data.fills, state.pool))


async def open_trades(state: WebState, request: Request) -> dict:

    out = await named(state, await read(data.open_trades, state.pool))
    if out.get("data"):
        await annotate(state.pool, out["data"])
    rules = await read(data.trading_settings, state.pool, data.EXIT_RULE_KEYS)
    out["rules"] = rules.get("data")
    out["resting"] = (await named(state, await read(data.resting_orders, state.pool))).get("data")
    return out


async def strikes(state: WebState, request: Request) -> dict:
    out = await read(data.strike_tables, state.pool)
    for rows in (out.get("data") or {}).values():
        await read(names.annotate, state.pool, rows, "market_ticker")
    out["series"] = (await read(data.series_status, state.pool)).get("data")
    return out


async def watchlist(state: WebState, request: Request) -> dict:
    return await named(state, await read(data.watchlist, state.pool), "market_ticker")


async def auto(state: WebState, request: Request) -> dict:
    out = await read(data.trading_settings, state.pool, data.AUTO_KEYS)
    out["manager"] = state.manager_url
    return out


async def markets(state: WebState, request: Request) -> dict:
    """The followed markets, each ``stale`` as the top bar's banner judges the market feed:
    rec-market-feed's own report older than the banner's limit makes every live row stale at
    once; a market with no message of its own for ``market_feed_stale_after_sec`` is stale
    alone (``static/rec.js`` keeps both true between redraws)."""
    out = await read(data.markets, state.pool)
    feed = await read(freshness.snapshot, state.pool, [])
    age = (feed.get("data") or {}).get("market_feed")
    quiet = freshness.limits(state.settings)["market_feed"]["after"]
    out["feed_stale"] = age is not None and age > quiet
    for m in out.get("data") or ():
        m["stale"] = m["feed_state"] != "closed" and (
            out["feed_stale"] or m["age_sec"] is None or m["age_sec"] > state.stale_after)
    out["groups"] = market_groups(out.get("data") or [])
    return out


def market_groups(rows: list[dict]) -> list[dict]:
    """The markets named (``name``, ``close_ts``) and grouped by event: BTC's apart from
    ETH's, each asset's events by close time, the markets of one in the order they came."""
    groups: dict[str, dict] = {}
    for m in rows:
        m["name"], m["close_ts"] = names.name(m), names.epoch(m["close_time"])
        g = groups.setdefault(m["event_ticker"], {
            "event": m["event_ticker"], "name": names.event_name(m),
            "asset": names.asset(m["series_ticker"], m["ticker"]), "close_ts": m["close_ts"],
            "rows": []})
        g["rows"].append(m)
    return sorted(groups.values(), key=lambda g: (g["asset"], g["close_ts"] or 0, g["event"]))


async def book(state: WebState, request: Request) -> dict:
    ticker = request.query_params.get("ticker") or ""
    if not re.match(TICKER_RE, ticker):
        return {"data": None, "ticker": None}
    out = await read(data.book, state.pool, ticker)
    out["ticker"] = ticker
    return out


async def ticket_market(state: WebState, request: Request) -> dict:
    """The market beside the order ticket (``?ticker=``): quotes, depth, P(yes), edge."""
    return await market_beside(state, request.query_params.get("ticker") or "")


async def market_beside(state: WebState, ticker: str) -> dict:
    """:func:`ticket.market_card` as a panel (``ticker`` None when it is no ticker)."""
    if not re.match(TICKER_RE, ticker):
        return {"data": None, "ticker": None}
    out = await read(ticket.market_card, state.pool, ticker)
    out["ticker"] = ticker
    return out


async def trade_result(state: WebState, request: Request) -> dict:
    """One trade (``?id=``), followed by the answer on the Manual trading page."""
    tid = request.query_params.get("id") or ""
    if not tid.isdigit() or len(tid) > 18:
        return {"data": None, "error": "id: a trade number"}
    return await read(data.trade, state.pool, int(tid))


def trade_filters(q) -> tuple[dict, str | None]:
    """The Trades page's filters from its query, or what is wrong with them."""
    for key, pattern in (("status", STATUS_RE), ("market", FILTER_RE),
                         ("strategy", FILTER_RE)):
        if q.get(key) and not re.match(pattern, q[key]):
            return {}, f"{key}: letters, digits and . _ : - only"
    try:
        since = dt.date.fromisoformat(q["since"]) if q.get("since") else None
        until = dt.date.fromisoformat(q["until"]) if q.get("until") else None
    except ValueError:
        return {}, "since/until: dates as YYYY-MM-DD"
    return {"status": q.get("status") or None, "ticker": q.get("market") or None,
            "strategy": q.get("strategy") or None, "since": since, "until": until}, None


async def trades(state: WebState, request: Request) -> dict:
    q = request.query_params
    filters, invalid = trade_filters(q)
    if invalid:
        return {"data": None, "filters": {}, "invalid": invalid}

    out = await named(state, await read(data.trades, state.pool, **filters))
    history.tell(out.get("data") or [])
    out["filters"] = dict(q)
    out["daily"] = (await read(history.daily, state.pool)).get("data")
    return out


async def ledger(state: WebState, request: Request) -> dict:
    return await read(data.ledger, state.pool)


async def services(state: WebState, request: Request) -> dict:
    from app.web.systemd import services

    return {"data": await services(state.expected_units, state.descriptions,
                                   state.settings.journal_export_path),
            "health": state.monitor.snapshot(with_units=True),
            "failures": await read(data.unit_failures, state.pool),
            "backup": await read(data.last_backup, state.pool,
                                 state.settings.backup_max_age_hours),
            "metrics": {"names": state.metric_names,
                        "monitoring_url": state.settings.monitoring_url}}


async def model(state: WebState, request: Request) -> dict:
    return await read(data.model, state.pool)


async def feed(state: WebState, request: Request) -> dict:
    return await read(data.feed_status, state.pool)


PANELS: dict[str, Callable[[WebState, Request], Awaitable[dict]]] = {
    "account": account, "fills": fills, "open_trades": open_trades, "strikes": strikes,
    "watchlist": watchlist, "auto": auto, "markets": markets, "book": book, "trades": trades,
    "services": services, "model": model, "feed": feed, "trade_result": trade_result,
    "ticket_market": ticket_market,
    "ledger": ledger}


async def context(state: WebState, request: Request, names: list[str]) -> dict:
    """The named panels, for a page's template."""
    return {n: await PANELS[n](state, request) for n in names}


def effective_settings() -> list[dict]:
    """Every setting with its environment name, value and source (secrets redacted)."""
    from app import config

    try:
        return [{"key": v.key, "env": config.env_name(v.key), "value": v.value,
                 "source": v.source} for v in config.provenance()]
    except config.ConfigError as exc:
        return [{"key": "error", "env": "", "value": str(exc), "source": ""}]
