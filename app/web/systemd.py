"""The Services page's view of systemd: each rec unit's state, since when, restarts, its
``STATUS=`` text and its last journal lines. Read-only: nothing here starts, stops or
restarts anything, and no shell is involved (``systemctl``/``journalctl`` are executed with
fixed arguments and unit names from the service registry only)."""

from __future__ import annotations

import asyncio
import shutil
import time

from app.runtime import units

JOURNAL_LINES = 8


async def journal(unit: str, lines: int = JOURNAL_LINES, timeout: float = 3.0) -> tuple[
        list[str], str | None]:
    """The unit's last journal lines, or why there are none."""
    exe = shutil.which("journalctl")
    if not exe:
        return [], "journalctl is not installed"
    proc = await asyncio.create_subprocess_exec(
        exe, "--no-pager", "-q", "-o", "short-iso", "-n", str(lines), "-u", unit,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return [], f"journalctl did not answer within {timeout:g}s"
    text = out.decode(errors="replace").strip()
    if not text:
        why = err.decode(errors="replace").strip().splitlines()
        return [], (why[0] if why else
                    "no lines readable (the journal of system units is readable by root and "
                    "the groups adm/systemd-journal only)")
    return text.splitlines()[-lines:], None


async def services(expected: list[str], descriptions: dict[str, str]) -> dict:
    report = await units.query(expected, timeout=3.0)
    if not report.available:
        return {"available": False, "reason": report.reason,
                "units": [{"unit": u, "description": descriptions.get(u, ""),
                           "active": "unknown", "sub": "unknown", "ok": None}
                          for u in expected]}
    now = time.monotonic()
    by_name = {u.name: u for u in report.units}
    lines = await asyncio.gather(*(journal(u) for u in expected))
    out = []
    for name, (journal_lines, journal_note) in zip(expected, lines, strict=True):
        u = by_name.get(name)
        if u is None:
            out.append({"unit": name, "description": descriptions.get(name, ""),
                        "active": "not-found", "sub": "", "ok": False, "journal": journal_lines,
                        "journal_note": journal_note})
            continue
        out.append({**u.as_dict(), "description": descriptions.get(name, ""),
                    "load": u.load, "type": u.type, "exit_status": u.exit_status,
                    "since_sec": u.since_sec(now), "journal": journal_lines,
                    "journal_note": journal_note})
    return {"available": True, "reason": None, "units": out}
