"""Migrations on a real PostgreSQL server; backup and restore round trip."""

from __future__ import annotations

import threading

import psycopg
import pytest

from app.db import migrate as mig


def schema_fingerprint(dsn: str) -> list[tuple]:
    """Columns, indexes and constraints of the public schema."""
    with psycopg.connect(dsn) as conn:
        columns = conn.execute(
            """SELECT table_name, column_name, data_type, is_nullable, column_default
               FROM information_schema.columns WHERE table_schema = 'public'
               ORDER BY table_name, column_name""").fetchall()
        indexes = conn.execute(
            """SELECT tablename, indexname, indexdef FROM pg_indexes
               WHERE schemaname = 'public' ORDER BY 1, 2""").fetchall()
        constraints = conn.execute(
            """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
               FROM pg_constraint WHERE connamespace = 'public'::regnamespace
               ORDER BY 1, 2""").fetchall()
    return columns + indexes + constraints


def test_migrate_creates_the_core_tables(app_db):
    applied = mig.migrate(app_db.dsn, progress=lambda m: None)
    assert applied[0] == "001_core"
    assert applied == [m.name for m in mig.discover()]
    tables = {row[0] for row in schema_fingerprint(app_db.dsn)}
    assert {"markets", "market_ticks", "orderbook_levels", "balances", "positions", "orders",
            "fills", "settlements", "trades", "trade_events", "schema_migrations"} <= tables


def test_migrate_twice_changes_nothing(app_db):
    mig.migrate(app_db.dsn, progress=lambda m: None)
    before = schema_fingerprint(app_db.dsn)
    with psycopg.connect(app_db.dsn) as conn:
        stamp = conn.execute("SELECT applied_at FROM schema_migrations").fetchall()
    lines: list[str] = []
    assert mig.migrate(app_db.dsn, progress=lines.append) == []
    assert lines == [f"schema up to date at version {mig.discover()[-1].version}"]
    assert schema_fingerprint(app_db.dsn) == before
    with psycopg.connect(app_db.dsn) as conn:
        assert conn.execute("SELECT applied_at FROM schema_migrations").fetchall() == stamp


def test_two_concurrent_migrations_take_turns(app_db):
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run():
        try:
            results.append(mig.migrate(app_db.dsn, progress=lambda m: None))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    everything = [m.name for m in mig.discover()]
    assert sorted(results, key=len) == [[], [], [], everything]  # one applied all, in turn


def test_edited_applied_migration_is_refused(app_db, tmp_path):
    (tmp_path / "001_first.sql").write_text("CREATE TABLE t1 (id int);")
    mig.migrate(app_db.dsn, tmp_path, progress=lambda m: None)
    (tmp_path / "001_first.sql").write_text("CREATE TABLE t1 (id bigint);")
    with pytest.raises(mig.MigrationError, match="changed after it was applied"):
        mig.migrate(app_db.dsn, tmp_path, progress=lambda m: None)


def test_failed_migration_leaves_no_partial_state(app_db, tmp_path):
    (tmp_path / "001_ok.sql").write_text("CREATE TABLE ok1 (id int);")
    (tmp_path / "002_bad.sql").write_text("CREATE TABLE bad1 (id int); SELECT 1/0;")
    with pytest.raises(psycopg.errors.DivisionByZero):
        mig.migrate(app_db.dsn, tmp_path, progress=lambda m: None)
    with psycopg.connect(app_db.dsn) as conn:
        assert conn.execute("SELECT version FROM schema_migrations").fetchall() == [(1,)]
        assert conn.execute("SELECT to_regclass('bad1')").fetchone() == (None,)


def test_badly_named_migration_is_refused(tmp_path):
    (tmp_path / "1_x.sql").write_text("SELECT 1;")
    with pytest.raises(mig.MigrationError, match=r"NNN_name\.sql"):
        mig.discover(tmp_path)


def test_money_columns_are_never_floating_point(app_db):
    mig.migrate(app_db.dsn, progress=lambda m: None)
    floats = [row for row in schema_fingerprint(app_db.dsn)
              if row[2] in ("real", "double precision")]
    assert floats == []


