"""One backup run: a pg_dump custom-format file, an optional off-host copy, retention, and a
``backup_runs`` row saying what happened (started, duration, size, result, file, error).

Standard library and PostgreSQL's own tools (pg_dump, psql) only, because it runs in two
places: on the database host from the system Python (the rec_backup role copies this file to
/usr/local/lib/rec-backup/; a db host apart has no rec venv), as the user ``rec-backup``
connecting over the local socket with peer authentication (no credentials); and inside rec
(``rec backup run``, and ``rec db migrate``'s backup before it migrates a database that has
data), with the app's connection in the ``PG*`` environment (app/db/backup.py builds it).

    python3 backup_job.py --dir /var/backups/rec [--kind scheduled] [--keep-daily 7]
        [--keep-weekly 4] [--copy-to DEST] [--metrics-dir /var/lib/rec/metrics]

A good run also writes ``rec_backup.prom`` (the last success's time, size and duration, for
the node exporter's textfile collector) into ``--metrics-dir`` when that directory exists and
is writable and prometheus_client is importable (Debian: python3-prometheus-client); when it
cannot, one warning and the backup still counts.

Exit 0 when the dump was written and recorded, 1 otherwise (the error is in the journal and,
when the database answers, in ``backup_runs``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("scheduled", "pre-migrate", "manual")
METRICS_DIR = Path("/var/lib/rec/metrics")  # rec_app's; the node exporter reads it
KEEP_DAILY = 7
KEEP_WEEKLY = 4
_NAME = re.compile(r"^rec-(\d{8}T\d{6}Z)-([a-z-]+)\.dump$")
_STAMP = "%Y%m%dT%H%M%SZ"


class JobError(Exception):
    pass


@dataclass
class Run:
    kind: str
    started_at: dt.datetime
    host: str = field(default_factory=socket.gethostname)
    duration_sec: float = 0.0
    result: str = "failed"
    file: Path | None = None
    size_bytes: int | None = None
    copied_to: str | None = None
    error: str | None = None
    pruned: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    def summary(self) -> str:
        if not self.ok:
            return f"backup ({self.kind}) FAILED after {self.duration_sec:.1f}s: {self.error}"
        copied = f", copied to {self.copied_to}" if self.copied_to else ""
        pruned = f", pruned {len(self.pruned)} old" if self.pruned else ""
        return (f"backup ({self.kind}) {self.file}: {self.size_bytes} bytes in "
                f"{self.duration_sec:.1f}s{copied}{pruned}")


def say(message: str, priority: int = 6) -> None:
    """One line to the journal (with its priority prefix under systemd) or the terminal."""
    prefix = f"<{priority}>" if os.environ.get("JOURNAL_STREAM") else ""
    print(f"{prefix}{message}", file=sys.stderr if priority <= 4 else sys.stdout, flush=True)


def tool(name: str, package: str = "postgresql-client") -> str:
    path = shutil.which(name)
    if not path:
        raise JobError(f"{name} not found: install the {package} package")
    return path


# ---- files and retention -------------------------------------------------------------------

def dump_name(started: dt.datetime, kind: str) -> str:
    return f"rec-{started.astimezone(dt.UTC).strftime(_STAMP)}-{kind}.dump"


def dumps(directory: Path) -> list[tuple[dt.datetime, Path]]:
    """The dumps this job wrote in ``directory`` (by their names), newest first."""
    found = []
    for path in directory.iterdir():
        if m := _NAME.match(path.name):
            found.append((dt.datetime.strptime(m.group(1), _STAMP).replace(tzinfo=dt.UTC), path))
    return sorted(found, reverse=True)


def kept(stamps: list[dt.datetime], daily: int, weekly: int) -> set[dt.datetime]:
    """The newest backup of each of the ``daily`` most recent days that have one, and of each
    of the ``weekly`` most recent ISO weeks that have one."""
    newest_per_day: dict[dt.date, dt.datetime] = {}
    newest_per_week: dict[tuple[int, int], dt.datetime] = {}
    for stamp in sorted(stamps, reverse=True):
        newest_per_day.setdefault(stamp.date(), stamp)
        newest_per_week.setdefault(stamp.isocalendar()[:2], stamp)
    return set(list(newest_per_day.values())[:daily]) | set(
        list(newest_per_week.values())[:weekly])


def prune(directory: Path, daily: int, weekly: int) -> list[Path]:
    """Remove the dumps retention does not keep; return them."""
    found = dumps(directory)
    keep = kept([stamp for stamp, _ in found], daily, weekly)
    removed = [path for stamp, path in found if stamp not in keep]
    for path in removed:
        path.unlink()
    return removed


# ---- the steps -----------------------------------------------------------------------------

def dump(target: Path, env: dict[str, str] | None = None) -> None:
    """pg_dump of the database ``PGDATABASE`` names into ``target`` (written as .partial, then
    renamed, so a dump that failed half-way never looks like a backup)."""
    if target.exists():
        raise JobError(f"{target} exists; not overwritten")
    partial = target.with_name(target.name + ".partial")
    proc = subprocess.run([tool("pg_dump"), "--format=custom", "--no-owner", "--no-acl",
                           f"--file={partial}"], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise JobError(f"pg_dump failed: {proc.stderr.strip()}")
    partial.rename(target)


def copy(source: Path, dest: str) -> str:
    """Copy ``source`` off the host: ``[user@]host:path`` with rsync over ssh, or a local
    directory (another disk, a mount). Returns where it went."""
    if re.match(r"^[^/]+:", dest):
        proc = subprocess.run([tool("rsync", "rsync"), "--archive", "--partial", "--",
                               str(source), dest], capture_output=True, text=True)
        if proc.returncode != 0:
            raise JobError(f"copy to {dest} failed: {proc.stderr.strip()}")
        return f"{dest.rstrip('/')}/{source.name}"
    target = Path(dest) / source.name
    partial = target.with_name(target.name + ".partial")
    try:
        shutil.copyfile(source, partial)
        partial.rename(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise JobError(f"copy to {dest} failed: {exc}") from exc
    return str(target)


def take(directory: Path, kind: str, env: dict[str, str] | None = None,
         keep_daily: int = KEEP_DAILY, keep_weekly: int = KEEP_WEEKLY,
         copy_to: str | None = None) -> Run:
    """Dump, copy and prune; every failure is in the returned run (nothing raised)."""
    run = Run(kind, dt.datetime.now(dt.UTC))
    t0 = time.monotonic()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = directory / dump_name(run.started_at, kind)
        dump(target, env)
        run.file, run.size_bytes = target, target.stat().st_size
        if copy_to:
            run.copied_to = copy(target, copy_to)
        run.pruned = prune(directory, keep_daily, keep_weekly)
        run.result = "ok"
    except (JobError, OSError) as exc:
        run.error = str(exc)
    run.duration_sec = time.monotonic() - t0
    return run


RECORD_SQL = """INSERT INTO backup_runs (kind, host, started_at, duration_sec, result, file,
                         size_bytes, copied_to, error)
