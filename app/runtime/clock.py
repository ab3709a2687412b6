"""The time rec's decisions are made at: the wall clock, or a replay's.

Live, :func:`now_ms` is the wall clock. Under ``rec backtest`` every service it starts has
``clock_file`` set (:func:`follow`, from the runner): a file whose first 8 bytes are the
simulated time in ms (little-endian; the next 8 its complement, so a read that overlaps a
write is seen and read again), which the backtest's clock rewrites as the replay
advances (:func:`write`). Cooldowns, intent expiry, time in trade, time to close, the
spike detector and retry waits then count simulated seconds, as they would live; the
scratch database's ``now()`` follows the same clock (app/backtest/dbclock.py). Durations
that are about the process itself (startup phases, watchdog, metrics, timeouts on the
network) stay on the wall clock.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path

MASK = (1 << 64) - 1
POLL_SEC = 0.005  # how often sleep() looks at a followed clock (wall seconds)
_fd: int | None = None


def follow(path: str | Path | None) -> None:
    """Take the time from ``path`` from now on (None or "": the wall clock again)."""
    global _fd
    if _fd is not None:
        os.close(_fd)
        _fd = None
    if path:
        _fd = os.open(path, os.O_RDONLY)


def now_ms() -> int:
    if _fd is None:
        # time.time looked up at each call: benchmarks/record_fixture.py shims it
        return int(time.time() * 1000)
    return _pread(_fd)


def _pread(fd: int) -> int:
    while True:
        raw = os.pread(fd, 16, 0)
        value, check = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")
        if value ^ check == MASK:
            return value


def read(path: str | Path, missing: int = 0) -> int:
    """The number a file written by :func:`write` holds (``missing`` if there is none)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return missing
    try:
        return _pread(fd)
    finally:
        os.close(fd)


def now() -> datetime:
    return datetime.fromtimestamp(now_ms() / 1000, UTC)


def monotonic() -> float:
    """Seconds for measuring waits: ``time.monotonic()`` live, the replay's time under one."""
    return time.monotonic() if _fd is None else now_ms() / 1000


async def sleep(seconds: float) -> None:
    """``asyncio.sleep`` live; under a replay, until its clock has moved ``seconds`` on (a
    cadence that another service judges in SQL time, such as a heartbeat row's age)."""
    if _fd is None:
        await asyncio.sleep(seconds)
        return
    until = now_ms() + seconds * 1000
    while now_ms() < until:  # noqa: ASYNC110 (another process writes the file)
        await asyncio.sleep(POLL_SEC)


def write(path: str | Path, ms: int) -> None:
    """Set the number (the time, in a clock file) a file says, in place: see :func:`now_ms`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, int(ms).to_bytes(8, "little") + (int(ms) ^ MASK).to_bytes(8, "little"), 0)
    finally:
        os.close(fd)
