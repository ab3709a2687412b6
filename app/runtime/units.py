"""What systemd says about rec's units: one query (``systemctl show``) shared by ``rec status``
and rec-web's health aggregate.

Outside systemd (a laptop, a test) the report says so instead of failing.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from pathlib import Path

PROPERTIES = ("Id", "Type", "LoadState", "ActiveState", "SubState", "NRestarts", "Result",
              "StatusText", "ExecMainStatus", "StateChangeTimestampMonotonic")


@dataclass
class Unit:
    name: str
    active: str
    sub: str
    restarts: int
    result: str
    type: str = "notify"
    load: str = "loaded"
    status: str = ""
    exit_status: str = ""
    changed_usec: int = 0  # CLOCK_MONOTONIC of the last state change

    def since_sec(self, now_monotonic: float) -> float | None:
        """Seconds in the current state (systemd's monotonic clock is ours too)."""
        if not self.changed_usec:
            return None
        return max(0.0, now_monotonic - self.changed_usec / 1_000_000)

    @property
    def ok(self) -> bool:
        if self.load != "loaded":
            return False
        if self.type == "oneshot":  # rec-migrate: finished cleanly (or is running now)
            return self.result == "success" and self.active in ("active", "inactive",
                                                                 "activating")
        return self.active == "active" and self.sub == "running"

    def as_dict(self) -> dict:
        return {"unit": self.name, "active": self.active, "sub": self.sub,
                "restarts": self.restarts, "result": self.result, "status": self.status,
                "ok": self.ok}


def parse(text: str) -> list[Unit]:
    """Parse ``systemctl show -p ...`` output: blank-line separated blocks."""
    units = []
    for block in text.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if not props.get("Id"):
            continue
        restarts = props.get("NRestarts", "0")
        units.append(Unit(props["Id"], props.get("ActiveState", "unknown"),
                          props.get("SubState", "unknown"),
                          int(restarts) if restarts.isdigit() else 0,
                          props.get("Result", "unknown"), props.get("Type", "") or "unknown",
                          props.get("LoadState", "loaded"), props.get("StatusText", ""),
                          props.get("ExecMainStatus", ""),
                          int(props.get("StateChangeTimestampMonotonic", "0") or 0)))
    return sorted(units, key=lambda u: u.name)


@dataclass
class UnitReport:
    available: bool
    units: list[Unit] = field(default_factory=list)
    reason: str | None = None

    def missing(self, expected: list[str]) -> list[str]:
        """Expected units systemd does not know (not installed, or not loaded)."""
        known = {u.name for u in self.units if u.load == "loaded"}
        return [name for name in expected if name not in known]


def under_systemd() -> bool:
    return Path("/run/systemd/system").is_dir()


async def _run(argv: list[str], timeout: float) -> tuple[int, str, str] | None:
    """Run a command; (exit code, stdout, stderr), or None if it did not finish in time."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def query(names: list[str], timeout: float = 5.0) -> UnitReport:
    """The state of each named unit (``systemctl show``), or why it cannot be known."""
    systemctl = shutil.which("systemctl")
    if not systemctl or not under_systemd():
        return UnitReport(False, reason="not running under systemd")
    done = await _run([systemctl, "show", "-p", ",".join(PROPERTIES), *names], timeout)
    if done is None:
        return UnitReport(False, reason=f"systemctl show did not answer within {timeout:.0f}s")
    code, out, err = done
    if code != 0:
        return UnitReport(False, reason=err.strip() or f"exit {code}")
    return UnitReport(True, parse(out))


async def last_error(name: str, timeout: float = 5.0) -> str:
    """The unit's own last error ('' when the journal cannot be read): what the service
    logged at err or worse (its records carry REC_SERVICE), else what any of the unit's
    processes did (the failure hook's line), else the unit's last line. Never systemd's
    "Triggering OnFailure= dependencies." when the unit said why it stopped."""
    journalctl = shutil.which("journalctl")
    if not journalctl:
        return ""
    service = name.removeprefix("rec-").removesuffix(".service")
    own = [f"_SYSTEMD_UNIT={name}", "-p", "err"]
    for match in ([*own, f"REC_SERVICE={service}"], own, ["-u", name]):
        done = await _run([journalctl, "--no-pager", "-o", "cat", "-n", "1", *match], timeout)
        if done and done[1].strip():
            return done[1].strip()
    return ""
