"""Logging to stdout with syslog priority prefixes, so journald records each line's level.

systemd reads ``<N>`` at the start of a line written to a unit's stdout/stderr as the
priority (SyslogLevelPrefix=yes, the default); ``journalctl -u rec-x -p err`` then works.
Outside journald (a terminal) the same lines get a timestamp in front of the message.
"""

from __future__ import annotations

import logging
import os
import sys
import time

PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def priority(levelno: int) -> int:
    for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= level:
            return PRIORITY[level]
    return PRIORITY[logging.DEBUG]


class JournalFormatter(logging.Formatter):
    """``<prio>logger: message``; every line of a multi-line record carries the prefix."""

    def __init__(self, with_time: bool) -> None:
        super().__init__()
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        prefix = f"<{priority(record.levelno)}>"
        stamp = ""
        if self.with_time:
            stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + " "
        name = record.name.removeprefix("app.")
        return "\n".join(f"{prefix}{stamp}{name}: {line}" for line in text.splitlines() or [""])


def setup(level: str = "info", stream=None) -> None:
    """Route every logger (uvicorn's too) to one stdout handler."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JournalFormatter(with_time="JOURNAL_STREAM" not in os.environ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # per-request lines (health checks every few seconds) would drown the journal
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def emergency(message: str, ident: str = "rec") -> None:
    """One error line on stderr before logging is set up (config errors)."""
    sys.stderr.write(f"<3>{ident}: {message}\n")
    sys.stderr.flush()
