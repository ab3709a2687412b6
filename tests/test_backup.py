"""Backups on the real PostgreSQL fixture: the db host's job (app/db/backup_job.py, run as a
plain file by the system Python, as the least-privileged role "rec-backup" the rec_backup
Ansible role makes), retention, the off-host copy, the backup `rec db migrate` takes first,
the restore drill, and the last good backup in `rec status` and on the Services page."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from app.db import backup_job
from app.db import migrate as mig

REPO = Path(__file__).resolve().parent.parent
JOB = REPO / "app/db/backup_job.py"
BACKUP_ROLE = "rec-backup"  # what ansible/roles/rec_backup creates on the db host
BACKUP_PASSWORD = "bk-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def backup_role(pg):
    """The db host's backup identity: LOGIN, CREATEDB (the drill's scratch database), member
    of pg_read_all_data; nothing else. Made before the databases are migrated, as on a host
    (rec_backup runs before the app hosts migrate), so migration 016 grants it backup_runs."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(BACKUP_ROLE)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {} IN ROLE "
                             "pg_read_all_data").format(sql.Identifier(BACKUP_ROLE),
                                                        sql.Literal(BACKUP_PASSWORD)))
    return BACKUP_ROLE


@pytest.fixture
def books(rec_home_db, backup_role):
    """A migrated database with books: a settled trade, an open one, their legs and fills."""
    r = rec_home_db.rec("db", "migrate")
    assert r.returncode == 0, r.stderr
    with psycopg.connect(rec_home_db.db.dsn) as conn:
        done, open_ = (conn.execute(
            "INSERT INTO trades (ticker, side, status, quantity, entry_cost, exit_proceeds, "
            "fees, pnl_cents) VALUES (%s, 'yes', %s, 2, 0.9, %s, 0.02, %s) RETURNING id",
            (ticker, status, proceeds, pnl)).fetchone()[0]
            for ticker, status, proceeds, pnl in (("KXBTCD-T1", "settled", 2, 108),
                                                  ("KXBTCD-T2", "open", None, None)))
        for trade, ticker in ((done, "KXBTCD-T1"), (open_, "KXBTCD-T2")):
            conn.execute(
                "INSERT INTO trade_orders (client_order_id, trade_id, leg, ticker, side, "
                "action, count, price, time_in_force, strategy, state, exchange_order_id) "
                "VALUES (%s, %s, 'open', %s, 'yes', 'buy', 2, 0.45, 'gtc', 'manual', "
                "'accepted', %s)", (f"c-{trade}", trade, ticker, f"x-{trade}"))
            conn.execute(
                "INSERT INTO account_fills (trade_id, order_id, ticker, outcome_side, "
                "book_side, count, yes_price, fee, created_time, source) VALUES "
                "(%s, %s, %s, 'yes', 'bid', 2, 0.45, 0.01, now(), 'rest')",
                (f"f-{trade}", f"x-{trade}", ticker))
    rec_home_db.trades = {"settled": done, "open": open_}  # type: ignore[attr-defined]
    return rec_home_db


