"""Health checks rec-web reports: its own readiness and the bundle's aggregate.

- readiness (``/readyz``): what rec-web itself needs, the database.
- aggregate (``/api/health``): database, the exchange (``GET /exchange/status``, the same
  unauthenticated call on the simulator and on Kalshi), and the state of every rec unit the
  service registry expects, when running under systemd (``app.runtime.units``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from app.runtime import units

Check = Callable[[], Awaitable[None]]


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


async def run_checks(checks: dict[str, Check]) -> dict:
    """Run every check at once: ``{"status", "failed", "checks"}``."""
    names = list(checks)
    results = await asyncio.gather(*(run_check(checks[n]) for n in names))
    by_name = dict(zip(names, results, strict=True))
    failed = [n for n, r in by_name.items() if not r.ok]
    return {"status": "ok" if not failed else "fail", "failed": failed,
            "checks": {n: r.as_dict() for n, r in by_name.items()}}


async def aggregate(checks: dict[str, Check], expected_units: list[str]) -> dict:
    """The checks plus the state of every expected rec unit; any failure fails the whole.

    Not running under systemd (a laptop, a test) leaves the units unknown, with the reason;
    under systemd, a unit that is missing, not running, or a systemctl that cannot be asked
    is a failure.
    """
    body, report = await asyncio.gather(run_checks(checks), units.query(expected_units))
    if report.available:
        body["failed"] += [u.name for u in report.units if not u.ok]
        body["failed"] += report.missing(expected_units)
    elif units.under_systemd():
        body["failed"].append("units")
    body["status"] = "ok" if not body["failed"] else "fail"
    body["units"] = [u.as_dict() for u in report.units] if report.available else None
    body["units_note"] = report.reason
    return body
