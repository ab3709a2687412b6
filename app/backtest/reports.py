"""Where backtest reports live and how rec-web finds them (docs/replay.md, "--report").

``rec backtest FILE --report`` (no DIR) writes the page into ``<state_dir>/backtests/
<timestamp>/``; the dashboard lists that directory (newest first) and serves each report's
page and charts read-only. A report is a directory holding ``report.json`` (this module's
manifest: title, time, the printed summary, the charts) beside the page and its PNGs
(app/backtest/page.py). Nothing here imports matplotlib: rec-web reads reports, it never
draws them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.config import Settings

MANIFEST = "report.json"
PAGE = "index.html"
# a report's name and a file in it: one path segment of these characters, never "." or ".."
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def home(settings: Settings) -> Path:
    return settings.state_dir / "backtests"


def new_dir(root: Path, now: datetime | None = None) -> Path:
    """A directory for a new report: ``root/<UTC time to the second>``, ``-2``, ``-3``... when
    one of that second exists already (created, so two runs never share one)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H%M%SZ")
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        out = root / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            out.mkdir()
        except FileExistsError:
            continue
        return out
    raise FileExistsError(f"{root}: no free report directory for {stamp}")


def manifest(title: str, summary: str, charts: list[str], notes: tuple[str, ...] = (),
             now: datetime | None = None) -> dict[str, Any]:
    return {"title": title, "written_at": (now or datetime.now(UTC)).isoformat(
        timespec="seconds"), "summary": summary, "charts": charts, "notes": list(notes)}


@dataclass(frozen=True)
class Listed:
    name: str
    title: str
    written_at: str
    headline: str  # the summary's first line: trades, P&L after fees, win rate, drawdown


def _manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def listing(root: Path) -> list[Listed]:
    """The reports under ``root``, newest first (a directory without a readable manifest is
    not a report)."""
    try:
        folders = [p for p in root.iterdir() if NAME.match(p.name) and p.is_dir()]
    except OSError:
        return []
    found = []
    for folder in folders:
        m = _manifest(folder)
        if m is not None:
            found.append(Listed(folder.name, str(m.get("title", "")),
                                str(m.get("written_at", "")),
                                str(m.get("summary", "")).split("\n", 1)[0]))
    return sorted(found, key=lambda r: (r.written_at, r.name), reverse=True)


def report(root: Path, name: str) -> dict[str, Any] | None:
    """One report's manifest, or None (no such report, or a name that is no report's)."""
    if not NAME.match(name):
        return None
    return _manifest(root / name)


def asset(root: Path, name: str, file: str) -> Path | None:
    """A file of a report that may be served (its page, or a chart its manifest names), or
    None. Names are single path segments checked against :data:`NAME`, and the resolved
    path must stay under ``root``: no way out of the reports' directory (symbolic links
    included)."""
    m = report(root, name)
    if m is None or not NAME.match(file) or (file != PAGE and file not in m.get("charts", ())):
        return None
    path = (root / name / file).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        return None
    return path
