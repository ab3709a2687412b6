"""The base class of every rec service.

A service says what it does in three places and the runner does the rest:

- ``start(phase)``: its startup steps, each awaited through ``phase(name, awaitable)``
  so it gets a STATUS= line, a log line and a deadline. READY=1 follows the last one.
- ``run()``: its work after READY, until the runner cancels it on SIGTERM; returning or
  raising on its own is a failure (exit 1), which systemd answers with a restart.
- ``stop()``: release what ``start`` acquired; bounded by the stop timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, ClassVar, Protocol

from app.config import Settings


class Phase(Protocol):
    async def __call__(
        self, name: str, work: Awaitable[Any], timeout: float | None = None
    ) -> Any: ...


class Service:
    name: ClassVar[str] = "service"
    public: bool = True  # its port (if any) is reached from other hosts; the registry says

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.log = logging.getLogger(f"rec-{self.name}")

    async def start(self, phase: Phase) -> None:
        """Startup steps; override. Each step: ``await phase("what", coroutine)``."""

    async def run(self) -> None:
        """The service's work after READY; by default wait until told to stop."""
        await asyncio.Event().wait()

    async def stop(self) -> None:
        """Release resources; override."""

