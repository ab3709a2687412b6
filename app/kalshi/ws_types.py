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
# a run of orderbook_delta messages (KalshiWS with ``delta_runs``): ``msg`` is their frames
DELTA_RUN = "orderbook_delta.run"
RUN_MAX = 512  # messages in one run at most: the consumer's unit of work between checks


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
    is waiting is still handed out, then :meth:`wait` returns with nothing to take.

    :meth:`put_in_run` adds a frame to the run of frames at the queue's tail (a
    :data:`DELTA_RUN` message whose ``msg`` lists them, stamped when its first came), or
    begins one: what the consumer has not taken yet and nothing else has followed. A run is
    one item in the deque, in stream order with every other message; :attr:`count` and
    ``len()`` count the messages in it."""

    def __init__(self) -> None:
        self.items: deque[WsMessage] = deque()
        self.count = 0  # messages waiting, each of a run's frames counted
        self.ended = False
        self._waiter: asyncio.Future[None] | None = None
        self._run: list[dict[str, Any]] | None = None  # the open run's frames

    def __len__(self) -> int:
        return self.count

    def put(self, m: WsMessage) -> None:
        self.items.append(m)
        self.count += 1
        self._run = None
        waiter = self._waiter
        if waiter is not None:  # the consumer waits: wake it once
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def put_in_run(self, frame: dict[str, Any]) -> None:
        run = self._run
        if run is not None and len(run) < RUN_MAX:
            run.append(frame)
            self.count += 1
            return
        self.put(WsMessage(DELTA_RUN, [frame], received_at=time.monotonic()))
        self._run = self.items[-1].msg

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
        m = self.items.popleft()
        self.count -= _size(m)
        self._run = None
        return m

    def take_all(self, limit: int) -> list[WsMessage]:
        """Up to ``limit`` waiting items (a run is one), oldest first."""
        items = self.items
        self._run = None
        if len(items) <= limit:
            out = list(items)
            items.clear()
            self.count = 0
            return out
        out = [items.popleft() for _ in range(limit)]
        self.count -= sum(map(_size, out))
        return out


def _size(m: WsMessage) -> int:
    """How many messages a queued item is (a run: its frames)."""
    return len(m.msg) if m.type == DELTA_RUN else 1


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
