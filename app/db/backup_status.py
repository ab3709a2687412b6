"""The last good backup, as `rec status` and the dashboard's Services page show it: its age,
size and file, STALE when it is older than REC_BACKUP_MAX_AGE_HOURS (a warning, not a health
failure: a fresh install says "none yet" until the first backup)."""

from __future__ import annotations

from dataclasses import dataclass

# the age by the database's clock, the one the runs were recorded by
LAST_GOOD_SQL = """
SELECT extract(epoch FROM now() - started_at)::float8, size_bytes, file, kind, host
  FROM backup_runs WHERE result = 'ok' ORDER BY started_at DESC LIMIT 1"""


@dataclass(frozen=True)
class LastBackup:
    stale: bool
    text: str

    def as_dict(self) -> dict:
        return {"stale": self.stale, "text": self.text}


def _size(n: int | None) -> str:
    if n is None:
        return "? bytes"
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def summarize(row: tuple | None, max_age_hours: float) -> LastBackup:
    """``row`` from LAST_GOOD_SQL (None: no good backup yet)."""
    if row is None:
        return LastBackup(False, "none yet")
    age_sec, size, file, kind, host = row
    hours = age_sec / 3600
    age = f"{age_sec / 60:.0f}min" if hours < 2 else f"{hours:.1f}h"
    text = f"last good {age} ago, {_size(size)}, {file} ({kind} on {host})"
    if hours > max_age_hours:
        return LastBackup(True, f"STALE (older than {max_age_hours:g}h): {text}")
    return LastBackup(False, text)


async def last_backup(conn, max_age_hours: float) -> LastBackup:
    """Read and summarize on an open (async psycopg) connection."""
    row = await (await conn.execute(LAST_GOOD_SQL)).fetchone()
    return summarize(row, max_age_hours)
