"""Fault injection for tests: off unless enabled, driven through the /_sim control API.

Faults: drop every WebSocket connection, skip a `seq` number, answer an HTTP status
(5xx or 429) to the next N requests, lose the answer to the next N requests (served, then
answered with a 5xx as a proxy would after a dropped upstream; any answer, refusals
included, unless restricted to successes), add latency, hang a path,
hold the answers of a path (served, answered only on release), halt trading.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Faults:
    enabled: bool = False
    latency_ms: int = 0
    error_status: int = 0
    error_count: int = 0
    error_prefix: str = ""
    lost_status: int = 0
    lost_count: int = 0
    lost_prefix: str = ""
    lost_only_success: bool = False  # lose only 2xx answers (the old, narrower fault)
    hangs: dict[str, asyncio.Event] = field(default_factory=dict)
    holds: dict[str, asyncio.Event] = field(default_factory=dict)  # served, answer held

    def state(self) -> dict:
        return {
            "enabled": self.enabled,
            "latency_ms": self.latency_ms,
            "error_status": self.error_status,
            "error_count": self.error_count,
            "error_prefix": self.error_prefix,
            "lost_status": self.lost_status,
            "lost_count": self.lost_count,
            "lost_prefix": self.lost_prefix,
            "lost_only_success": self.lost_only_success,
            "hangs": sorted(self.hangs),
            "holds": sorted(self.holds),
        }

    def take_error(self, path: str) -> int:
        """The status to answer instead of serving `path`, or 0."""
        if not self.enabled or self.error_count <= 0:
            return 0
        if self.error_prefix and not path.startswith(self.error_prefix):
            return 0
        self.error_count -= 1
        return self.error_status

    def take_lost(self, path: str, status: int) -> int:
        """After serving `path` with `status`: the status that replaces its answer, or 0.
        Any answer is lost (a retry's 409 or 404 too) unless lost_only_success is set."""
        if not self.enabled or self.lost_count <= 0:
            return 0
        if self.lost_prefix and not path.startswith(self.lost_prefix):
            return 0
        if self.lost_only_success and status >= 400:
            return 0
        self.lost_count -= 1
        return self.lost_status

    def hang_for(self, path: str) -> asyncio.Event | None:
        if not self.enabled:
            return None
        for prefix, ev in self.hangs.items():
            if path.startswith(prefix):
                return ev
        return None

    async def before_request(self, path: str) -> int:
        """Apply latency and hangs; return an injected status or 0."""
        if not self.enabled:
            return 0
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        ev = self.hang_for(path)
        if ev is not None:
            await ev.wait()
        return self.take_error(path)

    def hold_for(self, path: str) -> asyncio.Event | None:
        """After serving `path`: an event to wait for before answering (the work is done, the
        answer is held: a client killed meanwhile never learns the outcome)."""
        if not self.enabled:
            return None
        for prefix, ev in self.holds.items():
            if path.startswith(prefix):
                return ev
        return None

    def hold(self, prefix: str) -> None:
        self.holds.setdefault(prefix, asyncio.Event())

    def hang(self, prefix: str) -> None:
        self.hangs.setdefault(prefix, asyncio.Event())

    def release(self, prefix: str | None = None) -> None:
        for p in [p for p in self.hangs if prefix is None or p == prefix]:
            self.hangs.pop(p).set()
        for p in [p for p in self.holds if prefix is None or p == prefix]:
            self.holds.pop(p).set()

    def clear(self) -> None:
        self.latency_ms = 0
        self.error_status = 0
        self.error_count = 0
        self.error_prefix = ""
        self.lost_status = 0
        self.lost_count = 0
        self.lost_prefix = ""
        self.lost_only_success = False
        self.release()
