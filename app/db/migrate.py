"""Plain SQL migrations: ``migrations/NNN_name.sql`` applied in order, each once.

Each file runs in its own transaction together with its row in ``schema_migrations``;
a session-level advisory lock makes two concurrent runs take turns, so the second
finds everything applied and changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
LOCK_KEY = 0x7265635F6D6967  # "rec_mig"
# waiting for another migrator: well inside rec-migrate.service's TimeoutStartSec (120 s;
# tests/test_db.py keeps the two in step)
LOCK_WAIT_SEC = 90.0
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migration files are named NNN_name.sql")
        found.append(Migration(int(m.group(1)), path.stem, path))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise MigrationError("two migration files share a version number")
    return found


def migrate(conninfo: str, directory: Path = MIGRATIONS_DIR, progress=print,
            lock_timeout_sec: float = LOCK_WAIT_SEC,
            before: Callable[[list[Migration]], object] | None = None) -> list[str]:
    """Apply pending migrations; return the names applied (empty when up to date).

    ``before(pending)`` runs first when there are pending migrations and the database has
    been migrated before (it has a schema and maybe data), under the lock: the backup taken
    before migrating (app/db/backup.py); an exception from it applies nothing."""
    migrations = discover(directory)
    applied_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # bounded waits: for another migrator's advisory lock and for table locks
        conn.execute(f"SET lock_timeout = '{int(lock_timeout_sec * 1000)}ms'")
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version INTEGER PRIMARY KEY,
                       name TEXT NOT NULL,
                       checksum TEXT NOT NULL,
                       applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
            )
            done = {
                v: (n, c)
                for v, n, c in conn.execute(
                    "SELECT version, name, checksum FROM schema_migrations"
                ).fetchall()
            }
            pending = [m for m in migrations if m.version not in done]
            if pending and done and before is not None:
                before(pending)
            for mig in migrations:
                if mig.version in done:
                    name, checksum = done[mig.version]
                    if checksum != mig.checksum:
                        raise MigrationError(
                            f"{mig.path.name} changed after it was applied as {name}; "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                progress(f"applying {mig.path.name} ...")
                with conn.transaction():
                    conn.execute(mig.sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES (%s, %s, %s)",
                        (mig.version, mig.name, mig.checksum),
                    )
                applied_now.append(mig.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    if applied_now:
        progress(f"applied {len(applied_now)} migration(s); schema at version "
                 f"{migrations[-1].version}")
    else:
        progress(f"schema up to date at version {migrations[-1].version if migrations else 0}")
    return applied_now