def test_unique_client_order_id_and_fill_trade_id(app_db):
    mig.migrate(app_db.dsn, progress=lambda m: None)
    with psycopg.connect(app_db.dsn) as conn:
        insert = ("INSERT INTO orders (client_order_id, ticker, side, action, price_cents, "
                  "quantity, status) VALUES ('c1', 'T', 'yes', 'buy', 40, 1, 'resting')")
        conn.execute(insert)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert)
    with psycopg.connect(app_db.dsn) as conn:
        fill = ("INSERT INTO fills (trade_id, exchange_order_id, ticker, side, action, count, "
                "yes_price_cents, no_price_cents, is_taker, created_time) VALUES "
                "('f1', 'o1', 'T', 'yes', 'buy', 1, 40, 60, true, now())")
        conn.execute(fill)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(fill)


def test_rec_db_migrate_command(rec_home_db):
    r = rec_home_db.rec("db", "migrate")
    assert r.returncode == 0, r.stderr
    assert "applying 001_core.sql" in r.stdout
    r = rec_home_db.rec("db", "migrate")
    assert r.returncode == 0 and "schema up to date" in r.stdout


def test_rec_db_migrate_unreachable_database_says_where(rec_home):
    from testkit.net import free_port

    rec_home.env.update(REC_DB_PORT=str(free_port()), REC_DB_CONNECT_TIMEOUT_SEC="2")
    r = rec_home.rec("db", "migrate")
    assert r.returncode == 1
    assert "rec: migration failed on rec@127.0.0.1:" in r.stderr
    assert "Traceback" not in r.stderr


def test_backup_then_restore_round_trips_the_data(rec_home_db, tmp_path):
    assert rec_home_db.rec("db", "migrate").returncode == 0
    dsn = rec_home_db.db.dsn
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO markets (ticker, event_ticker, status) VALUES "
                     "('KXBTCD-26NOV2517-T97499.99', 'KXBTCD-26NOV2517', 'active')")
        conn.execute("INSERT INTO balances (balance_cents) VALUES (123456)")
    dump = tmp_path / "rec.dump"
    r = rec_home_db.rec("db", "backup", str(dump))
    assert r.returncode == 0, r.stderr
    assert dump.stat().st_size > 0
    # the backup refuses to overwrite
    assert rec_home_db.rec("db", "backup", str(dump)).returncode == 1
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM markets")
        conn.execute("UPDATE balances SET balance_cents = 0")
    r = rec_home_db.rec("db", "restore", str(dump))
    assert r.returncode == 0, r.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT ticker FROM markets").fetchall() == [
            ("KXBTCD-26NOV2517-T97499.99",)]
        assert conn.execute("SELECT balance_cents FROM balances").fetchall() == [(123456,)]
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (
            len(mig.discover()),)


def test_restore_refuses_a_missing_file(rec_home_db, tmp_path):
    r = rec_home_db.rec("db", "restore", str(tmp_path / "nope.dump"))
    assert r.returncode == 1 and "no such backup file" in r.stderr


def test_db_scripts_backup_and_refuse_restore_without_a_file(rec_home_db, tmp_path):
    import subprocess
    from pathlib import Path

    scripts = Path(__file__).resolve().parent.parent / "scripts"
    r = subprocess.run([str(scripts / "db_restore")], env=rec_home_db.env, capture_output=True,
                       text=True)
    assert r.returncode == 2 and "usage: scripts/db_restore FILE" in r.stderr
    assert rec_home_db.rec("db", "migrate").returncode == 0
    r = subprocess.run([str(scripts / "db_backup")], env=rec_home_db.env, cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    dumps = list(tmp_path.glob("rec-*.dump"))
    assert len(dumps) == 1 and dumps[0].stat().st_size > 0


def test_migration_waiting_for_a_held_lock_gives_up_in_time(app_db):
    import time

    with psycopg.connect(app_db.dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (mig.LOCK_KEY,))
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.LockNotAvailable):
            mig.migrate(app_db.dsn, progress=lambda m: None, lock_timeout_sec=1)
        assert time.monotonic() - t0 < 5
