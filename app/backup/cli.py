"""``rec backup run|drill|runs``: a backup now (recorded like the timer's), the restore drill,
the recorded runs. The database host's scheduled backups are rec-backup.timer's
(ansible/roles/rec_backup; docs/bundle.md, "Backups")."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


def cmd_run(args: argparse.Namespace) -> int:
    from app import config
    from app.db import backup_job
    from app.db.backup import pg_env

    settings = config.load_or_exit()
    return backup_job.take_and_record(args.dir, "manual", pg_env(settings), args.keep_daily,
                                      args.keep_weekly, args.copy_to,
                                      settings.metrics_dir if settings.metrics_enabled else None)


def _dsn(args: argparse.Namespace) -> str:
    if args.dsn:
        return args.dsn
    from app import config
    from app.db.pool import conninfo

    return conninfo(config.load_or_exit(), "rec-backup")


def cmd_drill(args: argparse.Namespace) -> int:
    from app.backup.drill import DrillError, drill

    try:
        result = asyncio.run(drill(_dsn(args), args.file))
    except DrillError as exc:
        print(f"rec: restore drill FAILED: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the database: say which and why, no traceback
        print(f"rec: restore drill FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(result.report())
    return 0 if result.ok else 1


RUNS_SQL = ("SELECT started_at, kind, host, result, duration_sec, size_bytes, "
            "coalesce(file, ''), coalesce(copied_to, ''), coalesce(error, '') "
            "FROM backup_runs ORDER BY started_at DESC LIMIT %s")


def cmd_runs(args: argparse.Namespace) -> int:
    import psycopg

    with psycopg.connect(_dsn(args)) as conn:
        rows = conn.execute(RUNS_SQL, (args.n,)).fetchall()
    for started, kind, host, result, sec, size, file, copied, error in rows:
        print(f"{started:%Y-%m-%d %H:%M:%S %Z} {kind:<11} {host} {result:<6} {sec}s "
              f"{size or '-'} bytes {file} {copied} {error}".rstrip())
    if not rows:
        print("no backup recorded yet")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from app.db.backup_job import KEEP_DAILY, KEEP_WEEKLY

    backup = subparsers.add_parser("backup", help="backups: run one, the restore drill, runs")
    sub = backup.add_subparsers(dest="backup_command", required=True)
    dsn_help = ("libpq connection string of the live database, e.g. 'host=/var/run/postgresql "
                "dbname=rec' as rec-backup; default: rec's own connection")
    r = sub.add_parser("run", help="write a dump now, prune, record it in backup_runs")
    r.add_argument("--dir", type=Path, required=True)
    r.add_argument("--keep-daily", type=int, default=KEEP_DAILY)
    r.add_argument("--keep-weekly", type=int, default=KEEP_WEEKLY)
    r.add_argument("--copy-to", default="", help="[user@]host:path or a local directory")
    r.set_defaults(func=cmd_run)
    d = sub.add_parser("drill", help="restore the latest backup into a scratch database and "
                                     "check its books against the live ones")
    d.add_argument("--file", type=Path, help="this dump instead of the latest recorded one")
    d.add_argument("--dsn", help=dsn_help)
    d.set_defaults(func=cmd_drill)
    ls = sub.add_parser("runs", help="the recorded backup runs, newest first")
    ls.add_argument("-n", type=int, default=20)
    ls.add_argument("--dsn", help=dsn_help)
    ls.set_defaults(func=cmd_runs)
