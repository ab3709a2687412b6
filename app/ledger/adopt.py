"""Fills no trade owns, adopted: an exchange order with fills whose client_order_id is no leg's
(an order placed at the exchange directly, or by another program on the account) becomes an
explicit trade of strategy ``unowned`` (``statements.ADOPT``), never ignored. The state
machine then books it like any open from its fills, so its P&L counts in the books and the
trades' P&L equals the exchange's cash change. rec-trade-manager (the one writer of trades)
runs this from its standing reconciliation (app/ledger/standing.py).

One trade per exchange order: it holds what the order bought, on the outcome side it built
(``Order.outcome_side``), at the order's limit in that side's dollars.

A position no trade owns is adopted through the fills that built it: every contract the
exchange holds came from a fill (live or behind the history cutoff, both read), so once the
unowned fills are adopted a position that still differs from the open trades is an error of
the books, reported as ``position_trades`` and never papered over with an invented trade.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal

from app.kalshi.models import Order
from app.ledger.compare import owning_leg
from app.ledger.records import Books, ExchangeRecord
from app.trading import statements as sql

UNOWNED = "unowned"  # the strategy and entry method of an adopted trade: the one marker
ONE = Decimal(1)


def unowned_orders(books: Books, record: ExchangeRecord) -> list[Order]:
    """The exchange's orders that have fills and that no leg owns."""
    filled = {f.order_id for f in record.fills}
    return [o for o in record.orders
            if o.order_id in filled and owning_leg(books, o) is None]


def adoption(order: Order) -> dict:
    """The parameters of ``statements.ADOPT`` for one order."""
    side = order.outcome_side
    if side == "yes":
        price = order.yes_price_dollars
    else:
        price = order.no_price_dollars if order.no_price_dollars is not None else (
            ONE - order.yes_price_dollars if order.yes_price_dollars is not None else None)
    count = order.initial_count_fp or order.fill_count_fp + order.remaining_count_fp
    reason = (f"adopted: exchange order {order.order_id} "
              f"({order.client_order_id or 'no client_order_id'}) was placed outside rec")
    return {"ticker": order.ticker, "side": side, "count": count,
            "price": price if price is not None else Decimal("0.5"),
            "reason": reason, "coid": order.client_order_id or f"{UNOWNED}-{order.order_id}",
            "order_id": order.order_id, "filled": order.fill_count_fp,
            "remaining": order.remaining_count_fp,
            "detail": json.dumps({"exchange_order_id": order.order_id,
                                  "client_order_id": order.client_order_id,
                                  "status": order.status, "filled": str(order.fill_count_fp),
                                  "remaining": str(order.remaining_count_fp)})}


async def adopt(pool, books: Books, record: ExchangeRecord, log: logging.Logger) -> list[int]:
    """Adopt every unowned order with fills (each in its own statement); the new trades' ids,
    each a warning in the journal."""
    made = []
    for order in unowned_orders(books, record):
        async with pool.connection() as conn:
            cur = await conn.execute(sql.ADOPT, adoption(order))
            row = await cur.fetchone()
        if row is None:
            continue  # a leg took it meanwhile
        made.append(row[0])
        log.warning("ledger: exchange order %s (%s, %s %s x%s, %s filled) belongs to no trade: "
                    "adopted as trade %d (%s)", order.order_id,
                    order.client_order_id or "no client_order_id", order.ticker,
                    order.outcome_side, order.initial_count_fp, order.fill_count_fp, row[0],
                    UNOWNED)
    return made
