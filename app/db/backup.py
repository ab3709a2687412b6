"""Explicit backup and restore with PostgreSQL's own tools. Never run at boot."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from app.config import Settings


class BackupError(Exception):
    pass


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PGHOST=settings.db_host,
        PGPORT=str(settings.db_port),
        PGUSER=settings.db_user,
        PGDATABASE=settings.db_name,
        PGSSLMODE=settings.db_sslmode,
        PGCONNECT_TIMEOUT=str(max(1, int(settings.db_connect_timeout_sec))),
    )
    if settings.db_password:
        env["PGPASSWORD"] = settings.db_password.get_secret_value()
    return env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise BackupError(f"{name} not found: install the postgresql-client package")
    return path


def backup(settings: Settings, target: Path) -> Path:
    """Write a custom-format dump to ``target`` (refuses to overwrite)."""
    if target.exists():
        raise BackupError(f"{target} exists; choose a new file name")
    partial = target.with_name(target.name + ".partial")
    proc = subprocess.run(
        [_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={partial}"],
        env=_env(settings), capture_output=True, text=True,
    )
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed: {proc.stderr.strip()}")
    partial.rename(target)
    return target


def restore(settings: Settings, source: Path) -> None:
    """Replace the database's contents with the dump, in one transaction."""
    if not source.is_file():
        raise BackupError(f"{source}: no such backup file")
    proc = subprocess.run(
        [_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
         "--exit-on-error", f"--dbname={settings.db_name}", str(source)],
        env=_env(settings), capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise BackupError(f"pg_restore failed: {proc.stderr.strip()}")
