"""The services' side of ``rec backtest``'s lockstep (app/backtest/run.py, ``Clock``).

Two runs of a backtest give the same orders only if every service decides on the same
inputs at the same simulated moment. Under the lockstep, after each simulated second the
backtest waits until the bundle is quiet, then lets each deciding service run one cycle,
in a fixed order. Files in the directory of the clock file (app/runtime/clock.py) carry it,
each an 8-byte number as :func:`app.runtime.clock.write` writes them:

- ``lockstep``: present when the backtest runs one (the services look once, at start);
- ``turn-<service>`` (the backtest's): the number of cycles the service may have run;
- ``done-<service>`` (the service's): the number it has run (:func:`serve`);
- ``ws-<service>`` (the service's): the WebSocket frames its consumer has handled, written
  each time it has handled all it received (:func:`idle`), which the backtest compares
  with what the simulator sent on that connection.

Off (live, or a backtest without the lockstep) every function here is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from app.runtime import clock

MARK = "lockstep"
POLL_SEC = 0.001
_dir: Path | None = None
_name = ""
_handled = -1


def enable(clock_file: str | Path | None, service: str) -> None:
    """At start (the runner): on when the clock file's directory holds the mark."""
    global _dir, _name, _handled
    _dir = Path(clock_file).parent if clock_file and (
        Path(clock_file).parent / MARK).exists() else None
    _name, _handled = service, -1


def active() -> bool:
    return _dir is not None


def path(kind: str, service: str | None = None) -> Path:
    assert _dir is not None
    return _dir / f"{kind}-{service or _name}"


def idle(handled: int) -> None:
    """This service's WebSocket consumer has handled every one of ``handled`` frames (the
    reports may finish out of order: the file keeps the highest)."""
    global _handled
    if _dir is not None and handled > _handled:
        _handled = handled
        clock.write(path("ws"), handled)


def watch(ws, before: Callable[[], Awaitable[object]] | None = None) -> None:
    """Have a WebSocket client (KalshiWS) report :func:`idle`; ``before``: what must be done
    first for its frames to count as handled (the market feed's buffered rows written)."""
    if _dir is None:
        return

    async def on_idle(handled: int) -> None:
        if before is not None:
            await before()
        idle(handled)

    ws.on_idle = on_idle


async def serve(cycle: Callable[[], Awaitable[object]], log: logging.Logger) -> None:
    """Instead of a periodic loop: one ``cycle`` per turn the backtest gives, then done."""
    turn, done = path("turn"), path("done")
    ran = 0
    while True:
        granted = clock.read(turn)
        if granted <= ran:
            await asyncio.sleep(POLL_SEC)
            continue
        try:
            await cycle()
        except Exception:
            log.exception("cycle failed (lockstep turn %d)", granted)
        ran = granted
        clock.write(done, ran)
