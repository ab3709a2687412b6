"""The base class of every rec service.

A service says what it does in three places and the runner does the rest:

- ``start(phase)``: its startup steps, each awaited through ``phase(name, awaitable)``
  so it gets a STATUS= line, a log line and a deadline. READY=1 follows the last one.
- ``run()``: its work after READY, until the runner cancels it on SIGTERM; returning or
  raising on its own is a failure (exit 1), which systemd answers with a restart.
- ``stop()``: release what ``start`` acquired; bounded by the stop timeout.

Background loops (a WS consumer, a retention pruner, a LISTEN loop) are started with
``self.spawn(coroutine, name)``: the default ``run()`` watches them all, and the first one to
end or fail ends the service (a loop that stops is a failure systemd must see); ``stop()``
cancels them. A subclass that overrides ``stop()`` calls ``super().stop()`` first.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any, Protocol

from app.config import Settings


async def close(*resources: Any) -> None:
    """Release what a service acquired, in the order given, skipping what it never got (None):
    ``aclose()`` where a resource has one (an HTTP client), else ``close()`` (a WebSocket
    client, a pool, a connection)."""
    for resource in resources:
        if resource is None:
            continue
        closing = getattr(resource, "aclose", None) or resource.close
        result = closing()
        if inspect.isawaitable(result):
            await result


class Phase(Protocol):
    async def __call__(
        self, name: str, work: Awaitable[Any], timeout: float | None = None
    ) -> Any: ...


class Service:
    # who it is: `rec run` gives it the registry's name and `public` (app.services.REGISTRY,
    # the one place) before __init__, which names the logger after it
    name: str = "service"
    public: bool = True  # its port (if any) is reached from other hosts

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.log = logging.getLogger(f"rec-{self.name}")
        self.tasks: list[asyncio.Task[Any]] = []

    async def start(self, phase: Phase) -> None:
        """Startup steps; override. Each step: ``await phase("what", coroutine)``."""

    def spawn(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``work`` in the background for the life of the service (see the module doc)."""
        task = asyncio.create_task(work, name=name)
        self.tasks.append(task)
        return task

    async def run(self) -> None:
        """The service's work after READY: its background tasks (plus whatever ``watched()``
        adds); with none, wait until told to stop."""
        watched = [*self.watched(), *self.tasks]
        if not watched:
            await asyncio.Event().wait()
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and (exc := task.exception()) is not None:
                raise exc
        ended = ", ".join(t.get_name() for t in done)
        raise RuntimeError(f"{ended} ended by itself")

    def watched(self) -> list[asyncio.Future[Any]]:
        """More awaitables whose end ends the service (an HTTP server's, say)."""
        return []

    async def stop(self) -> None:
        """Cancel the background tasks; a subclass releases its own resources after this."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

