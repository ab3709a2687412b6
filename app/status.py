"""``rec status``: the rec units the registry expects as systemd sees them (a failed one with
how long, its exit status, its own last error and what to do), the database asked directly
(with the units' failures of the last day, from ``unit_failures``), the exchange asked
directly (so both are reported when rec-web is down), and rec-web's aggregate. The checks run
side by side: the command answers in well under a second on a healthy host.
"""

from __future__ import annotations

import asyncio
import time

from app import config
from app.kalshi.urls import resolve

FAILURES_SQL = """
SELECT unit, count(*), max(ts), (array_agg(result || ' ' || exit_code || '=' || exit_status
                                           ORDER BY ts DESC))[1]
  FROM unit_failures WHERE ts > now() - interval '24 hours'
 GROUP BY unit ORDER BY max(ts) DESC"""


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


def _row(ok: bool, what: str, detail: str) -> str:
    return f"{'ok ' if ok else 'BAD'} {what:<32} {detail}"


async def _failed_unit_rows(u, now: float) -> list[str]:
    from app.runtime import units

    code = f", exit status {u.exit_status}" if u.exit_status not in ("", "0") else ""
    if u.exit_status == str(config.EX_CONFIG):
        code += " (78/CONFIG: a configuration error)"
    rows = [f"      {u.active} for {_age(u.since_sec(now))}{code}"]
    if line := await units.last_error(u.name):
        rows.append(f"      last error: {line}")
    if u.active == "failed":
        rows.append(f"      after fixing it: systemctl reset-failed {u.name} && "
                    f"systemctl start {u.name}")
    return rows


async def unit_rows(expected: list[str]) -> tuple[bool, list[str]]:
    from app.runtime import units

    report = await units.query(expected)
    if not report.available:
        return True, [f"--- units: {report.reason}"]
    rows, healthy, now = [], True, time.monotonic()
    for u in report.units:
        healthy &= u.ok
        rows.append(_row(u.ok, u.name, f"{u.active}/{u.sub:<10} restarts={u.restarts} "
                                       f"result={u.result}"))
        if not u.ok:
            rows += await _failed_unit_rows(u, now)
    for name in report.missing(expected):
        healthy = False
        rows.append(f"BAD {name:<32} not installed")
    return healthy, rows


async def database_rows(settings: config.Settings) -> tuple[bool, list[str]]:
    """One connection: reachable, and the units' failures of the last 24 hours."""
    import psycopg

    from app.db.pool import conninfo, describe

    try:
        conn = await asyncio.wait_for(psycopg.AsyncConnection.connect(
            conninfo(settings, "rec-status"), connect_timeout=3), 5)
    except Exception as exc:  # reported, never raised: status shows every part
        return False, [_row(False, "database", f"{describe(settings)}: "
                                               f"{exc or type(exc).__name__}")]
    rows = [_row(True, "database", describe(settings))]
    try:
        async with conn:
            found = await (await conn.execute(FAILURES_SQL)).fetchall()
            rows.append(await backup_row(conn, settings))
    except psycopg.Error as exc:  # e.g. rec-migrate has not run yet
        return True, [*rows, f"      unit failures unknown: {type(exc).__name__}"]
    for unit, count, last, what in found:
        rows.append(f"      {unit} failed {count}x in the last 24h, last at "
                    f"{last:%Y-%m-%d %H:%M:%S %Z}: {what.rstrip('=')}")
    return True, rows


async def backup_row(conn, settings: config.Settings) -> str:
    """The last good backup: a warning when STALE, never a health failure (app.db.backup_status)."""
    from app.db.backup_status import last_backup

    last = await last_backup(conn, settings.backup_max_age_hours)
    return f"{'WRN' if last.stale else 'ok '} {'backup':<32} {last.text}"


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    """GET ``url`` with the standard library (httpx and its TLS context cost this one-shot
    command more than the request): (status code, body), an error status included."""
    from urllib.error import HTTPError
    from urllib.request import urlopen

    try:
        with urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def _unreachable(exc: Exception) -> str:
    """Why a GET failed, in one line: "connection refused", "timed out", ..."""
    from urllib.error import URLError

    reason = exc.reason if isinstance(exc, URLError) else exc
    if isinstance(reason, OSError) and reason.strerror:
        return f"cannot connect: {reason.strerror}"
    return f"{type(reason).__name__}: {reason}"


async def _http_row(what: str, url: str, judge, timeout: float = 5) -> tuple[bool, list[str]]:
    try:
        ok, detail = judge(url, *await asyncio.to_thread(_get, url, timeout))
    except ValueError as exc:  # a body that is not the JSON expected
        ok, detail = False, f"{url}: {type(exc).__name__}: {exc}"
    except OSError as exc:  # URLError, refused, timed out
        ok, detail = False, f"{url}: {_unreachable(exc)}"
    return ok, [_row(ok, what, detail)]


def _exchange(url: str, code: int, _body: bytes) -> tuple[bool, str]:
    return code == 200, f"{url} answered {code}"


def _aggregate(_url: str, _code: int, body: bytes) -> tuple[bool, str]:
    import json

    answer = json.loads(body)
    ok = answer.get("status") == "ok"
    return ok, "all checks ok" if ok else "failing: " + ", ".join(answer.get("failed", []))


async def mode_rows(settings: config.Settings) -> tuple[bool, list[str]]:
    """The account mode; in paper mode what is paper: no order reaches the exchange."""
    mode = settings.account_mode.value
    if mode != "paper":
        return True, [_row(True, "account mode", mode)]
    return True, [_row(True, "account mode", f"PAPER: market data from {settings.paper_source}, "
                                              "orders, fills and balance on rec-paper")]


async def rows(settings: config.Settings) -> tuple[bool, list[str]]:
    from app import services

    only = services.selected(settings.services)
    # where rec trades (paper mode: rec-paper); app.exchange_client would import httpx
    rest = resolve(settings.account_mode, base_url=settings.kalshi_base_url or None,
                   ws_url=settings.kalshi_ws_url or None, sim_host=settings.target_host,
                   sim_port=settings.exchange_sim_port).rest_base
    checks = [mode_rows(settings),
              unit_rows(services.expected_units(settings.account_mode.value, only=only)),
              database_rows(settings),
              _http_row("exchange", f"{rest}/exchange/status", _exchange)]
    if not only or "web" in only:  # REC_SERVICES without web: rec-web runs elsewhere
        web = f"http://{settings.target_host}:{settings.web_port}/api/health"
        checks.append(_http_row("rec-web /api/health", web, _aggregate))
    results = await asyncio.gather(*checks)
    return all(ok for ok, _ in results), [line for _, lines in results for line in lines]
