"""What KalshiWS hands out and keeps: messages, subscriptions, counters, its errors."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from app.kalshi.errors import KalshiError
from app.kalshi.models import parse_ws_msg

CONTROL_TYPES = frozenset({"subscribed", "unsubscribed", "ok", "error"})
ORDERBOOK = "orderbook_delta"


class WsCommandError(KalshiError):
    """The exchange answered a WS command with ``type: error`` (``ws_code`` per asyncapi)."""

    def __init__(self, message: str, *, ws_code: int | None = None, raw: Any = None) -> None:
        super().__init__(message, raw=raw)
        self.ws_code = ws_code


class WsNotConnected(KalshiError):
    """A command that needs a live connection was given while there is none."""


@dataclass(slots=True)
class WsMessage:
    type: str
    msg: Any
    sid: int | None = None
    seq: int | None = None
    id: int | None = None
    sending_ts_ms: int | None = None  # when the venue sent it (since 3.32, on any message)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    received_at: float = field(default_factory=time.monotonic, repr=False)  # monotonic

    @property
    def data(self) -> Any:
        """Typed model of ``msg`` for ticker/trade/fill/user_order/... (else None)."""
        return parse_ws_msg(self.type, self.msg) if isinstance(self.msg, dict) else None


class MessageQueue:
    """KalshiWS's hand-over to its consumer: a deque the consumer takes from one message
    (:meth:`take`) or every waiting message (:meth:`take_all`) at a time - one wake-up per
    batch of frames read, not one queue step per message. Once :meth:`end` is called, what
    is waiting is still handed out, then :meth:`wait` returns with nothing to take."""

    def __init__(self) -> None:
        self.items: deque[WsMessage] = deque()
        self.ended = False
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def put(self, m: WsMessage) -> None:
        self.items.append(m)
        waiter = self._waiter
        if waiter is not None:  # the consumer waits: wake it once
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def end(self) -> None:
        self.ended = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> bool:
        """Until a message is waiting (True) or the queue has ended empty (False)."""
        while not self.items:
            if self.ended:
                return False
            waiter = self._waiter
            if waiter is None or waiter.done():  # (done: a cancelled wait's)
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter
        return True

    def oldest(self) -> WsMessage | None:
        return self.items[0] if self.items else None

    def take(self) -> WsMessage:
        return self.items.popleft()

    def take_all(self, limit: int) -> list[WsMessage]:
        """Up to ``limit`` waiting messages, oldest first."""
        items = self.items
        if len(items) <= limit:
            out = list(items)
            items.clear()
            return out
        return [items.popleft() for _ in range(limit)]


@dataclass
class Subscription:
    """One channel subscription; survives reconnects (its ``sid`` does not)."""

    channel: str
    params: dict[str, Any]
    sid: int | None = None
    last_seq: int | None = None
    active: bool = True
    resyncing: bool = False

    @property
    def market_tickers(self) -> list[str]:
        if "market_tickers" in self.params:
            return list(self.params["market_tickers"])
        if "market_ticker" in self.params:
            return [self.params["market_ticker"]]
        return []


@dataclass
class WsStats:
    connects: int = 0
    reconnects: int = 0
    messages: int = 0
    seq_gaps: int = 0
    duplicates: int = 0
    resyncs: int = 0
    resubscribes: int = 0
    heartbeat_timeouts: int = 0
    dropped_deltas: int = 0
    queue_full_waits: int = 0  # times the reader paused for a slow consumer
    max_queue_depth: int = 0
