"""The stack of every thread when systemd's watchdog kills a unit (SIGABRT), as ONE journal
record at crit.

faulthandler writes its dump straight to a file descriptor from the signal handler; on the
unit's journal stream that became one record per line, at info. So under systemd the dump
goes to ``<state dir>/crash/<name>.txt`` instead, and the unit's ``ExecStopPost=`` hook
(``rec unit-failed``) sends it as one crit record with the unit's fields, then removes it.
Elsewhere (a terminal, a test) it goes to stderr as before.
"""

from __future__ import annotations

import faulthandler
import logging
import socket
import sys
from pathlib import Path

from app.runtime import logs

_open_dumps: list = []  # faulthandler keeps only the descriptor: keep the file object alive


def dump_path(state_dir: Path, name: str) -> Path:
    return state_dir / "crash" / f"{name}.txt"


def enable(state_dir: Path, name: str, under_journal: bool) -> None:
    if not under_journal:
        faulthandler.enable(all_threads=True)
        return
    path = dump_path(state_dir, name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        dump = path.open("w")
    except OSError:
        faulthandler.enable(all_threads=True)
        return
    _open_dumps.append(dump)
    faulthandler.enable(file=dump, all_threads=True)


def report(state_dir: Path, name: str, ident: str, path: str = logs.JOURNAL_SOCKET) -> bool:
    """Send a dump left by the last run as one crit record; True if there was one."""
    dump = dump_path(state_dir, name)
    try:
        text = dump.read_text(errors="replace").strip()
    except OSError:
        return False
    if not text:
        return False
    message = f"the stack of every thread when the process was aborted:\n{text}"
    record = logging.LogRecord("app.runtime.crash", logging.CRITICAL, __file__, 0, "%s",
                               (message,), None, func="report")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(path)
            sock.send(logs.entry(record, ident, name))
    except OSError:
        sys.stdout.write("".join(f"<2>{line}\n" for line in message.splitlines()))
    dump.unlink(missing_ok=True)
    return True
