#!/usr/bin/env python3
"""Backup and restore figures for choosing between daily dumps and WAL archiving (PITR).

    .venv/bin/python -m benchmarks.backup_bench [--days 30] [--indexes 1]

A PostgreSQL server of its own (testkit), rec's schema, and ``--days`` of the settlement
index at one row per second per index (rec-price-feed's rate; its default retention is 30
days) plus a trading day's books per day. Prints the database's size, the WAL the writes made
(what WAL archiving would ship per day), then the time and size of the backup job's dump
(app/db/backup_job.py) and of the restore drill's restore into a scratch database, with the
load average beside them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import psycopg

from app.backup.drill import restore_into
from app.db import backup_job
from app.db.migrate import migrate
from testkit import pg as pgserver

SEED_INDEX = """
INSERT INTO index_prices (index_name, ts, price, avg_1m, d1m, d2m, d3m, d4m, d15m, d30m,
                          momentum)
SELECT 'IDX' || i, t, 97000 + 500 * sin(extract(epoch FROM t) / 900),
       97000 + 500 * sin(extract(epoch FROM t) / 900), 0.01, 0.02, 0.03, 0.04, 0.1, 0.2, 0.05
  FROM generate_series(1, %(indexes)s) i,
       generate_series(START + %(day)s * interval '1 day',
                       START + (%(day)s + 1) * interval '1 day' - interval '1 second',
                       interval '1 second') t""".replace(
    "START", "'2026-10-01 00:00+00'::timestamptz")
SEED_BOOKS = """
WITH t AS (
  INSERT INTO trades (ticker, side, status, quantity, entry_cost, exit_proceeds, fees, pnl_cents)
  SELECT 'KXBTCD-' || %(day)s || '-T' || n, 'yes', 'settled', 5, 2.5, 5, 0.1, 240
    FROM generate_series(1, 200) n RETURNING id, ticker)
INSERT INTO trade_orders (client_order_id, trade_id, leg, ticker, side, action, count, price,
                          time_in_force, strategy, state)
SELECT 'c-' || id, id, 'open', ticker, 'yes', 'buy', 5, 0.5, 'gtc', 'auto', 'accepted' FROM t"""


def lsn(conn) -> int:
    return int(conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--indexes", type=int, default=1)
    args = p.parse_args()
    server = pgserver.start()
    try:
        dsn = server.dsn()
        migrate(dsn, progress=lambda m: None)
        with psycopg.connect(dsn, autocommit=True) as conn:
            wal0, t0 = lsn(conn), time.monotonic()
            for day in range(args.days):
                conn.execute(SEED_INDEX, {"indexes": args.indexes, "day": day})
                conn.execute(SEED_BOOKS, {"day": day})
            wal, seed_sec = lsn(conn) - wal0, time.monotonic() - t0
            conn.execute("VACUUM ANALYZE")
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        print(f"seeded {args.days} day(s) x {args.indexes} index(es) in {seed_sec:.0f}s: "
              f"database {size / 1e6:.0f} MB; WAL written {wal / 1e6:.0f} MB "
              f"({wal / 1e6 / args.days:.1f} MB per day)")
        env = {**os.environ, "PGHOST": server.host, "PGPORT": str(server.port),
               "PGUSER": "postgres", "PGPASSWORD": server.superuser_password,
               "PGDATABASE": "postgres"}
        with tempfile.TemporaryDirectory(prefix="rec-backup-bench-") as tmp:
            run = backup_job.take(Path(tmp), "manual", env)
            assert run.ok, run.error
            print(f"dump: {run.size_bytes / 1e6:.0f} MB in {run.duration_sec:.1f}s "
                  f"(load {os.getloadavg()[0]:.1f})")
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CREATE DATABASE bench_restore")
            seconds = restore_into(server.dsn(dbname="bench_restore"), run.file)
            print(f"restore into a scratch database: {seconds:.1f}s "
                  f"(load {os.getloadavg()[0]:.1f})")
    finally:
        pgserver.remove(server)


if __name__ == "__main__":
    main()
