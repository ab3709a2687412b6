"""A test-owned NOTIFY_SOCKET: an AF_UNIX datagram socket that records what a service sends."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Message:
    at: float
    fields: dict[str, str]


@dataclass
class NotifySocket:
    path: Path
    sock: socket.socket
    messages: list[Message] = field(default_factory=list)
    # called in the reader thread for each message, before it is recorded
    on_message: Callable[[Message], None] | None = None

    @classmethod
    def open(cls) -> NotifySocket:
        directory = Path(tempfile.mkdtemp(prefix="rec-notify-"))
        path = directory / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        sock.settimeout(0.2)
        self = cls(path, sock)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(
                line.split("=", 1) for line in data.decode().splitlines() if "=" in line
            )
            message = Message(time.monotonic(), fields)
            if self.on_message is not None:
                self.on_message(message)
            with self._lock:
                self.messages.append(message)

    def snapshot(self) -> list[Message]:
        with self._lock:
            return list(self.messages)

    def with_key(self, key: str) -> list[Message]:
        return [m for m in self.snapshot() if key in m.fields]

    def statuses(self) -> list[str]:
        return [m.fields["STATUS"] for m in self.with_key("STATUS")]

    def wait_for(self, key: str, value: str | None = None, timeout: float = 15.0) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.snapshot():
                if key in m.fields and (value is None or m.fields[key] == value):
                    return m
            time.sleep(0.02)
        raise TimeoutError(f"no {key}{'=' + value if value else ''} within {timeout}s; "
                           f"got {[m.fields for m in self.snapshot()]}")

    def wait_until(self, condition, timeout: float = 15.0) -> list[Message]:
        """Wait until ``condition(messages)`` holds (a deadline, never a fixed sleep)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = self.snapshot()
            if condition(msgs):
                return msgs
            time.sleep(0.02)
        raise TimeoutError(f"condition not met within {timeout}s; "
                           f"got {[m.fields for m in self.snapshot()]}")

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=2)
        self.path.unlink(missing_ok=True)
        self.path.parent.rmdir()
