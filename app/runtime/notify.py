"""sd_notify messages (READY, STATUS, WATCHDOG, STOPPING), the watchdog task, and the
listening sockets systemd passes (socket activation).

The watchdog pings from the event loop it guards: if the loop blocks, pings stop and
systemd (WatchdogSec=) kills and restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

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


LISTEN_FDS_START = 3  # sd_listen_fds(3): the first socket systemd passes


def listen_sockets(environ: dict[str, str] | os._Environ[str] | None = None) -> list[socket.socket]:
    """The sockets systemd passed to this process ($LISTEN_FDS from fd 3 on, when $LISTEN_PID
    is ours), [] when none. The variables are removed and the sockets made close-on-exec, so
    a child process never takes them for its own."""
    env = os.environ if environ is None else environ
    pid, count = env.pop("LISTEN_PID", ""), env.pop("LISTEN_FDS", "")
    env.pop("LISTEN_FDNAMES", None)
    if not (pid.isdigit() and int(pid) == os.getpid() and count.isdigit()):
        return []
    fds = range(LISTEN_FDS_START, LISTEN_FDS_START + int(count))
    for fd in fds:
        os.set_inheritable(fd, False)
    return [socket.socket(fileno=fd) for fd in fds]


async def watchdog(notifier: Notifier, interval: float) -> None:
    """Ping every ``interval`` seconds for as long as the loop runs freely."""
    log.debug("watchdog: pinging every %.2fs", interval)
    while True:
        notifier.ping()
        await asyncio.sleep(interval)