VALUES (:'kind', :'host', :'started_at', :'duration_sec', :'result', NULLIF(:'file', ''),
        NULLIF(:'size_bytes', '')::bigint, NULLIF(:'copied_to', ''), NULLIF(:'error', ''));
"""


def record(run: Run, env: dict[str, str] | None = None) -> None:
    """The run's row in backup_runs (psql variables: the values are quoted by psql)."""
    values = {"kind": run.kind, "host": run.host, "started_at": run.started_at.isoformat(),
              "duration_sec": f"{run.duration_sec:.3f}", "result": run.result,
              "file": str(run.file or ""), "size_bytes": str(run.size_bytes or ""),
              "copied_to": run.copied_to or "", "error": run.error or ""}
    argv = [tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    for name, value in values.items():
        argv += ["-v", f"{name}={value}"]
    proc = subprocess.run(argv, input=RECORD_SQL, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise JobError(f"run not recorded in backup_runs: {proc.stderr.strip()}")


def write_metrics(run: Run, directory: Path) -> bool:
    """``rec_backup.prom`` in ``directory`` for a good run; False (one warning) when it
    cannot be written. Never raises: metrics never fail a backup."""
    try:
        from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
    except ImportError:
        say("metrics: prometheus_client not installed (python3-prometheus-client): "
            "no rec_backup.prom", 4)
        return False
    registry = CollectorRegistry()
    for name, text, value in (
            ("rec_backup_last_success_timestamp_seconds", "when the last good backup ended",
             run.started_at.timestamp() + run.duration_sec),
            ("rec_backup_last_size_bytes", "size of the last good dump", run.size_bytes or 0),
            ("rec_backup_last_duration_seconds", "how long the last good backup took",
             run.duration_sec)):
        Gauge(name, text, ["service"], registry=registry).labels(service="backup").set(value)
    target = directory / "rec_backup.prom"
    try:
        write_to_textfile(str(target), registry)
        os.chmod(target, 0o644)  # the node exporter reads it (UMask=0077 gives 0600)
    except OSError as exc:
        say(f"metrics: cannot write {target}: {exc}", 4)
        return False
    return True


def take_and_record(directory: Path, kind: str, env: dict[str, str] | None = None,
                    keep_daily: int = KEEP_DAILY, keep_weekly: int = KEEP_WEEKLY,
                    copy_to: str | None = None, metrics_dir: Path | None = None) -> int:
    """One run, said in the journal and recorded: the exit status (0: dumped and recorded).
    A good run's figures also go to ``metrics_dir`` when it exists (:func:`write_metrics`)."""
    run = take(directory, kind, env, keep_daily, keep_weekly, copy_to)
    say(run.summary(), 6 if run.ok else 3)
    if run.ok and metrics_dir is not None and metrics_dir.is_dir():
        write_metrics(run, metrics_dir)
    try:
        record(run, env)
    except JobError as exc:
        say(str(exc), 3)
        return 1
    return 0 if run.ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rec-backup", description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", type=Path, required=True, help="where the dumps are kept")
    p.add_argument("--kind", choices=KINDS, default="scheduled")
    p.add_argument("--keep-daily", type=int, default=KEEP_DAILY,
                   help="the newest dump of each of the last N days that have one")
    p.add_argument("--keep-weekly", type=int, default=KEEP_WEEKLY,
                   help="the newest dump of each of the last N weeks that have one")
    p.add_argument("--copy-to", default="", help="[user@]host:path (rsync over ssh) or a "
                                                 "local directory; empty: no copy")
    p.add_argument("--metrics-dir", default=str(METRICS_DIR),
                   help="where rec_backup.prom goes when the directory exists; empty: nowhere")
    args = p.parse_args(argv)
    if args.keep_daily < 1 or args.keep_weekly < 0:
        p.error("--keep-daily must be at least 1 and --keep-weekly at least 0")
    return take_and_record(args.dir, args.kind, None, args.keep_daily, args.keep_weekly,
                           args.copy_to, Path(args.metrics_dir) if args.metrics_dir else None)


if __name__ == "__main__":
    sys.exit(main())