def role_env(db, user: str = BACKUP_ROLE, password: str = BACKUP_PASSWORD) -> dict[str, str]:
    """The db host's unit environment, over TCP with a password instead of peer auth."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "REC_", "PYTHON"))}
    env.update(PGHOST=db.server.host, PGPORT=str(db.server.port), PGDATABASE=db.name,
               PGUSER=user, PGPASSWORD=password, PGSSLMODE="disable")
    return env


def role_dsn(db) -> str:
    return db.server.dsn(BACKUP_ROLE, BACKUP_PASSWORD, db.name)


def run_job(db, *args: str) -> subprocess.CompletedProcess:
    """As rec-backup.service runs it: the file alone, by the system Python (no rec venv)."""
    return subprocess.run(["/usr/bin/python3", str(JOB), *args], env=role_env(db), cwd="/",
                          capture_output=True, text=True, timeout=120)


def runs(db) -> list[tuple]:
    with psycopg.connect(db.dsn) as conn:
        return conn.execute("SELECT kind, result, file, size_bytes, duration_sec, copied_to, "
                            "error FROM backup_runs ORDER BY id").fetchall()


def test_scheduled_backup_writes_a_dump_and_records_the_run(books, tmp_path):
    out = tmp_path / "backups"
    r = run_job(books.db, "--dir", str(out), "--copy-to", str(tmp_path))
    assert r.returncode == 0, r.stderr
    [dump] = out.iterdir()
    assert backup_job._NAME.match(dump.name) and dump.name.endswith("-scheduled.dump")
    assert oct(out.stat().st_mode & 0o777) == "0o700"
    [(kind, result, file, size, duration, copied, error)] = runs(books.db)
    assert (kind, result, file, size, error) == ("scheduled", "ok", str(dump),
                                                 dump.stat().st_size, None)
    assert duration is not None and str(dump) in r.stdout
    # the off-host copy (here a second local path) is the same bytes
    assert copied == str(tmp_path / dump.name)
    assert (tmp_path / dump.name).read_bytes() == dump.read_bytes()


def test_a_failed_backup_is_recorded_with_its_error_and_fails_the_unit(books, tmp_path):
    (tmp_path / "file").write_text("")
    r = run_job(books.db, "--dir", str(tmp_path / "file" / "below"))
    assert r.returncode == 1 and "FAILED" in r.stderr
    [(kind, result, file, size, _, _, error)] = runs(books.db)
    assert (kind, result, file, size) == ("scheduled", "failed", None, None)
    assert "Not a directory" in error


def test_the_dump_holds_the_books_and_restores_into_a_scratch_database_the_drill_checks(
        books, tmp_path):
    assert run_job(books.db, "--dir", str(tmp_path)).returncode == 0
    r = books.rec("backup", "drill", "--dsn", role_dsn(books.db))
    assert r.returncode == 0, r.stderr
    assert "checked 2 trades, 2 legs, 2 fills against the live books: equal" in r.stdout
    assert "into a scratch database in" in r.stdout
    assert not scratch_databases(books.db)


def scratch_databases(db) -> list[str]:
    with psycopg.connect(db.server.dsn()) as conn:
        return [n for (n,) in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'rec_drill_%'")]


def test_the_drill_names_a_finished_trade_that_differs_and_lets_an_open_one_move_on(
        books, tmp_path):
    assert run_job(books.db, "--dir", str(tmp_path)).returncode == 0
    with psycopg.connect(books.db.dsn) as conn:
        conn.execute("UPDATE trades SET status = 'closing' WHERE id = %s",
                     (books.trades["open"],))
        conn.execute("UPDATE trades SET pnl_cents = 7 WHERE id = %s",
                     (books.trades["settled"],))
    r = books.rec("backup", "drill", "--dsn", role_dsn(books.db))
    assert r.returncode == 1
    assert "1 difference(s)" in r.stdout
    assert f"trade {books.trades['settled']}: backup" in r.stdout
    assert not scratch_databases(books.db)


def test_a_truncated_dump_fails_the_drill_with_a_clear_message(books, tmp_path):
    assert run_job(books.db, "--dir", str(tmp_path)).returncode == 0
    [dump] = tmp_path.glob("*.dump")
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) // 2])
    r = books.rec("backup", "drill", "--dsn", role_dsn(books.db))
    assert r.returncode == 1
    assert f"restore drill FAILED: {dump} does not restore (a damaged or truncated dump?)" \
        in r.stderr
    assert not scratch_databases(books.db)


def test_the_drill_without_a_backup_says_so(books):
    r = books.rec("backup", "drill", "--dsn", role_dsn(books.db))
    assert r.returncode == 1 and "no good backup recorded in backup_runs yet" in r.stderr


def stamps(*texts: str) -> list[Path]:
    return [dt.datetime.fromisoformat(t).replace(tzinfo=dt.UTC) for t in texts]


def test_retention_keeps_the_newest_of_each_recent_day_and_week(tmp_path):
    made = stamps(
        "2026-12-07T03:00", "2026-12-07T01:00",  # Monday, week 50
        "2026-12-06T03:00", "2026-12-05T03:00",  # week 49
        "2026-11-29T03:00", "2026-11-28T03:00",  # week 48
        "2026-11-20T03:00",  # week 47
        "2026-11-10T03:00")  # week 46
    for stamp in made:
        (tmp_path / backup_job.dump_name(stamp, "scheduled")).write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not a dump: left alone")
    removed = backup_job.prune(tmp_path, daily=3, weekly=3)
    left = sorted(p.name for p in tmp_path.iterdir())
    expected = [backup_job.dump_name(s, "scheduled") for s in stamps(
        "2026-12-07T03:00", "2026-12-06T03:00", "2026-12-05T03:00",  # daily 3
        "2026-11-29T03:00")] + ["notes.txt"]  # weeks 50 and 49 are kept already; 48's newest
    assert left == sorted(expected)
    assert len(removed) == len(made) - 4


def partial_migrations(tmp_path: Path) -> Path:
    """Every migration but the newest: a database as the release before left it."""
    older = tmp_path / "older"
    older.mkdir()
    for m in mig.discover()[:-1]:
        (older / m.path.name).write_text(m.sql)
    return older


def test_migrate_backs_up_a_database_with_a_schema_before_its_pending_migrations(
        rec_home_db, tmp_path):
    db = rec_home_db.db
    mig.migrate(db.dsn, partial_migrations(tmp_path), progress=lambda m: None)
    r = rec_home_db.rec("db", "migrate")
    assert r.returncode == 0, r.stderr
    assert "1 pending migration(s): backing up first" in r.stdout
    [dump] = (rec_home_db.root / "backups").iterdir()
    assert dump.name.endswith("-pre-migrate.dump")
    # recorded after migrating (on the first upgrade, backup_runs is what it was taken before)
    [(kind, result, file, size, *_)] = runs(db)
    assert (kind, result, file, size) == ("pre-migrate", "ok", str(dump), dump.stat().st_size)
    listing = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True,
                             text=True, check=True).stdout
    assert "TABLE public trades " in listing
    # the dump holds the schema from before the newest migration: none of its tables, none of
    # the columns it adds (a migration may do either)
    newest = mig.discover()[-1].sql
    tables = re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", newest)
    columns = re.findall(r"ALTER TABLE (\w+) ADD COLUMN (?:IF NOT EXISTS )?(\w+)", newest)
    assert tables or columns, "the newest migration neither creates a table nor adds a column"
    assert not [t for t in tables if f"TABLE public {t} " in listing], tables
    schema = subprocess.run(["pg_restore", "--schema-only", "-f", "-", str(dump)],
                            capture_output=True, text=True, check=True).stdout
    for table, column in columns:
        [definition] = re.findall(rf"CREATE TABLE public\.{table} \((.*?)\n\);", schema, re.S)
        assert not re.search(rf"^\s+{column}\s", definition, re.M), (table, column)
    # up to date: no backup
    assert rec_home_db.rec("db", "migrate").returncode == 0
    assert len(list((rec_home_db.root / "backups").iterdir())) == 1


def test_a_fresh_database_is_migrated_without_a_backup(rec_home_db):
    assert rec_home_db.rec("db", "migrate").returncode == 0
    assert not (rec_home_db.root / "backups").exists()


def test_no_migration_when_the_backup_before_it_fails(rec_home_db, tmp_path):
    db = rec_home_db.db
    mig.migrate(db.dsn, partial_migrations(tmp_path), progress=lambda m: None)
    (tmp_path / "file").write_text("")
    rec_home_db.env["REC_BACKUP_BEFORE_MIGRATE_DIR"] = str(tmp_path / "file" / "below")
    r = rec_home_db.rec("db", "migrate")
    assert r.returncode == 1
    assert "no migration without a backup" in r.stderr
    with psycopg.connect(db.dsn) as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == \
            mig.discover()[-2].version
    rec_home_db.env["REC_BACKUP_BEFORE_MIGRATE"] = "false"
    assert rec_home_db.rec("db", "migrate").returncode == 0


def status_backup_line(home) -> str:
    r = home.rec("status", timeout=60)
    return next(line for line in r.stdout.splitlines() if line[4:].startswith("backup "))


def test_rec_status_shows_the_last_good_backup_and_says_stale_without_failing(
        books, tmp_path):
    assert status_backup_line(books).endswith("none yet")
    assert run_job(books.db, "--dir", str(tmp_path)).returncode == 0
    [dump] = tmp_path.glob("*.dump")
    line = status_backup_line(books)
    assert line.startswith("ok ") and str(dump) in line and "(scheduled on" in line
    with psycopg.connect(books.db.dsn) as conn:
        conn.execute("UPDATE backup_runs SET started_at = started_at - interval '27 hours'")
    line = status_backup_line(books)
    assert line.startswith("WRN") and "STALE (older than 26h): last good 27.0h ago" in line
    books.env["REC_BACKUP_MAX_AGE_HOURS"] = "30"
    assert status_backup_line(books).startswith("ok ")


def test_the_services_page_shows_the_last_backup(books, tmp_path, start_service):
    import httpx

    from tests.conftest import WEB_PASSWORD, WEB_USER

    web = start_service(books, "web")
    web.notify.wait_for("READY", "1", timeout=60)
    c = httpx.Client(base_url=f"http://127.0.0.1:{books.env['REC_WEB_PORT']}", timeout=30)
    assert c.post("/login", data={"user": WEB_USER, "password": WEB_PASSWORD}).status_code \
        in (200, 303)
    assert "<b>Last backup:</b> none yet" in c.get("/services").text
    assert run_job(books.db, "--dir", str(tmp_path)).returncode == 0
    with psycopg.connect(books.db.dsn) as conn:
        conn.execute("UPDATE backup_runs SET started_at = started_at - interval '30 hours'")
    page = c.get("/services").text
    [dump] = tmp_path.glob("*.dump")
    assert '<p id="backup" class="warning"><b>Last backup:</b> STALE (older than 26h): ' \
           "last good 30.0h ago" in page and str(dump) in page


def test_rec_backup_run_with_the_apps_connection_records_a_manual_run(books, tmp_path):
    r = books.rec("backup", "run", "--dir", str(tmp_path / "manual"))
    assert r.returncode == 0, r.stderr
    [dump] = (tmp_path / "manual").iterdir()
    assert dump.name.endswith("-manual.dump")
    assert [row[:3] for row in runs(books.db)] == [("manual", "ok", str(dump))]
    listing = books.rec("backup", "runs")
    assert listing.returncode == 0 and "manual      " in listing.stdout and str(dump) in \
        listing.stdout
