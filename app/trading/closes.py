"""What a close intent must pass besides the trade being open: its pace (a trade's closes are
at most ``close_orders_per_minute`` a minute, and after each close that ended without a fill a
doubling wait up to ``close_backoff_max_sec``), and its limit on the market's price grid. A
refusal is a :class:`Conflict` (409, the trade's state or the key) or :class:`Paced` (429)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.trading import risk
from app.trading import statements as sql
from app.trading.rows import row_dict


class Conflict(Exception):
    """An intent the trade's state or the idempotency key refuses (HTTP 409)."""

    http_status = 409

    def __init__(self, code: str, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.detail = code, message, detail


class Paced(Conflict):
    """A close that must wait (HTTP 429): the trade's close pace (``close_pace``)."""

    http_status = 429

    def __init__(self, code: str, message: str, retry_after: float) -> None:
        super().__init__(code, message, retry_after_sec=round(retry_after, 1))


async def close_pace(cur, trade_id: int, s: dict[str, Any]) -> None:
    """A trade's closes are paced: at most ``close_orders_per_minute`` a minute, and after
    each close that ended without a fill a doubling wait (up to ``close_backoff_max_sec``)
    before the next, so an exit rule never repeats orders that cannot fill."""
    await cur.execute(sql.CLOSE_PACE, (trade_id,))
    last_minute, unfilled, since = await cur.fetchone()
    cap = int(s.get("close_orders_per_minute", 6))
    if last_minute >= cap:
        raise Paced("close_rate", f"trade {trade_id}: {last_minute} close orders in the "
                    f"last minute reached close_orders_per_minute {cap}", 60.0)
    if unfilled:
        wait = min(float(s.get("close_backoff_max_sec", 60)), 2.0 ** (unfilled - 1))
        if since is not None and since < wait:
            raise Paced("close_backoff", f"trade {trade_id}: {unfilled} close(s) ended "
                        f"without a fill; the next waits {wait:g}s after the last",
                        wait - since)

async def close_price(cur, req: dict[str, Any], ticker: str) -> Decimal:
    """The close's limit: the one asked for (on the market's price grid), else $0.01 (sell
    at any price: the kill switch's closes)."""
    if req["limit_price"] is None:
        return Decimal("0.01")
    await cur.execute("SELECT * FROM markets WHERE ticker = %s", (ticker,))
    mrow = await cur.fetchone()
    if mrow is not None:
        risk.check_price(row_dict(cur, mrow), req["limit_price"])
    return req["limit_price"]
