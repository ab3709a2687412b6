"""sd_notify messages (READY, STATUS, WATCHDOG, STOPPING) and the watchdog task.

The watchdog pings from the event loop it guards: if the loop blocks, pings stop and
systemd (WatchdogSec=) kills and restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
import os

import sdnotify

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self) -> None:
        self._sd = sdnotify.SystemdNotifier()
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))

    def send(self, state: str) -> None:
        if self.enabled:
            self._sd.notify(state)

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def ready(self, status: str = "running") -> None:
        self.send(f"READY=1\nSTATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1\nSTATUS=stopping")

    def ping(self) -> None:
        self.send("WATCHDOG=1")


def watchdog_interval(environ: dict[str, str] | os._Environ[str] | None = None) -> float | None:
    """Half of $WATCHDOG_USEC in seconds, or None when systemd asked for no watchdog."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not a number", usec)
        return None
    return value / 2 / 1_000_000 if value > 0 else None


async def watchdog(notifier: Notifier, interval: float) -> None:
    """Ping every ``interval`` seconds for as long as the loop runs freely."""
    log.debug("watchdog: pinging every %.2fs", interval)
    while True:
        notifier.ping()
        await asyncio.sleep(interval)
