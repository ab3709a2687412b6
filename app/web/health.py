"""Health checks rec-web reports: its own readiness and the bundle's aggregate.

- readiness (``/readyz``): the database and the freshness of what the pages show: market
  feed, account sync, settlement index, strike tables (:mod:`app.services.web` wires them).
- aggregate (``/api/health``): those, the exchange (``GET /exchange/status``, the same
  unauthenticated call on the simulator and on Kalshi), and the state of every rec unit the
  service registry expects, when running under systemd (``app.runtime.units``).

The checks run in the background (:class:`HealthMonitor`), every ``period`` seconds, each
bounded by ``timeout``; the endpoints serve the last results with their age and answer at
once even while a dependency hangs. Results older than ``stale_after`` fail (the monitor
itself stuck). Each check going bad, and coming back, is one log line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from app.runtime import units

Check = Callable[[], Awaitable[str | None]]  # raises when failing; may return a note
log = logging.getLogger(__name__)


@dataclass
class CheckResult:
    ok: bool
    error: str | None = None
    note: str | None = None  # a check not run because the one it depends on failed

    def as_dict(self) -> dict:
        if not self.ok:
            return {"ok": False, "error": self.error}
        return {"ok": True, "note": self.note} if self.note else {"ok": True}


def _forget(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" noise


async def run_check(check: Check, timeout: float = 5.0) -> CheckResult:
    """Run one check for at most ``timeout`` seconds. A check that does not answer is
    cancelled and left to finish on its own: cancelling a query on a hung server can itself
    hang, and the health answer must not wait for that."""
    task = asyncio.ensure_future(check())
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        task.add_done_callback(_forget)
        return CheckResult(False, f"no answer within {timeout:g}s")
    if exc := task.exception():
        return CheckResult(False, f"{type(exc).__name__}: {exc}".strip().rstrip(":"))
    note = task.result()
    return CheckResult(True, note=note if isinstance(note, str) else None)


class ExchangeState:
    """What the last ``GET /exchange/status`` said (the exchange check keeps it)."""

    trading_active: bool | None = None
    resume: str | None = None

    def paused(self) -> str | None:
        """Why no market data is expected now, or None."""
        if self.trading_active is False:
            return "exchange paused trading" + (f" until {self.resume}" if self.resume else "")
        return None


def exchange_check(rest_base: str, client: httpx.AsyncClient,
                   state: ExchangeState | None = None) -> Check:
    async def check() -> str | None:
        r = await client.get(f"{rest_base}/exchange/status")
        if r.status_code != 200:
            raise RuntimeError(f"GET /exchange/status answered {r.status_code}")
        if state is not None:
            try:
                body = r.json()
            except ValueError:
                body = {}
            active = body.get("trading_active") if isinstance(body, dict) else None
            state.trading_active = active if isinstance(active, bool) else None
            state.resume = body.get("exchange_estimated_resume_time") if isinstance(
                body, dict) else None
            return state.paused()
        return None

    return check


class HealthMonitor:
    """Runs every check (and asks systemd about the expected units) in the background."""

    def __init__(self, checks: dict[str, Check], expected_units: list[str],
                 period: float = 2.0, timeout: float = 2.0, stale_after: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 depends: dict[str, str] | None = None) -> None:
        self.checks = checks
        self.depends = depends or {}  # check -> the check it needs (run after it, if ok)
        self.expected_units = expected_units
        self.period, self.timeout = period, timeout
        self.stale_after = stale_after if stale_after is not None else 3 * (period + timeout)
        self.clock = clock
        self.results: dict[str, CheckResult] = {}
        self.report = units.UnitReport(False, reason="not checked yet")
        self.checked_at: float | None = None
        self._bad_since: dict[str, float] = {}
        self._task: asyncio.Task | None = None
        self.on_change: Callable[[], None] | None = None  # the results or units changed
        self._signature: object = None

    async def _round(self) -> dict[str, CheckResult]:
        """Independent checks at once, then those that depend on one, if it passed (else
        they are not run: the failing check is the one to name)."""
        first = [n for n in self.checks if n not in self.depends]
        done = dict(zip(first, await asyncio.gather(
            *(run_check(self.checks[n], self.timeout) for n in first)), strict=True))
        later = [n for n in self.checks if n in self.depends]
        runnable = [n for n in later if done.get(self.depends[n], CheckResult(False)).ok]
        done.update(zip(runnable, await asyncio.gather(
            *(run_check(self.checks[n], self.timeout) for n in runnable)), strict=True))
        for n in later:
            if n not in done:
                done[n] = CheckResult(True, note=f"not checked: {self.depends[n]} failing")
        return {n: done[n] for n in self.checks}

    async def refresh(self) -> None:
        done, report = await asyncio.gather(
            self._round(), units.query(self.expected_units, self.timeout))
        self.report = report
        self.checked_at = self.clock()
        for name, result in done.items():
            self._log_change(name, result)
            self.results[name] = result
        signature = (tuple((n, r.ok, r.error, r.note) for n, r in sorted(self.results.items())),
                     report.available, report.reason,
                     tuple((u.name, u.active, u.sub, u.restarts, u.status, u.changed_usec)
                           for u in report.units))
        if signature != self._signature:
            self._signature = signature
            if self.on_change is not None:
                self.on_change()

    def _log_change(self, name: str, result: CheckResult) -> None:
        now = self.clock()
        if not result.ok and name not in self._bad_since:
            self._bad_since[name] = now
            log.warning("health: %s is failing: %s", name, result.error)
        elif result.ok and name in self._bad_since:
            down = now - self._bad_since.pop(name)
            log.info("health: %s recovered after %.1fs", name, down)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.refresh()
            except Exception as exc:  # never let the monitor die silently
                log.error("health monitor: %s: %s", type(exc).__name__, exc)

    async def start(self) -> None:
        """First round now (so the endpoints have results from the start), then in the
        background."""
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def age(self) -> float | None:
        return None if self.checked_at is None else self.clock() - self.checked_at

    def snapshot(self, names: list[str] | None = None, with_units: bool = False) -> dict:
        """The last results: ``{"status", "failed", "checks", "age_sec"[, "units"...]}``."""
        names = list(self.checks) if names is None else names
        failed = [n for n in names if not self.results.get(n, CheckResult(False)).ok]
        checks = {n: self.results.get(n, CheckResult(False, "not checked yet")).as_dict()
                  for n in names}
        age = self.age()
        if age is None or age > self.stale_after:
            failed.append("health")
            checks["health"] = {"ok": False, "error": "no check has run yet" if age is None
                                else f"the last check ran {age:.0f}s ago"}
        body = {"status": "ok", "failed": failed, "checks": checks,
                "age_sec": None if age is None else round(age, 3)}
        if with_units:
            report = self.report
            if report.available:
                body["failed"] += [u.name for u in report.units if not u.ok]
                body["failed"] += report.missing(self.expected_units)
            elif units.under_systemd():
                body["failed"].append("units")  # systemd is there but could not be asked
            body["units"] = [u.as_dict() for u in report.units] if report.available else None
            body["units_note"] = report.reason
        body["status"] = "ok" if not body["failed"] else "fail"
        return body
