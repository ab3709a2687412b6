"""The checked-in recording (made by benchmarks/record_fixture.py from the simulator and the
real feeds): docs/record.md's one-line DuckDB query runs on it as written, its manifest
agrees with its rows, and it goes into a database and comes out the same."""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from app.db.migrate import migrate
from app.record import schema

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests/fixtures/rec-sim.parquet"


def doc_query() -> str:
    text = (REPO / "docs/record.md").read_text()
    block = re.search(r"<!-- duckdb-query:.*?-->\n```sh\n(.+?)\n```", text, re.S)
    assert block, "docs/record.md: the duckdb-query block"
    return block.group(1)


def test_the_documented_query_runs_on_the_fixture():
    line = doc_query()
    assert "tests/fixtures/rec-sim.parquet" in line
    r = subprocess.run(line, shell=True, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    trades: dict[str, list] = defaultdict(list)
    for row in pq.read_table(FIXTURE, columns=["kind", "ticker", "price"]).to_pylist():
        if row["kind"] == "trade":
            trades[row["ticker"]].append(row["price"])
    top = sorted(trades.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:5]
    for ticker, prices in top:  # what the query printed, by another reader
        line_of = next(t for t in r.stdout.splitlines() if ticker in t)
        assert f" {len(prices)} " in f" {line_of.replace('│', ' ')} ", (ticker, line_of)
        assert str(max(prices)) in line_of and str(min(prices)) in line_of


def test_the_fixture_is_small_and_its_manifest_agrees_with_its_rows():
    assert FIXTURE.stat().st_size < 3 * 2**20
    m = schema.read_manifest(str(FIXTURE))
    counts = dict(duckdb.sql(f"SELECT kind, count(*) FROM '{FIXTURE}' GROUP BY 1").fetchall())
    assert m["counts"] == counts and m["rows"] == sum(counts.values())
    assert counts["index_tick"] > 4 * counts["index_second"]  # the 5 Hz channel, whole
    per_market = duckdb.sql(
        f"SELECT ticker, kind, count(*) FROM '{FIXTURE}' WHERE kind IN "
        "('book', 'level', 'tick', 'trade') GROUP BY 1, 2").fetchall()
    want: dict[str, dict[str, int]] = defaultdict(dict)
    for ticker, kind, n in per_market:
        want[ticker][kind] = n
    got = {t: c["records"] for t, c in m["coverage"].items() if c["kind"] == "market"}
    assert got == want
    assert set(m["series"]) == {"KXBTCD", "KXETHD"}
    # settled markets say how: the result is in the market row and the status log
    settled = duckdb.sql(f"SELECT ticker, result FROM '{FIXTURE}' WHERE kind = 'market' AND "
                         "status = 'settled'").fetchall()
    assert settled and all(r in ("yes", "no") for _, r in settled)
    logged = duckdb.sql(f"SELECT DISTINCT ticker FROM '{FIXTURE}' WHERE kind = 'status' AND "
                        "status = 'settled' AND result IN ('yes', 'no')").fetchall()
    assert {t for (t,) in logged} == {t for t, _ in settled}


def test_the_fixture_imports_and_exports_the_same(rec_home_db, tmp_path):
    migrate(rec_home_db.db.dsn, progress=lambda _: None)
    r = rec_home_db.rec("record", "import", str(FIXTURE))
    assert r.returncode == 0, r.stderr
    m = schema.read_manifest(str(FIXTURE))
    out = tmp_path / "again.parquet"
    r = rec_home_db.rec("record", "export", "--from", m["window"]["from"], "--to",
                        m["window"]["to"], "--series", ",".join(m["series"]), str(out))
    assert r.returncode == 0, r.stderr
    # the fixture is version 1 (stored before migration 018): version 2 has its columns
    # unchanged, and of the new ones only the one clock each record kept
    old = pq.read_table(FIXTURE)
    new = pq.read_table(out)
    assert m["format_version"] == 1 and new.schema.names[:old.num_columns] == old.schema.names
    rows = new.select(old.schema.names).to_pylist()
    for row in rows:  # received_at: new on the market kinds (checked below)
        if row["kind"] in ("book", "level", "tick", "trade"):
            row["received_at"] = None
    assert rows == old.to_pylist()
    clocks = duckdb.sql(
        f"SELECT kind, count(*) FILTER (WHERE exchange_ts = ts), count(*) FILTER (WHERE "
        "received_at = ts), count(exchange_seq), count(sending_ms), count(gap_reason) "
        f"FROM '{out}' WHERE kind IN ('book', 'level', 'tick', 'trade') GROUP BY 1").fetchall()
    counts = m["counts"]
    assert sorted(clocks) == [("book", 0, counts["book"], 0, 0, 0),
                              ("level", 0, counts["level"], 0, 0, 0),
                              ("tick", counts["tick"], 0, 0, 0, 0),
                              ("trade", counts["trade"], 0, 0, 0, 0)]
    again = schema.read_manifest(str(out))
    assert again["format_version"] == schema.VERSION == 2
    assert all(c.pop("gaps", []) == [] for c in again["coverage"].values())
    for key in ("coverage", "index_gaps", "counts", "window", "series"):
        assert again[key] == m[key], key


def test_a_reader_that_stops_early_gets_no_traceback():
    """`rec record info FILE | head -1`: the reader closes the pipe before rec writes; rec stops
    quietly with 141 (128 + SIGPIPE), as Unix commands do, not with a BrokenPipeError trace."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "record", "info", str(FIXTURE)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the interpreter has even started: every write meets EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
