"""rec-journal: the rec units' last journal lines, for the dashboard's Services page.

Reading the system journal takes the ``systemd-journal`` group, which a private user
namespace hides; rec-web, which faces the network, keeps its namespace (and its exposure
score). This small service holds the group instead, has no network at all (its unit:
``PrivateNetwork=yes``, ``AF_UNIX`` only) and writes what it reads to one file,
``journal_export_path`` (JSON, replaced atomically at most once a second when something
changed), that rec-web reads.

Startup: ``journalctl --follow`` over every rec unit this host runs is started first (so nothing
logged meanwhile is missed), then each expected unit's last ``journal_lines`` lines are read
once; entries seen twice (same cursor) are kept once. READY after the first export is
written. journalctl ending is a failure (systemd restarts the service).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.config import ConfigError, Settings
from app.runtime.notify import Notifier
from app.runtime.service import Phase, Service
from app.services import expected_units


def format_entry(entry: dict[str, Any]) -> str:
    """One journal entry as ``journalctl -o short-iso`` shows it."""
    usec = int(entry.get("__REALTIME_TIMESTAMP") or 0)
    when = datetime.fromtimestamp(usec / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S%z")
    ident = entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM") or "?"
    pid = entry.get("_PID") or entry.get("SYSLOG_PID")
    message = entry.get("MESSAGE", "")
    if isinstance(message, list):  # a message with bytes journalctl cannot show as text
        message = bytes(message).decode(errors="replace")
    return f"{when} {ident}{f'[{pid}]' if pid else ''}: {message}"


class Tails:
    """The last ``lines`` entries of each unit, each entry once (by its journal cursor)."""

    def __init__(self, lines: int, units: list[str]) -> None:
        self.lines = lines
        self.wanted = set(units)
        self.units: dict[str, deque[tuple[int, str, str]]] = {}
        self.changed = False

    def add(self, entry: dict[str, Any]) -> None:
        # the unit's own processes (_SYSTEMD_UNIT), or systemd about the unit (UNIT=, from
        # PID 1: started, stopped, failed)
        unit = next((u for u in (entry.get("_SYSTEMD_UNIT"), entry.get("UNIT"))
                     if u in self.wanted), None)
        cursor = entry.get("__CURSOR")
        if not unit or not cursor:
            return
        tail = self.units.setdefault(unit, deque(maxlen=self.lines))
        if any(c == cursor for _, c, _ in tail):
            return
        usec = int(entry.get("__REALTIME_TIMESTAMP") or 0)
        if len(tail) == tail.maxlen and usec < tail[0][0]:
            return  # older than all we keep
        tail.append((usec, cursor, format_entry(entry)))
        if len(tail) > 1 and tail[-2][0] > usec:  # the initial read and the follow interleave
            ordered = sorted(tail)
            tail.clear()
            tail.extend(ordered)
        self.changed = True

    def export(self) -> dict[str, Any]:
        return {"written_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "lines": self.lines,
                "units": {u: [line for _, _, line in t] for u, t in sorted(self.units.items())}}


def write_atomically(path: Path, body: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(body))
    os.chmod(tmp, 0o640)  # rec-web reads it through the group (each unit its own user)
    os.replace(tmp, path)


class JournalService(Service):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.notifier = Notifier()
        self.units = expected_units(settings.account_mode.value)
        self.tails = Tails(settings.journal_lines, self.units)
        self.follower: asyncio.subprocess.Process | None = None
        self.exe = shutil.which("journalctl")
        self.path = Path(settings.journal_export_path)

    def journalctl(self, *args: str) -> list[str]:
        assert self.exe is not None
        where = [f"--directory={self.settings.journal_directory}"] \
            if self.settings.journal_directory else []
        return [self.exe, "--no-pager", "-q", "-o", "json", *where, *args]

    async def start(self, phase: Phase) -> None:
        if self.exe is None:
            raise ConfigError("journalctl is not installed: rec-journal reads the journal "
                              "with it (Debian package systemd)")
        if not self.path.parent.is_dir():
            raise ConfigError(f"journal_export_path: {self.path.parent} is not a directory "
                              "(the unit's RuntimeDirectory= makes it)")
        self.follower = await phase("follow the rec units' journal", asyncio.create_subprocess_exec(
            *self.journalctl("--follow", "--lines=0", *(f"--unit={u}" for u in self.units)),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=1 << 20))
        await phase("read each unit's last lines", self.read_last(self.units))
        await phase("write the first export", asyncio.to_thread(self.write))
        self.spawn(self.follow(), "follow")
        self.spawn(self.export_loop(), "export")

    async def read_last(self, units: list[str]) -> None:
        for unit in units:
            proc = await asyncio.create_subprocess_exec(
                *self.journalctl(f"--lines={self.settings.journal_lines}", f"--unit={unit}"),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await proc.communicate()
            if proc.returncode != 0 and not out:
                raise RuntimeError(f"journalctl -u {unit}: "
                                   f"{err.decode(errors='replace').strip() or proc.returncode}")
            for line in out.splitlines():
                with contextlib.suppress(ValueError):
                    self.tails.add(json.loads(line))

    async def follow(self) -> None:
        assert self.follower is not None and self.follower.stdout is not None
        seen = 0
        while line := await self.follower.stdout.readline():
            with contextlib.suppress(ValueError):
                self.tails.add(json.loads(line))
                seen += 1
        err = b""
        if self.follower.stderr is not None:
            err = await self.follower.stderr.read()
        code = await self.follower.wait()
        raise RuntimeError(f"journalctl --follow ended (status {code}) after {seen} entries: "
                           f"{err.decode(errors='replace').strip()[:300]}")

    def write(self) -> None:
        write_atomically(self.path, self.tails.export())
        self.tails.changed = False
        self.notifier.status(f"exporting the last {self.tails.lines} lines of "
                             f"{len(self.tails.units)} units to {self.path}")

    async def export_loop(self) -> None:
        period = self.settings.journal_export_interval_sec
        last = time.monotonic()
        while True:
            await asyncio.sleep(period)
            # also rewritten every minute unchanged: written_at tells rec-web it is alive
            if self.tails.changed or time.monotonic() - last >= 60:
                await asyncio.to_thread(self.write)
                last = time.monotonic()

    async def stop(self) -> None:
        await super().stop()
        if self.follower is not None and self.follower.returncode is None:
            self.follower.terminate()
            with contextlib.suppress(ProcessLookupError):
                await self.follower.wait()
