"""The exchange's hours, so callers ride through a trading pause instead of fighting it.

Kalshi pauses trading every week for maintenance (Thursdays 3-5 AM ET). ``GET
/exchange/schedule`` lists the coming ``maintenance_windows``; during one,
``GET /exchange/status`` says ``trading_active: false`` (with an estimated resume time), new
orders and amends are refused with ``trading_is_paused`` and cancels still work. A refused
order is not retried by the client (it is a 400), so a pause never turns into an error storm;
:class:`TradingGate` lets a caller wait for the resume time rather than try again and again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.kalshi.errors import KalshiError

if TYPE_CHECKING:
    from app.kalshi.rest import KalshiRest

PAUSED = "trading_is_paused"


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __contains__(self, t: datetime) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True)
class Schedule:
    maintenance: tuple[Window, ...]

    def pause_at(self, t: datetime) -> Window | None:
        """The maintenance window ``t`` falls in, if any."""
        return next((w for w in self.maintenance if t in w), None)

    def next_pause(self, t: datetime) -> Window | None:
        """The window in force at ``t`` or the next one to come."""
        return next((w for w in sorted(self.maintenance, key=lambda w: w.start)
                     if w.end > t), None)


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def parse_schedule(body: dict[str, Any]) -> Schedule:
    """``GET /exchange/schedule``'s body (``{"schedule": {...}}`` or the inner object)."""
    inner = body.get("schedule", body)
    windows = tuple(Window(_when(w["start_datetime"]), _when(w["end_datetime"]))
                    for w in inner.get("maintenance_windows") or [])
    return Schedule(windows)


async def read_schedule(rest: KalshiRest) -> Schedule:
    return parse_schedule(await rest.request("GET", "/exchange/schedule"))


def is_pause_refusal(exc: BaseException) -> bool:
    """An order or amend refused because trading is paused (not a fault of the request)."""
    return isinstance(exc, KalshiError) and exc.status == 400 and exc.code == PAUSED


class TradingGate:
    """Send orders only while trading is active: ``await gate.wait_open()`` returns at once when
    it is, and otherwise waits (one status call per ``poll_sec``, at most ``max_wait_sec``)
    for the estimated resume time. Returns whether trading is open."""

    def __init__(self, rest: KalshiRest, poll_sec: float = 5.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.rest, self.poll_sec, self.sleep = rest, poll_sec, sleep
        self.status_calls = 0

    async def is_open(self) -> bool:
        self.status_calls += 1
        status = await self.rest.get_exchange_status()
        return status.exchange_active and status.trading_active

    async def wait_open(self, max_wait_sec: float) -> bool:
        waited = 0.0
        while not await self.is_open():
            if waited >= max_wait_sec:
                return False
            step = min(self.poll_sec, max_wait_sec - waited)
            await self.sleep(step)
            waited += step
        return True
