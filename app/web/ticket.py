"""The order ticket of the Manual trading page: what applies to a trade before it is sent.

- the risk limits (``trading_settings``, the values rec-trade-manager enforces, with the ranges
  of :mod:`app.trading.settings_ranges`): a count over ``max_contracts_per_trade`` is refused
  here, before anything is sent;
- the order type in words (``open_time_in_force``: fill-or-kill at the limit by default), the
  worst case (the limit times the count plus Kalshi's fee) and the fee;
- the market beside it (:func:`market_card`): its name, the best bid and ask, the last price,
  the top levels of the book, P(yes) and the model's edge on each side (P(side) minus that
  side's ask, in cents: what rec-coordinator's ``diff`` is);
- the exit rules that would close the trade at once: rec-trade-supervisor's own
  :func:`~app.trading.exits.exit_rule` applied to the trade as it would be the
  moment it opens (P(side) and momentum from the strike table, the close price from the book).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.trading.exits import View, exit_rule
from app.trading.money import fee_dollars
from app.web import data, names
from app.web.data import QUOTE, read

LIMIT_KEYS = ("max_contracts_per_trade", "max_contracts_per_market",
              "max_open_exposure_dollars", "max_daily_loss_dollars", "open_time_in_force",
              "kill_switch")
ORDER_TYPES = {
    "fill_or_kill": "fill-or-kill at your limit: it fills at once and entirely at the limit or "
                    "better, or it is canceled and nothing is bought (it never rests)",
    "immediate_or_cancel": "immediate-or-cancel at your limit: what fills at once at the limit "
                           "or better is bought, the rest is canceled",
    "good_till_canceled": "good-till-canceled at your limit: what does not fill at once rests "
                          "on the book until it fills or is canceled",
}
RULE_WORDS = {
    "probability": "P({side}) {probability:.1%} is below the exit threshold {threshold:.0%}",
    "momentum_spike": "momentum {momentum} is past the exit threshold {threshold} against "
                      "{side_upper}",
    "stop_loss": "the close price {close_price} is {stop_loss_cents}¢ or more below the entry",
    "take_profit": "the close price {close_price} is {take_profit_cents}¢ or more above the "
                   "entry",
}


def rule_words(rule: str, side: str, detail: dict[str, Any]) -> str:
    """An exit rule that fired, in words, with its numbers (rec-trade-supervisor's detail)."""
    try:
        return RULE_WORDS[rule].format(side=side.upper(), side_upper=side.upper(),
                                       **{k: Decimal(str(x)) for k, x in detail.items()})
    except (KeyError, ValueError, ArithmeticError):  # a rule or numbers not known here
        return ", ".join(f"{k} {x}" for k, x in detail.items()) or "its numbers not recorded"


async def settings(pool: Any) -> dict[str, Any]:
    """The trading settings the ticket needs (values only), or {} without them."""
    found = await read(data.trading_settings, pool, LIMIT_KEYS + data.EXIT_RULE_KEYS)
    return {k: v["value"] for k, v in (found.get("data") or {}).items()}


def limit_error(values: dict[str, Any], s: dict[str, Any]) -> dict[str, str]:
    """The count over the per-trade risk limit, as a form error (rec-trade-manager would
    refuse it)."""
    most = s.get("max_contracts_per_trade")
    count = values.get("count")
    if most is not None and isinstance(count, int) and count > int(most):
        return {"count": f"count: at most {int(most)} contracts per trade (risk limit "
                         f"max_contracts_per_trade; rec-trade-manager refuses more)"}
    return {}


async def market_view(pool: Any, market: str, side: str) -> dict[str, Any]:
    """P(side), momentum and time to close (strike table, as rec-trade-supervisor reads
    them), the best bid of ``side`` and ``close_in``: seconds to the market's close."""
    out: dict[str, Any] = {}
    row = await read(data.one, pool, """
        SELECT probability, momentum, time_to_close_sec,
               (SELECT max(price) FROM feed_book_levels b WHERE b.ticker = %(m)s
                AND b.side = %(s)s) AS bid,
               (SELECT extract(epoch FROM close_time - now())::float8 FROM markets
                WHERE ticker = %(m)s) AS close_in
        FROM (SELECT 1) one LEFT JOIN strike_table st ON st.market_ticker = %(m)s""",
                     {"m": market, "s": side})
    r = row.get("data") or {}
    out["close_in"] = r.get("close_in")
    if r.get("probability") is not None:
        p_yes = Decimal(str(r["probability"]))
        out["probability"] = p_yes if side == "yes" else 1 - p_yes
    for key in ("momentum", "bid"):
        if r.get(key) is not None:
            out[key] = Decimal(str(r[key]))
    if r.get("time_to_close_sec") is not None:
        out["time_to_close_sec"] = int(r["time_to_close_sec"])
    return out


def instant_exit(s: dict[str, Any], form: dict[str, Any], m: dict[str, Any]) -> str | None:
    """Why rec-trade-supervisor would close this trade the moment it opens, or None."""
    price = form.get("limit_price")
    if not isinstance(price, Decimal) or not isinstance(form.get("count"), int):
        return None
    v = View(0, form["market"], form["side"], Decimal(form["count"]), price, 0,
             probability=m.get("probability"), momentum=m.get("momentum"),
             time_to_close_sec=m.get("time_to_close_sec"), close_price=m.get("bid"))
    fired = exit_rule(v, s)
    if fired is None:
        return None
    rule, detail = fired
    words = rule_words(rule, form["side"], detail)
    return (f"auto-stop would close this trade at once ({rule}: {words}); it would buy at the "
            f"ask and sell at the bid a second later. Switch the rule off on the Trade monitor "
            f"or pick another market.")


async def ticket(pool: Any, form: dict[str, Any]) -> dict[str, Any]:
    """Everything the ticket shows for ``form`` (market, side, count, limit_price)."""
    s = await settings(pool)
    out: dict[str, Any] = {
        "limits": {k: s[k] for k in LIMIT_KEYS if k in s and k != "open_time_in_force"},
        "order_type": ORDER_TYPES.get(str(s.get("open_time_in_force")),
                                      "unknown: rec-trade-manager's settings are not readable"),
        "warning": None, "fee": None, "worst": None, "best": None}
    price, count = form.get("limit_price"), form.get("count")
    if isinstance(price, Decimal) and isinstance(count, int):
        out["fee"] = fee_dollars(Decimal(count), price)
        out["worst"] = price * count + out["fee"]
        out["best"] = count - out["worst"]  # each contract pays $1 when it settles your way
        if form.get("market") and form.get("side") in ("yes", "no"):
            out["warning"] = instant_exit(s, form, await market_view(pool, form["market"],
                                                                     form["side"]))
    return out


DEPTH = 5  # the book's top levels shown beside the ticket


def edge_cents(p: Any, ask: Any) -> float | None:
    """P(side) minus the ask of that side, in cents (positive: the model thinks it cheap)."""
    if p is None or ask is None:
        return None
    return round(100 * (float(p) - float(ask)), 1)


async def market_card(pool: Any, ticker: str) -> dict[str, Any] | None:
    """The market beside the ticket: ``name``, ``yes_bid``/``yes_ask``/``no_ask``/``last``,
    ``probability`` (P(yes), the strike table's), ``edge`` by side in cents and ``depth``
    (the top :data:`DEPTH` bids of each side); None for a market the feed has not stored."""
    m = await data.one(pool, """
        SELECT m.ticker, m.series_ticker, m.title, m.strike_type, m.floor_strike,
               m.cap_strike, m.close_time, q.yes_bid, q.yes_ask, t.last_price, q.quote_ts,
               st.probability, st.computed_at
        FROM markets m
        LEFT JOIN feed_quotes t ON t.ticker = m.ticker
        """ + QUOTE + """
        LEFT JOIN strike_table st ON st.market_ticker = m.ticker
        WHERE m.ticker = %s""", (ticker,))
    if m is None:
        return None
    book = await data.book(pool, ticker)
    m["name"], m["close_ts"] = names.name(m), names.epoch(m["close_time"])
    m["no_ask"] = None if m["yes_bid"] is None else round(1 - m["yes_bid"], 4)
    p = m["probability"]
    m["edge"] = {"yes": edge_cents(p, m["yes_ask"]),
                 "no": edge_cents(None if p is None else 1 - p, m["no_ask"])}
    m["depth"] = {side: book[side][:DEPTH] for side in ("yes", "no")}
    return m
