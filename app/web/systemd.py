"""The Services page's view of systemd: each rec unit's state, since when, restarts, its
``STATUS=`` text and its last journal lines. Read-only: nothing here starts, stops or
restarts anything, and no shell is involved (``systemctl`` is executed with fixed arguments
and unit names from the service registry only).

The journal lines come from rec-journal's export file (``journal_export_path``): reading the
system journal takes a group rec-web's private user namespace hides, so rec-web reads what
rec-journal, which has no network, exports."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from app.runtime import units

STALE_EXPORT_SEC = 180  # rec-journal rewrites its export at least once a minute


def journal_tails(path: str | Path, expected: list[str],
                  now: datetime | None = None) -> dict[str, tuple[list[str], str | None]]:
    """Each expected unit's last journal lines from rec-journal's export, or why none."""
    try:
        body = json.loads(Path(path).read_text())
        written = datetime.fromisoformat(body["written_at"])
        tails = body["units"]
    except FileNotFoundError:
        why = f"no journal export at {path}: is rec-journal.service running?"
        return {u: ([], why) for u in expected}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        why = f"journal export {path} unreadable: {type(exc).__name__}: {exc}"
        return {u: ([], why) for u in expected}
    age = ((now or datetime.now(UTC)) - written).total_seconds()
    stale = (f"rec-journal's export is {age:.0f}s old (written {body['written_at']}): "
             "these lines may not be the last") if age > STALE_EXPORT_SEC else None
    out = {}
    for u in expected:
        lines = [str(x) for x in tails.get(u) or []]
        out[u] = (lines, stale if lines else stale or "no journal lines for this unit yet")
    return out


async def services(expected: list[str], descriptions: dict[str, str],
                   journal_path: str | Path) -> dict:
    report = await units.query(expected, timeout=3.0)
    if not report.available:
        return {"available": False, "reason": report.reason,
                "units": [{"unit": u, "description": descriptions.get(u, ""),
                           "active": "unknown", "sub": "unknown", "ok": None}
                          for u in expected]}
    now = time.monotonic()
    by_name = {u.name: u for u in report.units}
    tails = journal_tails(journal_path, expected)
    out = []
    for name in expected:
        journal_lines, journal_note = tails[name]
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
