"""Health checks rec-web reports: its own readiness and the bundle's aggregate.

- readiness (``/readyz``): what rec-web itself needs, the database.
- aggregate (``/api/health``): database, the exchange (``GET /exchange/status``, the same
  unauthenticated call on the simulator and on Kalshi), and every ``rec-*`` systemd unit's
  state when running under systemd.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

Check = Callable[[], Awaitable[None]]
UNIT_PROPERTIES = ("Id", "ActiveState", "SubState", "NRestarts", "Result")


@dataclass
class CheckResult:
    ok: bool
    error: str | None = None

    def as_dict(self) -> dict:
        return {"ok": self.ok} if self.ok else {"ok": False, "error": self.error}


async def run_check(check: Check, timeout: float = 5.0) -> CheckResult:
    try:
        await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        return CheckResult(False, f"no answer within {timeout:.0f}s")
    except Exception as exc:
        return CheckResult(False, f"{type(exc).__name__}: {exc}".strip().rstrip(":"))
    return CheckResult(True)


def exchange_check(rest_base: str, client: httpx.AsyncClient) -> Check:
    async def check() -> None:
        r = await client.get(f"{rest_base}/exchange/status")
        if r.status_code != 200:
            raise RuntimeError(f"GET /exchange/status answered {r.status_code}")

    return check


@dataclass
class Unit:
    name: str
    active: str
    sub: str
    restarts: int
    result: str

    @property
    def ok(self) -> bool:
        # a oneshot (rec-migrate) that finished cleanly is inactive/dead with result success
        return self.active == "active" or (self.name == "rec-migrate.service"
                                           and self.result == "success")

    def as_dict(self) -> dict:
        return {"unit": self.name, "active": self.active, "sub": self.sub,
                "restarts": self.restarts, "result": self.result, "ok": self.ok}


def parse_units(text: str) -> list[Unit]:
    """Parse ``systemctl show -p ... 'rec-*'`` output: blank-line separated blocks."""
    units = []
    for block in text.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if not props.get("Id"):
            continue
        restarts = props.get("NRestarts", "0")
        units.append(Unit(props["Id"], props.get("ActiveState", "unknown"),
                          props.get("SubState", "unknown"),
                          int(restarts) if restarts.isdigit() else 0,
                          props.get("Result", "unknown")))
    return sorted(units, key=lambda u: u.name)


@dataclass
class UnitReport:
    available: bool
    units: list[Unit] = field(default_factory=list)
    reason: str | None = None


def under_systemd() -> bool:
    return Path("/run/systemd/system").is_dir()


async def unit_states(timeout: float = 5.0) -> UnitReport:
    systemctl = shutil.which("systemctl")
    if not systemctl or not under_systemd():
        return UnitReport(False, reason="not running under systemd")
    proc = await asyncio.create_subprocess_exec(
        systemctl, "show", "--all", "-p", ",".join(UNIT_PROPERTIES), "rec-*",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return UnitReport(False, reason="systemctl show did not answer")
    if proc.returncode != 0:
        return UnitReport(False, reason=err.decode().strip() or f"exit {proc.returncode}")
    return UnitReport(True, parse_units(out.decode()))


async def run_checks(checks: dict[str, Check]) -> dict:
    """Run every check at once: ``{"status", "failed", "checks"}``."""
    names = list(checks)
    results = await asyncio.gather(*(run_check(checks[n]) for n in names))
    by_name = dict(zip(names, results, strict=True))
    failed = [n for n, r in by_name.items() if not r.ok]
    return {"status": "ok" if not failed else "fail", "failed": failed,
            "checks": {n: r.as_dict() for n, r in by_name.items()}}


async def aggregate(checks: dict[str, Check]) -> dict:
    """The checks plus every rec-* unit's state; any failure fails the whole."""
    body, units = await asyncio.gather(run_checks(checks), unit_states())
    body["failed"] += [u.name for u in units.units if not u.ok]
    body["status"] = "ok" if not body["failed"] else "fail"
    body["units"] = [u.as_dict() for u in units.units] if units.available else None
    body["units_note"] = units.reason
    return body
