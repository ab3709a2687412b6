"""Logging to journald: one record per event, with fields.

Under systemd (``$JOURNAL_STREAM`` names our stdout or stderr) each log record is sent to
journald's native socket as ONE entry, tracebacks included, with fields: ``PRIORITY``,
``SYSLOG_IDENTIFIER`` (rec-<name>), ``REC_SERVICE``, ``LOGGER``, ``CODE_FILE``, ``CODE_LINE``,
``CODE_FUNC`` and, for errors with a traceback, ``EXCEPTION_TYPE`` and ``EXCEPTION``. So
``journalctl -u rec-web -p err`` and ``journalctl -u rec-web -o json`` both tell the story.

Elsewhere (a terminal, a test) records go to stdout as lines with syslog priority prefixes
(``<3>``...), which journald would also read (SyslogLevelPrefix=yes) if the socket is away.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import sys
import time
import traceback

JOURNAL_SOCKET = "/run/systemd/journal/socket"
MAX_ENTRY = 60_000  # bytes; journald takes larger ones only through a memfd

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


def _field(name: str, value: str) -> bytes:
    """One field of journald's native protocol; values with a newline are length-prefixed."""
    data = value.encode("utf-8", "replace")
    if b"\n" in data:
        return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return name.encode() + b"=" + data + b"\n"


def entry(record: logging.LogRecord, ident: str, service: str | None) -> bytes:
    """A log record as one native journal entry."""
    message = record.getMessage()
    fields = {
        "PRIORITY": str(priority(record.levelno)),
        "SYSLOG_IDENTIFIER": ident,
        "LOGGER": record.name,
        "CODE_FILE": record.pathname,
        "CODE_LINE": str(record.lineno),
        "CODE_FUNC": record.funcName or "",
    }
    if service:
        fields["REC_SERVICE"] = service
    if record.exc_info and record.exc_info[0] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        fields["EXCEPTION_TYPE"] = record.exc_info[0].__name__
        fields["EXCEPTION"] = text
        message = f"{message}\n{text}"
    name = record.name.removeprefix("app.")
    body = b"".join(_field(k, v) for k, v in fields.items())
    room = max(1024, MAX_ENTRY - len(body))
    msg = f"{name}: {message}".encode("utf-8", "replace")
    if len(msg) > room:
        msg = msg[: room - 40] + b"\n... (truncated)"
    return _field("MESSAGE", msg.decode("utf-8", "replace")) + body


class JournalHandler(logging.Handler):
    """Send each record to journald's native socket as one entry; on any socket error the
    record goes to ``fallback`` (stdout lines), so nothing is lost."""

    def __init__(self, ident: str, service: str | None, path: str = JOURNAL_SOCKET,
                 fallback: logging.Handler | None = None) -> None:
        super().__init__()
        self.ident, self.service = ident, service
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.connect(path)
        self.fallback = fallback

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sock.send(entry(record, self.ident, self.service))
        except OSError:
            if self.fallback is not None:
                self.fallback.emit(record)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        super().close()


def journal_stream_is_ours(environ=None) -> bool:
    """True when our stdout or stderr is connected to the journal ($JOURNAL_STREAM)."""
    environ = os.environ if environ is None else environ
    dev_ino = environ.get("JOURNAL_STREAM", "")
    for stream in (sys.stdout, sys.stderr):
        try:
            st = os.fstat(stream.fileno())
        except (OSError, ValueError, AttributeError):
            continue
        if dev_ino == f"{st.st_dev}:{st.st_ino}":
            return True
    return False


def setup(level: str = "info", stream=None, ident: str = "rec",
          service: str | None = None) -> None:
    """Route every logger (uvicorn's too) to one handler: the journal's native socket under
    systemd, else stdout lines with priority prefixes."""
    lines = logging.StreamHandler(stream or sys.stdout)
    lines.setFormatter(JournalFormatter(with_time="JOURNAL_STREAM" not in os.environ))
    handler: logging.Handler = lines
    if stream is None and journal_stream_is_ours() and os.path.exists(JOURNAL_SOCKET):
        try:
            handler = JournalHandler(ident, service, fallback=lines)
        except OSError:
            handler = lines
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


def emergency(message: str, ident: str = "rec", service: str | None = None,
              path: str = JOURNAL_SOCKET, environ=None) -> None:
    """One error record before logging is set up (config errors, exit 78): under systemd a
    native journal entry with the fields every record has (REC_SERVICE, CODE_*), naming the
    caller; elsewhere one line on stderr."""
    if journal_stream_is_ours(environ) and os.path.exists(path):
        caller = sys._getframe(1)
        record = logging.LogRecord("app.runtime", logging.ERROR, caller.f_code.co_filename,
                                   caller.f_lineno, "%s", (message,), None,
                                   func=caller.f_code.co_name)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(path)
                sock.send(entry(record, ident, service))
            return
        except OSError:
            pass
    sys.stderr.write(f"<3>{ident}: {message}\n")
    sys.stderr.flush()
