"""What the dashboard shows, read from PostgreSQL. Each reader returns plain dicts (the JSON
API serves them as they are, the pages render them).

A table another service owns may not exist yet (its migration not applied, its service not
built): the reader raises :class:`Missing` naming it, and the page says so instead of
showing anything made up. An empty table is an empty list: the page says what is missing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from app.db import feed_log

TRADE_ACTIVE = ("pending", "submitted", "open", "closing")
EXIT_RULE_KEYS = ("auto_stop", "exit_probability_enabled", "exit_probability_threshold",
                  "exit_probability_min_ttc_sec", "exit_momentum_enabled",
                  "exit_momentum_threshold", "stop_loss_enabled", "stop_loss_cents",
                  "take_profit_enabled", "take_profit_cents")
AUTO_KEYS = ("auto_entry_enabled", "auto_entry_dry_run", "auto_entry_position_size",
             "auto_entry_multiplier", "auto_entry_min_probability", "auto_entry_min_diff_cents",
             "auto_entry_min_ttc_sec", "auto_entry_max_ttc_sec", "auto_stop", "kill_switch")


class Missing(Exception):
    """A table (or column) the page needs does not exist in this database yet."""


def _jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, dt.datetime):
        return v.isoformat()
    if isinstance(v, memoryview | bytes):
        return None
    return v


def clean(row: dict) -> dict:
    return {k: _jsonable(v) for k, v in row.items()}


async def rows(pool, sql: str, params: tuple | dict = ()) -> list[dict]:
    try:
        async with pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            return [clean(r) for r in await cur.fetchall()]
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
        raise Missing(str(exc).splitlines()[0]) from None


async def one(pool, sql: str, params: tuple | dict = ()) -> dict | None:
    found = await rows(pool, sql, params)
    return found[0] if found else None


async def table_exists(pool, name: str) -> bool:
    r = await one(pool, "SELECT to_regclass(%s) IS NOT NULL AS ok", (name,))
    return bool(r and r["ok"])


# the best yes bid and ask: from the live book (feed_book_levels), unless the latest ticker
# message is newer (a yes ask is 1 - the best no bid)
QUOTE = """LEFT JOIN LATERAL (
            SELECT max(price) FILTER (WHERE side = 'yes') AS bid,
                   1 - max(price) FILTER (WHERE side = 'no') AS ask, max(updated_at) AS at
            FROM feed_book_levels b WHERE b.ticker = m.ticker) bk ON true
        CROSS JOIN LATERAL (
            SELECT CASE WHEN bk.at IS NULL OR t.ts >= bk.at THEN t.yes_bid ELSE bk.bid END
                       AS yes_bid,
                   CASE WHEN bk.at IS NULL OR t.ts >= bk.at THEN t.yes_ask ELSE bk.ask END
                       AS yes_ask,
                   GREATEST(t.ts, bk.at) AS quote_ts) q"""


# ---- account ---------------------------------------------------------------------------------

async def account(pool) -> dict:
    """Balance, portfolio value, P&L and positions valued at the latest quotes."""
    bal = await one(pool, "SELECT balance_cents, portfolio_value_cents, updated_at "
                          "FROM account_balance")
    positions = await rows(pool, """
        SELECT p.ticker, p.position, p.market_exposure, p.realized_pnl, p.fees_paid,
               p.resting_orders_count, p.updated_at, m.title, m.close_time,
               q.yes_bid, q.yes_ask, t.last_price, q.quote_ts
        FROM account_positions p
        LEFT JOIN markets m ON m.ticker = p.ticker
        LEFT JOIN feed_quotes t ON t.ticker = p.ticker
        """ + QUOTE.replace("m.ticker", "p.ticker") + """
        WHERE p.position <> 0 ORDER BY p.ticker""")
    # one P&L definition everywhere (the trades' pnl_cents too): after fees, fees beside it
    realised = await one(pool, "SELECT COALESCE(sum(realized_pnl), 0) AS r, "
                               "COALESCE(sum(fees_paid), 0) AS fees FROM account_positions")
    unrealised = 0.0
    unknown = []
    for p in positions:
        count = abs(p["position"])
        # what the position would fetch now: YES sells at the yes bid, NO at 1 - yes ask
        price = p["yes_bid"] if p["position"] > 0 else (
            None if p["yes_ask"] is None else 1 - p["yes_ask"])
        p["side"] = "yes" if p["position"] > 0 else "no"
        p["count"] = count
        if price is None or p["market_exposure"] is None:
            p["value"] = p["unrealised"] = None
            unknown.append(p["ticker"])
        else:
            p["value"] = round(count * price, 4)
            p["unrealised"] = round(p["value"] - p["market_exposure"], 4)
            unrealised += p["unrealised"]
    return {
        "balance_cents": bal["balance_cents"] if bal else None,
        "portfolio_value_cents": bal["portfolio_value_cents"] if bal else None,
        "synced_at": bal["updated_at"] if bal else None,
        "realised_pnl": round(realised["r"] - realised["fees"], 4) if realised else 0,
        "fees_paid": realised["fees"] if realised else 0,
        "unrealised_pnl": round(unrealised, 4),
        "unrealised_unknown": unknown,
        "positions": positions,
    }


async def fills(pool, limit: int = 20) -> list[dict]:
    """The latest fills in trader words: ``action`` ("Buy Yes", "Sell Yes", ...) and
    ``price`` in that side's dollars. The exchange reports a fill on its one YES book (bid or
    ask), which alone cannot tell "buy YES" from "sell NO"; rec's own order (trade_orders)
    says which; a fill of an order rec did not send is named by the exposure it builds."""
    try:
        found = await rows(pool, """
            SELECT f.trade_id, f.order_id, f.ticker, f.outcome_side, f.book_side, f.count,
                   f.yes_price, f.no_price, f.fee, f.is_taker, f.created_time,
                   o.side AS order_side, o.action AS order_action, o.trade_id AS rec_trade
            FROM account_fills f
            LEFT JOIN trade_orders o ON o.exchange_order_id = f.order_id
                                     OR o.client_order_id = f.client_order_id
            ORDER BY f.created_time DESC LIMIT %s""", (limit,))
    except Missing:  # no trading tables in this database: the exchange's view alone
        found = await rows(pool, """
            SELECT trade_id, order_id, ticker, outcome_side, book_side, count, yes_price,
                   no_price, fee, is_taker, created_time
            FROM account_fills ORDER BY created_time DESC LIMIT %s""", (limit,))
    for f in found:
        f.update(fill_words(f))
    return found


def fill_words(f: dict) -> dict:
    """``{"action": "Sell Yes", "side": "yes", "price": ...}`` of one fill row."""
    side, action = f.get("order_side"), f.get("order_action")
    if side is None or action is None:  # not rec's order: the exposure the fill builds
        side, action = f["outcome_side"], "buy"
    yes = f["yes_price"]
    price = yes if side == "yes" else (f["no_price"] if f["no_price"] is not None
                                       else None if yes is None else round(1 - yes, 4))
    return {"action": f"{action.title()} {side.title()}", "side": side, "price": price}


# ---- trades ----------------------------------------------------------------------------------

async def trading_settings(pool, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    found = await rows(pool, "SELECT key, value, description FROM trading_settings ORDER BY key")
    return {r["key"]: {"value": r["value"], "description": r["description"]}
            for r in found if keys is None or r["key"] in keys}


async def open_trades(pool) -> list[dict]:
    return await rows(pool, """
        SELECT * FROM trades WHERE status = ANY(%s) ORDER BY opened_at DESC""",
                      (list(TRADE_ACTIVE),))


async def resting_orders(pool) -> list[dict]:
    """rec's orders resting on the book now (accepted, something remaining, not seen ended by
    rec-account-sync), with what filled: ``order`` in trader words ("Buy Yes"), and
    ``cancelable`` for an entry rec-trade-manager can give up (``POST /trades/{id}/cancel``);
    a leg whose cancel is requested is ``state`` 'cancel' until rec-trade-executor has it."""
    found = await rows(pool, """
        SELECT o.trade_id, o.client_order_id, o.leg, o.ticker, o.side, o.action, o.count,
               o.price, o.time_in_force, o.state, coalesce(o.fill_count, 0) AS fill_count,
               coalesce(o.remaining_count, o.count) AS remaining_count, o.acked_at,
               t.status AS trade_status
        FROM trade_orders o JOIN trades t ON t.id = o.trade_id
        WHERE o.state IN ('accepted', 'cancel') AND coalesce(o.remaining_count, o.count) > 0
          AND t.status = ANY(%s)
          AND NOT EXISTS (SELECT 1 FROM account_orders a WHERE a.order_id = o.exchange_order_id
                          AND a.status IN ('executed', 'canceled'))
        ORDER BY o.acked_at DESC NULLS LAST, o.client_order_id""", (list(TRADE_ACTIVE),))
    for o in found:
        o["order"] = f"{o['action'].title()} {o['side'].title()}"
        o["cancelable"] = (o["leg"] == "open" and o["state"] == "accepted"
                           and o["trade_status"] == "submitted")
    return found


async def trade(pool, trade_id: int) -> dict | None:
    """One trade's state, for the Manual trading page's answer that follows it."""
    return await one(pool, "SELECT id, ticker, side, status, reason, quantity, "
                           "requested_count, limit_price, entry_price, close_rule, updated_at "
                           "FROM trades WHERE id = %s", (trade_id,))


async def trades(pool, status: str | None = None, ticker: str | None = None,
                 strategy: str | None = None, since: dt.date | None = None,
                 until: dt.date | None = None, limit: int = 200) -> list[dict]:
    where, params = [], []
    if status:
        where.append("status = %s")
        params.append(status)
    if ticker:
        where.append("ticker ILIKE %s")
        params.append(f"%{ticker}%")
    if strategy:
        where.append("strategy = %s")
        params.append(strategy)
    if since:
        where.append("opened_at >= %s")
        params.append(dt.datetime.combine(since, dt.time(), dt.UTC))
    if until:
        where.append("opened_at < %s")
        params.append(dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.UTC))
    sql = "SELECT * FROM trades"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY opened_at DESC, id DESC LIMIT %s"
    params.append(limit)
    found = await rows(pool, sql, tuple(params))
    if found:
        events = await rows(pool, """
            SELECT trade_id, ts, kind, from_status, to_status, detail FROM trade_events
            WHERE trade_id = ANY(%s) ORDER BY ts, id""", ([t["id"] for t in found],))
        by: dict[int, list] = {}
        for e in events:
            by.setdefault(e["trade_id"], []).append(e)
        for t in found:
            t["events"] = by.get(t["id"], [])
    return found


# ---- markets ---------------------------------------------------------------------------------

async def markets(pool) -> list[dict]:
    """Followed markets with their latest quote and the age of their data."""
    return await rows(pool, """
        SELECT m.ticker, m.title, m.series_ticker, m.event_ticker, m.status, m.close_time,
               m.strike_type, m.floor_strike, m.cap_strike, q.yes_bid, q.yes_ask,
               t.last_price, t.volume, q.quote_ts,
               f.last_message_at, f.state AS feed_state, f.source,
               extract(epoch FROM now() - f.last_message_at) AS age_sec
        FROM markets m
        LEFT JOIN feed_quotes t ON t.ticker = m.ticker
        """ + QUOTE + """
        LEFT JOIN feed_freshness f ON f.ticker = m.ticker
        WHERE m.followed
        ORDER BY f.state = 'closed', m.close_time NULLS LAST, m.floor_strike NULLS LAST,
                 m.ticker""")


async def market_history(pool, ticker: str, minutes: int = 120) -> list[dict]:
    """The ticker values of the last ``minutes`` (rec-market-feed's history records)."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)
    try:
        async with pool.connection() as conn:
            recs = await feed_log.market_records(conn, ticker, since,
                                                 frozenset((feed_log.TICK,)))
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
        raise Missing(str(exc).splitlines()[0]) from None
    recs.sort(key=lambda r: r.ms)
    return [clean({"t": r.ms / 1000, "yes_bid": r.data[0], "yes_ask": r.data[1],
                   "last_price": r.data[4], "volume": r.data[5]}) for r in recs[-20000:]]


async def book(pool, ticker: str) -> dict:
    levels = await rows(pool, """
        SELECT side, price, quantity, updated_at FROM feed_book_levels WHERE ticker = %s
        ORDER BY side, price DESC""", (ticker,))
    return {"yes": [lv for lv in levels if lv["side"] == "yes"],
            "no": [lv for lv in levels if lv["side"] == "no"]}


async def feed_status(pool) -> list[dict]:
    return await rows(pool, "SELECT name, mode, since, followed, queue_depth, updated_at, "
                            "extract(epoch FROM now() - updated_at) AS age_sec FROM feed_status")


# ---- pricing ---------------------------------------------------------------------------------

async def strike_tables(pool) -> dict[str, list[dict]]:
    found = await rows(pool, """
        SELECT market_ticker, series_ticker, event_ticker, computed_at, close_time, strike,
               index_price, momentum, buffer, buffer_pct, probability, prob_source,
               yes_ask, no_ask, yes_diff_cents, no_diff_cents, volume, active_side,
               time_to_close_sec, extract(epoch FROM now() - computed_at) AS age_sec
        FROM strike_table ORDER BY series_ticker, strike""")
    out: dict[str, list[dict]] = {}
    for r in found:
        out.setdefault(r["series_ticker"], []).append(r)
    return out


async def watchlist(pool) -> list[dict]:
    return await rows(pool, "SELECT * FROM watchlist ORDER BY diff_cents DESC, market_ticker")


async def series_status(pool) -> list[dict]:
    return await rows(pool, "SELECT * FROM series_status ORDER BY series_ticker")


CHART_POINTS = 1500  # at most this many points per index: longer ranges are averaged


async def index_history(pool, minutes: int = 60, index: str | None = None) -> list[dict]:
    """The index seconds of the last ``minutes`` (one index, or all), averaged over buckets
    of ``step`` seconds so that a chart gets at most :data:`CHART_POINTS` points."""
    step = max(1, -(-minutes * 60 // CHART_POINTS))
    return await rows(pool, """
        SELECT index_name, floor(extract(epoch FROM ts) / %(step)s) * %(step)s AS t,
               avg(price) AS price, avg(momentum) AS momentum
        FROM index_prices
        WHERE ts > now() - make_interval(mins => %(minutes)s)
          AND (%(index)s::text IS NULL OR index_name = %(index)s)
        GROUP BY 1, 2 ORDER BY 1, 2""", {"step": step, "minutes": minutes, "index": index})


async def chart_marks(pool, index: str) -> dict:
    """What the index chart draws over the prices: the strikes of ``index``'s open series
    (the strike table's) and the settlement window of the next close (``close``, seconds
    since the epoch, and the ``window_sec`` before it whose average settles)."""
    found = await rows(pool, """
        SELECT market_ticker, series_ticker, strike, extract(epoch FROM close_time) AS close,
               window_sec FROM strike_table
        WHERE index_name = %s AND close_time > now() ORDER BY close_time, strike""", (index,))
    nearest = found[0]["close"] if found else None
    return {"strikes": [{"strike": r["strike"], "ticker": r["market_ticker"]}
                        for r in found if r["close"] == nearest],
            "close": nearest, "window_sec": found[0]["window_sec"] if found else None}


async def model(pool) -> dict | None:
    return await one(pool, """
        SELECT version, index_name, kind, created_at, history_from, history_to, train_samples,
               calibration, reliability_png IS NOT NULL AS has_plot, active
        FROM prob_models WHERE active ORDER BY version DESC LIMIT 1""")


async def reliability_png(pool, version: int) -> bytes | None:
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT reliability_png FROM prob_models WHERE version = %s", (version,))
            row = await cur.fetchone()
    except psycopg.errors.UndefinedTable as exc:
        raise Missing(str(exc).splitlines()[0]) from None
    return bytes(row[0]) if row and row[0] is not None else None


async def ledger(pool) -> dict | None:
    """rec-trade-manager's last reconciliation of rec's books with the exchange's
    (``ledger_checks``, :func:`app.ledger.standing.last_check`); None: no run yet."""
    from app.ledger.standing import last_check

    try:
        async with pool.connection() as conn:
            found = await last_check(conn)
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
        raise Missing(str(exc).splitlines()[0]) from None
    return None if found is None else clean(found)


# ---- readiness -------------------------------------------------------------------------------

async def unit_failures(pool, hours: int = 24, limit: int = 20) -> list[dict]:
    """Failed runs of rec units (recorded by `rec unit-failed`: ExecStopPost= and OnFailure=)."""
    return await rows(pool, "SELECT ts, unit, result, exit_code, exit_status, failures_in_a_row, "
                            "gave_up FROM unit_failures WHERE ts > now() - make_interval("
                            "hours => %s) ORDER BY ts DESC LIMIT %s", (hours, limit))


async def last_backup(pool, max_age_hours: float) -> dict:
    """The last good backup, as `rec status` says it (app.db.backup_status)."""
    from app.db.backup_status import last_backup as read_last

    try:
        async with pool.connection() as conn:
            return (await read_last(conn, max_age_hours)).as_dict()
    except psycopg.errors.UndefinedTable as exc:
        raise Missing(str(exc).splitlines()[0]) from None


async def stale_markets(pool, stale_after: float) -> tuple[int, list[str]]:
    """(followed live markets, those whose last message is older than ``stale_after``)."""
    found = await rows(pool, """
        SELECT ticker, extract(epoch FROM now() - last_message_at) AS age_sec
        FROM feed_freshness WHERE state = 'live'""")
    return len(found), sorted(r["ticker"] for r in found if r["age_sec"] > stale_after)


async def account_age(pool) -> float | None:
    r = await one(pool, "SELECT extract(epoch FROM now() - updated_at) AS age FROM "
                        "account_balance")
    return None if r is None else r["age"]


async def read(fn: Callable[..., Awaitable[Any]], pool, *args, **kw) -> dict:
    """``fn(pool, ...)``'s rows as a panel, or why there are none."""
    if pool is None:
        return {"data": None, "error": "no database connection"}
    try:
        return {"data": await fn(pool, *args, **kw)}
    except Missing as exc:
        return {"data": None, "missing": str(exc)}
    except psycopg.DataError as exc:
        return {"data": None, "error": f"not a valid query: {str(exc).splitlines()[0]}"}
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__
        return {"data": None, "error": f"database: {why}"}
