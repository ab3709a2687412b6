"""The trade state machine, without HTTP: it applies what the exchange's records say (a leg's
result from rec-trade-executor, the fills and orders rec-account-sync stores, the markets and
the settlements) to the trades, every move a ``trade_events`` row in the transaction that
makes it. rec-trade-manager runs it; a test can drive it with a database pool alone.

A leg's fate comes from the exchange's record of it, never from the trade's hopes:

* an open leg acknowledged: ``pending -> submitted``; rejected or expired: ``rejected`` /
  ``expired`` with the exchange's error as the reason;
* an order that ended (nothing remaining, or account-sync saw it executed or canceled): the
  trade opens (or closes) only once its fills in the ledger sum to the order's fill count, so
  fees and P&L are the fills' own; an order that ended without a fill cancels an entry;
* a close leg rejected, expired or ended unfilled: ``closing -> open`` with the reason, so the
  exit rule may try again; a partial close leaves the rest open;
* a market closed (its status) or settled (the exchange's settlement record, whichever comes
  first): its open trades expire, and the settlement is booked on those that held contracts.
  A trade with a leg in flight waits for the leg (it may have filled as the market ended; the
  exchange cancels what rests at the close) and expires from open once its fills are booked.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.runtime import clock
from app.trading import statements as sql
from app.trading.money import cents
from app.trading.rows import row_dict
from app.trading.states import (
    CANCELED,
    CLOSED,
    CLOSING,
    EXPIRED,
    LEG_FINAL,
    OPEN,
    PENDING,
    REJECTED,
    SUBMITTED,
    TRANSITIONS,
)

ENDED_ORDER = ("executed", "canceled")  # account_orders statuses of an order that ended
PRICE_Q = Decimal("0.0001")


def _now() -> datetime:
    return clock.now()


def _reason(r: dict[str, Any]) -> str:
    return (f"{r['error_code']}: {r['error_text']}" if r["error_code"]
            else r["error_text"]) or r["state"]


class TradeMachine:
    """Moves trades from the exchange's records. ``pool``: a psycopg async pool."""

    def __init__(self, pool, log: logging.Logger | None = None) -> None:
        self.pool = pool
        self.log = log or logging.getLogger("rec.trading")
        self.transitions = 0

    # ------------------------------------------------------------------ writing a move

    async def transition(self, cur, trade_id: int, old: str, new: str, kind: str,
                         detail: dict[str, Any], **columns: Any) -> bool:
        """Move a trade from ``old`` to ``new`` (nothing if it is no longer ``old``) and write
        its event, in the caller's transaction."""
        assert new in TRANSITIONS[old], (old, new)
        sets = ", ".join(f"{k} = %s" for k in columns)
        await cur.execute(f"UPDATE trades SET status = %s, updated_at = now()"
                          f"{', ' + sets if sets else ''} WHERE id = %s AND status = %s",
                          (new, *columns.values(), trade_id, old))
        if cur.rowcount != 1:
            return False
        await cur.execute(sql.TRANSITION_EVENT,
                          (trade_id, kind, old, new, json.dumps(detail, default=str)))
        self.transitions += 1
        self.log.info("trade %d: %s -> %s (%s) %s", trade_id, old, new, kind,
                      json.dumps(detail, default=str))
        return True

    @staticmethod
    async def event(cur, trade_id: int, kind: str, detail: dict[str, Any]) -> None:
        await cur.execute(sql.EVENT, (trade_id, kind, json.dumps(detail, default=str)))

    # ------------------------------------------------------------------ leg results

    async def results(self, coids: list[str] | None = None) -> list[dict[str, Any]]:
        """The legs whose result can move their trade (``coids``: only those)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                sql.RESULTS + (" AND o.client_order_id = ANY(%s)" if coids is not None else ""),
                (coids,) if coids is not None else None)
            return [row_dict(cur, r) for r in await cur.fetchall()]

    async def apply(self, r: dict[str, Any]) -> None:
        """Apply one leg's result (a row of ``statements.RESULTS``) in one transaction."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            if r["status"] == PENDING:
                await self._pending(cur, r)
            elif r["status"] == SUBMITTED:
                await self._submitted(cur, r)
            elif r["status"] == CLOSING:
                await self._closing(cur, r)

    async def _pending(self, cur, r: dict[str, Any]) -> None:
        if r["state"] in ("rejected", "expired"):
            new = REJECTED if r["state"] == "rejected" else EXPIRED
            await self.transition(cur, r["id"], PENDING, new, f"order {r['state']}",
                                  {"client_order_id": r["client_order_id"],
                                   "error_code": r["error_code"], "error": r["error_text"]},
                                  reason=_reason(r))
            return
        await self.transition(cur, r["id"], PENDING, SUBMITTED, "order accepted",
                              {"client_order_id": r["client_order_id"],
                               "exchange_order_id": r["exchange_order_id"],
                               "fill_count": r["fill_count"],
                               "remaining_count": r["remaining_count"]})

    async def _submitted(self, cur, r: dict[str, Any]) -> None:
        oid = r["exchange_order_id"]
        filled = await self.final_fill(cur, r)
        if filled is None:
            return  # still resting
        if filled == 0:
            await self.transition(cur, r["id"], SUBMITTED, CANCELED, "not filled",
                                  {"exchange_order_id": oid},
                                  reason="the order ended without a fill")
            return
        got = await self.fills(cur, oid, r["side"])
        if got is None or got[0] < filled:
            return  # wait for account-sync to store the fills
        n, value, fees = got
        await self.transition(
            cur, r["id"], SUBMITTED, OPEN, "open confirmed by fills",
            {"exchange_order_id": oid, "filled": n, "cost": value, "fees": fees},
            quantity=n, entry_price=(value / n).quantize(PRICE_Q), entry_cost=value,
            fees=fees, fees_cents=cents(fees), opened_at=_now())

    async def _closing(self, cur, r: dict[str, Any]) -> None:
        if r["state"] in LEG_FINAL and r["exchange_order_id"] is None:
            await self._close_failed(cur, r, Decimal(0))  # never became an order
            return
        filled = await self.final_fill(cur, r)
        if filled is None:
            return  # still resting
        if r["state"] in ("rejected", "expired") or filled == 0:
            await self._close_failed(cur, r, filled)
            return
        got = await self.fills(cur, r["exchange_order_id"], r["side"])
        if got is None or got[0] < filled:
            return  # the trade stays closing until its fills are in the ledger
        await self._closed(cur, r, *got)

    async def _close_failed(self, cur, r: dict[str, Any], filled: Decimal) -> None:
        """A close that did not fill: back to open, with the reason, for the exit rule."""
        reason = _reason(r) if r["state"] in LEG_FINAL else "the close ended without a fill"
        await self.transition(cur, r["id"], CLOSING, OPEN,
                              "close rejected" if r["state"] == "rejected" else "close failed",
                              {"client_order_id": r["client_order_id"], "state": r["state"],
                               "error_code": r["error_code"], "error": r["error_text"],
                               "filled": filled, "reason": reason})

    async def _closed(self, cur, r: dict[str, Any], n: Decimal, value: Decimal,
                      fees: Decimal) -> None:
        trade_id, oid = r["id"], r["exchange_order_id"]
        await cur.execute("SELECT quantity, entry_cost, fees, coalesce(exit_proceeds, 0) "
                          "FROM trades WHERE id = %s", (trade_id,))
        qty, cost, fees_before, proceeds = await cur.fetchone()
        proceeds, total_fees = proceeds + value, fees_before + fees
        if n < qty:  # a partial close: the rest stays open
            await self.transition(cur, trade_id, CLOSING, OPEN, "partial close",
                                  {"closed": n, "proceeds": value, "fees": fees},
                                  quantity=qty - n, exit_proceeds=proceeds,
                                  fees=total_fees, fees_cents=cents(total_fees))
            return
        pnl = proceeds - cost - total_fees
        await self.transition(
            cur, trade_id, CLOSING, CLOSED, "close confirmed by fills",
            {"exchange_order_id": oid, "closed": n, "proceeds": value, "fees": fees,
             "pnl_cents": cents(pnl)},
            exit_price=(value / n).quantize(PRICE_Q), exit_proceeds=proceeds,
            fees=total_fees, fees_cents=cents(total_fees), pnl_cents=cents(pnl),
            win=pnl > 0, closed_at=_now())

    @staticmethod
    async def final_fill(cur, r: dict[str, Any]) -> Decimal | None:
        """How many contracts the leg filled in the end, or None while it still rests."""
        if r["remaining_count"] is not None and r["remaining_count"] == 0:
            return r["fill_count"] or Decimal(0)
        if r["exchange_order_id"] is None:
            return None
        await cur.execute("SELECT status, fill_count FROM account_orders WHERE order_id = %s",
                          (r["exchange_order_id"],))
        row = await cur.fetchone()
        if row is None or row[0] not in ENDED_ORDER:
            return None
        return row[1]

    @staticmethod
    async def fills(cur, oid: str, side: str) -> tuple[Decimal, Decimal, Decimal] | None:
        """(contracts, dollars at the trade side's price, fees) of an order from the ledger."""
        await cur.execute(sql.FILLS, (side, oid))
        row = await cur.fetchone()
        if row is None or row[0] is None:
            return None
        return row[0], row[1], row[2]

    # ------------------------------------------------------------------ markets and settlements

    async def expire_and_settle(self) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            await cur.execute(sql.TO_EXPIRE)
            for trade_id, status, mstatus, result in await cur.fetchall():
                witness = (f"settled {result}" if result is not None and mstatus in
                           (None, "active", "open", "deactivated", "initialized")
                           else mstatus)
                await self.transition(cur, trade_id, status, EXPIRED, "market closed",
                                      {"market_status": mstatus, "market_result": result},
                                      reason=f"the market closed ({witness})")
            await cur.execute(sql.TO_SETTLE)
            for row in await cur.fetchall():
                await self._settle(cur, *row)

    async def _settle(self, cur, trade_id: int, side: str, qty: Decimal, cost: Decimal,
                      fees: Decimal, proceeds: Decimal, result: str) -> None:
        revenue = qty if result == side else Decimal(0)
        total = proceeds + revenue
        pnl = total - cost - fees
        await cur.execute(sql.SETTLE, (result, total, cents(pnl), pnl > 0,
                                       Decimal(1) if result == side else Decimal(0), trade_id))
        await self.event(cur, trade_id, "settled",
                         {"result": result, "revenue": revenue, "pnl_cents": cents(pnl)})
        self.log.info("trade %d settled: %s, P&L %d cents", trade_id, result, cents(pnl))
