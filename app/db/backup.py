"""Explicit backup and restore with PostgreSQL's own tools (never run at boot), the
environment they connect with, and the backup ``rec db migrate`` takes before migrating."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from app.config import Settings
from app.db import backup_job


class BackupError(Exception):
    pass


def pg_env(settings: Settings) -> dict[str, str]:
    """The environment PostgreSQL's tools (pg_dump, pg_restore, psql) connect with: the
    app's own database connection."""
    env = dict(os.environ)
    env.update(
        PGHOST=settings.db_host,
        PGPORT=str(settings.db_port),
        PGUSER=settings.db_user,
        PGDATABASE=settings.db_name,
        PGSSLMODE=settings.db_sslmode,
        PGCONNECT_TIMEOUT=str(max(1, int(settings.db_connect_timeout_sec))),
    )
    if settings.db_sslrootcert:
        env["PGSSLROOTCERT"] = str(settings.db_sslrootcert)
    if settings.db_password:
        env["PGPASSWORD"] = settings.db_password.get_secret_value()
    return env


def _tool(name: str) -> str:
    try:
        return backup_job.tool(name)
    except backup_job.JobError as exc:
        raise BackupError(str(exc)) from None


def backup(settings: Settings, target: Path) -> Path:
    """Write a custom-format dump to ``target`` (refuses to overwrite): the backup job's own
    dump (app/db/backup_job.py), with the app's connection."""
    try:
        backup_job.dump(target, pg_env(settings))
    except backup_job.JobError as exc:
        raise BackupError(str(exc)) from None
    return target


def restore(settings: Settings, source: Path) -> None:
    """Replace the database's contents with the dump, in one transaction."""
    if not source.is_file():
        raise BackupError(f"{source}: no such backup file")
    proc = subprocess.run(
        [_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
         "--exit-on-error", f"--dbname={settings.db_name}", str(source)],
        env=pg_env(settings), capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise BackupError(f"pg_restore failed: {proc.stderr.strip()}")


class BeforeMigrate:
    """``rec db migrate``'s backup of a database that has a schema, taken before the first
    pending migration (``migrate(before=...)``) into ``backup_before_migrate_dir`` and
    recorded in ``backup_runs`` after migrating (the table may be one of the migrations).
    A host without pg_dump (an app host apart from the db host, which has its own timer)
    migrates with a warning; a dump that fails stops the migration."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run: backup_job.Run | None = None

    def __call__(self, pending: list) -> None:
        if not shutil.which("pg_dump"):
            backup_job.say("no backup before migrating: pg_dump not found (install "
                           "postgresql-client); the db host's rec-backup.timer takes them", 4)
            return
        backup_job.say(f"{len(pending)} pending migration(s): backing up first")
        self.run = backup_job.take(self.settings.backup_before_migrate_dir, "pre-migrate",
                                   pg_env(self.settings))
        backup_job.say(self.run.summary(), 6 if self.run.ok else 3)
        if not self.run.ok:
            error = self.run.error
            self.record()
            raise BackupError(f"no migration without a backup: {error} (set "
                              "REC_BACKUP_BEFORE_MIGRATE=false to migrate without one)")

    def record(self) -> None:
        if self.run is None:
            return
        try:
            backup_job.record(self.run, pg_env(self.settings))
        except backup_job.JobError as exc:
            backup_job.say(str(exc), 4)
        self.run = None
