"""`rec backtest` end to end on the checked-in recording: a scratch database beside rec's
own, the simulator replaying the window (fills by the replay's fill model), every trading
service a real process; rec's books equal the simulator's ledger to the cent, the report
comes with its digest, the model's Brier score and its HTML page, no scratch database is
left behind."""

from __future__ import annotations

import json
import re

import psycopg
from psycopg import sql

from tests.test_replay import FIXTURE
from tests.test_trading_hour import SETTINGS

# the host settings the simulated-hour test gives its services (tests/trading_fixtures.py)
HOST = {"MARKET_FEED_SERIES": "KXBTCD", "PRICE_FEED_INDICES": "BRTI",
        "COORDINATOR_SERIES": "KXBTCD:BRTI", "COORDINATOR_INTERVAL_SEC": "0.2",
        "COORDINATOR_MIN_VOL_SAMPLES": "30", "COORDINATOR_MAX_INDEX_AGE_SEC": "5",
        "WATCHLIST_MIN_DIFF_CENTS": "1", "TRADE_SUPERVISOR_INTERVAL_SEC": "0.2",
        "AUTO_ENTRY_INTERVAL_SEC": "0.2", "ACCOUNT_SYNC_RECONCILE_INTERVAL_SEC": "3600",
        "KALSHI_WS_BACKOFF_BASE_SEC": "0.05", "KALSHI_WS_BACKOFF_MAX_SEC": "0.3",
        "LOG_LEVEL": "info"}


def _createdb(pg, user: str, on: bool) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} " + ("CREATEDB" if on else "NOCREATEDB")).format(
            sql.Identifier(user)))


def backtest(home, pg, tmp_path, *extra: str, timeout: float = 900):
    """`rec backtest` on the fixture's 16:30-16:50 at 120x, 50 ms of order latency,
    the simulated-hour test's trading settings (the role may create the scratch database
    while it runs)."""
    home.env.update({f"REC_{k}": v for k, v in HOST.items()})
    settings = tmp_path / "trading.json"
    settings.write_text(json.dumps(SETTINGS))
    user = home.db.user
    _createdb(pg, user, True)  # the scratch database, as the restore drill's role has
    try:
        return home.rec("backtest", "--from", "2025-11-25T16:30:00Z",
                        "--to", "2025-11-25T16:50:00Z", "--speed", "120",
                        "--settings", str(settings), "--latency-ms", "50", *extra, FIXTURE,
                        timeout=timeout)
    finally:
        _createdb(pg, user, False)


def test_rec_backtest_runs_the_bundle_on_a_window_and_prints_its_report_twice_alike(
        rec_home_db, pg, tmp_path):
    r = backtest(rec_home_db, pg, tmp_path, "--report", str(tmp_path / "report"))
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    print(r.stdout)
    # the lockstep held every simulated second (else that second may go otherwise)
    assert "lockstep gave up" not in r.stderr, r.stderr[-3000:]
    m = re.search(r"^trades (\d+) \((\d+) with P&L\), P&L after fees -?\$[\d,.]+, fees "
                  r"\$[\d.]+, win rate", r.stdout, re.M)
    assert m and int(m[1]) >= int(m[2]), r.stdout
    assert int(m[2]) >= 1, r.stdout  # it traded: the books' check below bites
    # rec's trades (P&L after fees, fees) equal the simulator's ledger to the cent
    assert re.search(r"^rec's books against the exchange's ledger: .*: match$", r.stdout,
                     re.M), r.stdout
    assert re.search(r"^digest \(orders, fills, P&L\): [0-9a-f]{64}$", r.stdout, re.M)
    # the model scored on the window, and the page with its four charts
    assert re.search(r"^model: Brier 0\.\d{4} on [1-9]\d* predictions", r.stdout, re.M)
    out = tmp_path / "report"
    page = (out / "index.html").read_text()
    for chart in ("equity", "drawdown", "rules", "reliability"):
        assert f'src="{chart}.png"' in page and (out / f"{chart}.png").stat().st_size
    with psycopg.connect(pg.dsn()) as conn:
        left = conn.execute("SELECT datname FROM pg_database "
                            "WHERE datname LIKE 'rec_backtest_%'").fetchall()
    assert left == []
    # the same window and settings again: the same orders, fills and P&L (the lockstep and
    # the replay's clock, docs/replay.md "Determinism"), whatever the machine's load did
    again = backtest(rec_home_db, pg, tmp_path)
    assert again.returncode == 0, (again.stdout[-2000:], again.stderr[-4000:])
    print(again.stdout)
    summary = re.compile(r"^(trades .*|digest .*)$", re.M)
    assert summary.findall(again.stdout) == summary.findall(r.stdout), (r.stdout, again.stdout)


def test_a_sweep_runs_each_combination_and_ranks_them(rec_home_db, pg, tmp_path):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"auto_entry_min_diff_cents": [1, 50]}))  # 50: a rare edge
    # --free: the sweep's own work (a run per combination, in parallel, ranked) at 120x; the
    # test above proves the lockstep's runs reproducible
    r = backtest(rec_home_db, pg, tmp_path, "--sweep", str(grid), "--jobs", "2", "--free")
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    print(r.stdout)
    rows = re.findall(r"^ +(\d)\. +(-?\$[\d.]+) +trades +(\d+) .*digest ([0-9a-f]{12}) "
                      r"+auto_entry_min_diff_cents=(\d+)$", r.stdout, re.M)
    assert [n for n, *_ in rows] == ["1", "2"], r.stdout
    assert {row[4] for row in rows} == {"1", "50"}
    loose, strict = sorted(rows, key=lambda row: int(row[4]))
    assert loose[3] != strict[3]  # each run had its own settings (1 cent: more entries)
    pnl = [float(p.replace("$", "")) for _, p, *_ in rows]
    assert pnl == sorted(pnl, reverse=True)
    assert r.stdout.rstrip().splitlines()[-1].startswith("WARNING: a sweep overfits")
