"""Expand, then contract (docs/bundle.md, "Releases"): every release's code runs on the schema
of the release after it, so a rollback after a migration works. Migrations are forward-only
and additive; what removes or reshapes (a contract step) is listed below, by file.

Proved for the newest migration: a real PostgreSQL (the tests' server) is migrated to head by
this code, then the code of the commit before that migration was added (``git archive``) runs
against it, as a host rolled back would: its services' startup phases, the market feed and the
price feed storing from its simulator, and its `rec ledger check`. The clone needs its history
(CI clones fully); a shallow one fails with a clear message."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import psycopg
import pytest

from app.db.migrate import discover
from testkit.notify import NotifySocket
from tests.conftest import register_sim_key

REPO = Path(__file__).resolve().parent.parent

# Contract steps: (migration file, what it removes), each made after no release still used it.
CONTRACT = {
    "009_feed_log.sql":
        "DROP TABLE feed_ticks, feed_book_changes, feed_book_snapshots, feed_trades",
}
# what breaks the release before (its code writes or reads what went, or not what came)
NOT_ADDITIVE = re.compile(
    r"\bDROP\s+(?:TABLE|COLUMN|VIEW|TYPE|SCHEMA|FUNCTION|INDEX|CONSTRAINT|TRIGGER)\b"
    r"|\bRENAME\b|\bALTER\s+COLUMN\s+\w+\s+(?:SET\s+DATA\s+)?TYPE\b|\bSET\s+NOT\s+NULL\b"
    r"|\bADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?\w+\s+[^,;]*?\bNOT\s+NULL\b(?![^,;]*\bDEFAULT\b)",
    re.I)
# the old code's services: data in and trading, each to READY
OLD_SERVICES = ("market-feed", "price-feed", "account-sync", "trade-executor", "trade-manager",
                "coordinator")


def statements(sql: str) -> list[str]:
    """The migration's statements without comments, whitespace collapsed."""
    sql = re.sub(r"--[^\n]*", "", sql)
    return [" ".join(s.split()) for s in sql.split(";") if s.strip()]


def test_every_migration_is_additive_outside_the_contract_list():
    found = {}
    for mig in discover():
        bad = [s for s in statements(mig.sql) if NOT_ADDITIVE.search(s)]
        if bad:
            found[mig.path.name] = bad
    listed = {name: [s for s in bad if not s.startswith(CONTRACT.get(name, "\0"))]
              for name, bad in found.items()}
    assert {n: b for n, b in listed.items() if b} == {}, (
        "not additive: the release before cannot run on it (expand first, contract in a later "
        "release, listed in CONTRACT)")
    assert set(CONTRACT) <= set(found), "a CONTRACT entry names no such step"


def test_the_check_finds_what_is_not_additive():
    for sql in ("ALTER TABLE t DROP COLUMN c", "ALTER TABLE t RENAME COLUMN a TO b",
                "ALTER TABLE t ALTER COLUMN c TYPE bigint",
                "ALTER TABLE t ALTER COLUMN c SET NOT NULL",
                "ALTER TABLE t ADD COLUMN c int NOT NULL", "DROP TABLE t"):
        assert NOT_ADDITIVE.search(sql), sql
    for sql in ("ALTER TABLE t ADD COLUMN c int",
                "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 0",
                "CREATE TABLE t (a int NOT NULL)", "CREATE INDEX i ON t (a)"):
        assert not NOT_ADDITIVE.search(sql), sql


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


@pytest.fixture(scope="module")
def old_code(tmp_path_factory) -> Path:
    """app/ as it was in the commit before the newest migration was added."""
    newest = discover()[-1].path.relative_to(REPO)
    if git("rev-parse", "--is-shallow-repository") == "true":
        pytest.fail(f"this clone is shallow: the commit before {newest} is not in it "
                    f"(git fetch --unshallow; CI clones fully)")
    added = git("log", "--diff-filter=A", "--format=%H", "--", str(newest)).splitlines()
    if not added:
        pytest.fail(f"{newest} was never committed: commit it first (the test runs the code "
                    f"of the commit before it)")
    before = f"{added[-1]}^"
    out = tmp_path_factory.mktemp("old-code")
    tar = subprocess.run(["git", "archive", before, "app"], cwd=REPO, capture_output=True,
                         check=True, timeout=120).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(out, filter="data")
    assert not (out / "app/db/migrations" / newest.name).exists()
    return out


class OldProcess:
    """`rec ...` of the old code, with a NOTIFY_SOCKET of the test's."""

    def __init__(self, code: Path, env: dict[str, str], *args: str) -> None:
        self.notify = NotifySocket.open()
        self.log = code.parent / f"{'-'.join(args)}.log"
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args], cwd=code, stdout=self._out,
            stderr=subprocess.STDOUT,
            env={**env, "PYTHONPATH": str(code), "NOTIFY_SOCKET": str(self.notify.path)})

    def ready(self, timeout: float = 60) -> None:
        try:
            self.notify.wait_for("READY", "1", timeout=timeout)
        except Exception:
            pytest.fail(f"the old code's {self.proc.args[3:]} did not get READY on the new "
                        f"schema:\n{self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self._out.close()
            self.notify.close()


def count(dsn: str, sql: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchone()[0]


def test_the_code_before_the_newest_migration_runs_on_the_schema_after_it(
        rec_home_db, old_code):
    home = rec_home_db
    r = home.rec("db", "migrate")  # this code: the schema at head
    assert r.returncode == 0, r.stderr
    head = discover()[-1].version
    dsn = home.db.dsn
    assert count(dsn, "SELECT max(version) FROM schema_migrations") == head
    register_sim_key(home)
    env = {**home.env, "REC_LOG_LEVEL": "info"}
    procs: list[OldProcess] = []
    try:
        sim = OldProcess(old_code, env, "run", "exchange-sim")
        procs.append(sim)
        sim.ready()
        procs += [OldProcess(old_code, env, "run", s) for s in OLD_SERVICES]
        for p in procs[1:]:
            p.ready()
        # the old feeds store from the simulator into the new schema (its trigger included)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # a fresh database: every row is the old code's
            stored = tuple(count(dsn, f"SELECT count(*) FROM {table}")
                           for table in ("markets", "index_prices", "market_status_log"))
            if all(stored):
                break
            time.sleep(0.5)
        assert all(stored), f"markets, index_prices, market_status_log rows: {stored}"
        check = subprocess.run([sys.executable, "-m", "app.cli", "ledger", "check"],
                               cwd=old_code, env={**env, "PYTHONPATH": str(old_code)},
                               capture_output=True, text=True, timeout=120)
        assert check.returncode == 0, check.stdout + check.stderr
        for p in procs[1:]:
            assert p.proc.poll() is None, p.log.read_text(errors="replace")[-3000:]
    finally:
        codes = {p.proc.args[-1]: p.stop() for p in reversed(procs)}
    assert set(codes.values()) == {0}, codes
