"""`rec record export|info|import` on real PostgreSQL: a stored history spread over sealed
segments, open chunks and hot batches, exported by window and series, imported into a
second database (twice), exported again; bad input refused with a clear message."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.db import feed_log
from app.db.migrate import migrate
from app.record import schema

T0 = datetime(2025, 11, 25, 16, 0, tzinfo=UTC)
BTC = "KXBTCD-25NOV2517-T100000"
ETH = "KXETHD-25NOV2517-T3500"
OLD = "KXBTCD-25NOV2516-T99000"  # closed before the window


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ms(minutes: float) -> int:
    return int(at(minutes).timestamp() * 1000)


def seed(dsn: str) -> None:
    """Two markets' history in every stored form, index values with a gap, lifecycle."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for ticker, series, opened, closed in ((BTC, "KXBTCD", 0, 60), (ETH, "KXETHD", 0, 60),
                                               (OLD, "KXBTCD", -60, 0)):
            conn.execute("INSERT INTO markets (ticker, event_ticker, series_ticker, title, "
                         "status, open_time, close_time, floor_strike, raw) VALUES "
                         "(%s, %s, %s, 't', 'active', %s, %s, 100000, '{\"a\": 1}')",
                         (ticker, ticker.rsplit("-", 1)[0], series, at(opened), at(closed)))
        conn.execute("UPDATE markets SET status = 'determined', result = 'yes', "
                     "settlement_value = 1, determined_at = %s WHERE ticker = %s",
                     (at(61), BTC))
        for t in (BTC, ETH, OLD):
            conn.execute("INSERT INTO feed_market_ids (ticker) VALUES (%s)", (t,))
        ids = dict(conn.execute("SELECT ticker, id FROM feed_market_ids").fetchall())
        b, e, o = ids[BTC], ids[ETH], ids[OLD]
        sealed = (feed_log.book(b, ms(5), {D("0.40"): D("10")}, {D("0.55"): D("5")})
                  + feed_log.level(b, ms(7), "yes", D("0.41"), D("3"))
                  + feed_log.level(b, ms(12), "no", D("0.55"), D("0")))
        conn.execute("INSERT INTO feed_log (market, t0, t1, sealed, data) VALUES "
                     "(%s, now(), now(), true, %s)",
                     (b, feed_log.pack_segment(sealed, feed_log.COLUMNS)))
        conn.execute("INSERT INTO feed_log (market, t0, t1, sealed, data) VALUES "
                     "(%s, now(), now(), true, %s)",
                     (o, feed_log.pack_segment(feed_log.level(o, ms(-30), "yes", D("0.1"),
                                                              D("1")))))
        chunk = (feed_log.tick(b, ms(13), (D("0.41"), D("0.45"), D("3"), None, D("0.42"),
                                           D("100"), D("50")))
                 + feed_log.trade(b, ms(15), D("0.4175"), D("2.5"), "yes"))
        conn.execute("INSERT INTO feed_log_open (market, t0, data) VALUES (%s, now(), %s)",
                     (b, feed_log.pack_segment(chunk)))
        hot = (feed_log.book(e, ms(11), {D("0.2"): D("1")}, {})
               + feed_log.trade_with_id(b, ms(16), str(uuid.UUID(int=7)), D("0.42"), D("1"),
                                        "no")
               + feed_log.trade(e, ms(12), D("0.2"), D("1"), None,  # as stored since 018
                                ex=(3, ms(12) + 40, ms(12) + 10))
               + feed_log.level(b, ms(20) - 1, "yes", D("0.43"), D("4"), http=True)
               + feed_log.gap(b, ms(20) - 1, feed_log.GAP_SEQ_BOOK, 5, 9)
               + feed_log.level(b, ms(20), "yes", D("0.44"), D("4"), ex=(10, ms(19), None)))
        conn.execute("INSERT INTO feed_log_hot (data) VALUES (%s)", (hot,))
        for k in range(3):
            conn.execute("INSERT INTO index_ticks (index_name, ts, value, channel, sending_ms) "
                         "VALUES ('BRTI', %s, %s, 'cfbenchmarks_value_5hz', %s)",
                         (at(10) + timedelta(milliseconds=200 * k), D("100000.5") + k,
                          ms(10) + 200 * k + 9))
        for s in (0, 1, 5):
            conn.execute("INSERT INTO index_prices (index_name, ts, price, d1m) VALUES "
                         "('BRTI', %s, %s, 0.01)", (at(10) + timedelta(seconds=s),
                                                    D("100000") + s))


@pytest.fixture
def two_dbs(pg, rec_home_db):
    """rec_home_db (seeded) and a second migrated database, with the env to reach it."""
    migrate(rec_home_db.db.dsn, progress=lambda _: None)
    seed(rec_home_db.db.dsn)
    name = "rec_" + uuid.uuid4().hex[:10]
    pg.create_db(name, rec_home_db.db.user)
    migrate(pg.dsn(rec_home_db.db.user, rec_home_db.db.password, name), progress=lambda _: None)
    yield rec_home_db, {**rec_home_db.env, "REC_DB_NAME": name}
    pg.drop_db(name)


def export(home, path, *extra, env=None, start="2025-11-25T16:10:00Z",
           end="2025-11-25T16:20:00Z"):
    return home.rec("record", "export", "--from", start, "--to", end, *extra, str(path),
                    env=env)


def data_rows(path) -> list[dict]:
    return [r for r in pq.read_table(path).to_pylist()]


def test_export_reads_every_stored_form_by_window_and_series(two_dbs, tmp_path):
    home, _ = two_dbs
    out = tmp_path / "rec.parquet"
    r = export(home, out)
    assert r.returncode == 0, r.stderr
    got = duckdb.sql(f"SELECT kind, ticker, seq, epoch_ms(ts), side, price, size, http "
                     f"FROM '{out}' WHERE kind IN ('book', 'level', 'tick', 'trade') "
                     "ORDER BY ticker, seq").fetchall()
    lo = ms(10)
    assert got == [
        ("book", BTC, 0, lo, None, None, None, False),  # the book at the window's start
        ("level", BTC, 1, ms(12), "no", D("0.5500"), D("0.00"), False),
        ("tick", BTC, 2, ms(13), None, None, None, False),
        ("trade", BTC, 3, ms(15), None, D("0.4175"), D("2.50"), False),
        ("trade", BTC, 4, ms(16), None, D("0.4200"), D("1.00"), False),
        ("level", BTC, 5, ms(20) - 1, "yes", D("0.4300"), D("4.00"), True),
        ("book", ETH, 0, ms(11), None, None, None, False),
        ("trade", ETH, 1, ms(12), None, D("0.2000"), D("1.00"), False)]
    rows = {(r["ticker"], r["seq"]): r for r in data_rows(out) if r["seq"] is not None}
    assert rows[(BTC, 0)]["yes_book"] == [{"price": D("0.41"), "size": D("3")},
                                          {"price": D("0.4"), "size": D("10")}]
    assert rows[(BTC, 0)]["no_book"] == [{"price": D("0.55"), "size": D("5")}]
    assert rows[(BTC, 2)]["yes_ask"] == D("0.45") and rows[(BTC, 2)]["yes_ask_size"] is None
    assert rows[(BTC, 4)]["trade_id"] == str(uuid.UUID(int=7))
    assert rows[(BTC, 3)]["taker_side"] == "yes" and rows[(BTC, 3)]["trade_id"] is None
    kinds = duckdb.sql(f"SELECT kind, count(*) FROM '{out}' GROUP BY 1 ORDER BY 1").fetchall()
    assert dict(kinds) == {"book": 2, "gap": 1, "index_second": 3, "index_tick": 3,
                           "level": 2, "market": 2, "status": 3, "tick": 1, "trade": 3}
    # version 2: the exchange's seq and every clock a record kept; gaps; the lifecycle
    exact = duckdb.sql(f"SELECT kind, ticker, epoch_ms(exchange_ts), exchange_seq, "
                       f"epoch_ms(received_at), sending_ms FROM '{out}' WHERE kind IN "
                       "('book', 'level', 'tick', 'trade') ORDER BY ticker, seq").fetchall()
    assert exact == [
        ("book", BTC, None, None, lo, None), ("level", BTC, None, None, ms(12), None),
        ("tick", BTC, ms(13), None, None, None), ("trade", BTC, ms(15), None, None, None),
        ("trade", BTC, ms(16), None, None, None), ("level", BTC, None, None, ms(20) - 1, None),
        ("book", ETH, None, None, ms(11), None),
        ("trade", ETH, ms(12), 3, ms(12) + 40, ms(12) + 10)]
    gap = duckdb.sql(f"SELECT ticker, seq, epoch_ms(ts), gap_reason, channel, expected_seq, "
                     f"got_seq, epoch_ms(gap_from) FROM '{out}' WHERE kind = 'gap'").fetchall()
    assert gap == [(BTC, 6, ms(20) - 1, "seq", "orderbook_delta", 5, 9, ms(20) - 1)]
    life = duckdb.sql(f"SELECT settlement_value, epoch_ms(determined_at), settled_at FROM "
                      f"'{out}' WHERE kind = 'market' AND ticker = '{BTC}'").fetchall()
    assert life == [(D("1.0000"), ms(61), None)]
    status = duckdb.sql(f"SELECT status, result FROM '{out}' WHERE kind = 'status' AND "
                        f"ticker = '{BTC}' ORDER BY ts").fetchall()
    assert status == [("active", None), ("determined", "yes")]
    ticks = duckdb.sql(f"SELECT value, sending_ms FROM '{out}' WHERE kind = 'index_tick' "
                       "ORDER BY ts").fetchall()
    assert ticks == [(D("100000.5") + k, ms(10) + 200 * k + 9) for k in range(3)]

    manifest = schema.read_manifest(str(out))
    assert manifest["window"] == {"from": "2025-11-25T16:10:00Z", "to": "2025-11-25T16:20:00Z"}
    assert manifest["format_version"] == 2
    assert manifest["coverage"][BTC]["records"] == {"book": 1, "gap": 1, "level": 2, "tick": 1,
                                                    "trade": 2}
    assert manifest["coverage"][BTC]["gaps"] == [{
        "reason": "seq", "channel": "orderbook_delta", "expected": 5, "got": 9,
        "from": "2025-11-25T16:19:59.999000Z", "to": "2025-11-25T16:19:59.999000Z"}]
    assert manifest["coverage"][ETH]["gaps"] == []
    assert manifest["coverage"][BTC]["http_records"] == 1
    assert manifest["coverage"]["BRTI"]["seconds"] == 3
    assert manifest["index_gaps"][0] == {"index": "BRTI", "from": "2025-11-25T16:10:02Z",
                                         "to": "2025-11-25T16:10:05Z", "seconds": 3}
    # ETH: silent from 16:10 to its book at 16:11 is under a minute; after 16:12, 8 minutes
    assert manifest["coverage"][ETH]["silences"] == [["2025-11-25T16:12:00Z",
                                                      "2025-11-25T16:20:00Z"]]
    info = home.rec("record", "info", str(out))
    assert info.returncode == 0 and BTC in info.stdout and "index gaps: " in info.stdout
    assert "market gaps: 1" in info.stdout and "seq 5 expected, 9 received" in info.stdout

    eth = tmp_path / "eth.parquet"
    r = export(home, eth, "--series", "KXETHD")
    assert r.returncode == 0, r.stderr
    assert duckdb.sql(f"SELECT DISTINCT ticker FROM '{eth}' WHERE ticker IS NOT NULL"
                      ).fetchall() == [(ETH,)]
    assert schema.read_manifest(str(eth))["series"] == ["KXETHD"]


def test_import_twice_then_export_gives_the_same_rows(two_dbs, tmp_path):
    home, other = two_dbs
    first, again = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert export(home, first).returncode == 0
    r = home.rec("record", "import", str(first), env=other)
    assert r.returncode == 0, r.stderr
    assert '"feed_log records": 9' in r.stdout and '"index_ticks": 3' in r.stdout
    r = home.rec("record", "import", str(first), env=other)
    assert r.returncode == 0 and "nothing new" in r.stdout, r.stdout + r.stderr
    r = export(home, again, env=other)
    assert r.returncode == 0, r.stderr
    assert pq.read_table(again).to_pylist() == pq.read_table(first).to_pylist()
    a, b = schema.read_manifest(str(first)), schema.read_manifest(str(again))
    for key in ("coverage", "index_gaps", "counts", "window", "rows"):
        assert a[key] == b[key], key
    # the imported history is rec's own again: its decoder rebuilds the book
    with psycopg.connect(home.db.dsn.replace(home.env["REC_DB_NAME"], other["REC_DB_NAME"])
                         ) as conn:
        (mid,) = conn.execute("SELECT id FROM feed_market_ids WHERE ticker = %s",
                              (BTC,)).fetchone()
        blobs = [feed_log.segment_bytes(bytes(d)) for (d,) in conn.execute(
            "SELECT data FROM feed_log WHERE market = %s", (mid,))]
    recs = [r for blob in blobs for r in feed_log.records(blob)]
    assert feed_log.replay(recs) == ({D("0.41"): D("3"), D("0.4"): D("10"),
                                      D("0.43"): D("4")}, {})


def test_bad_windows_and_files_are_refused_with_the_reason(two_dbs, tmp_path):
    home, _ = two_dbs
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "x.parquet"
    r = export(home, out, start="2025-11-25T16:20:00Z", end="2025-11-25T16:10:00Z")
    assert r.returncode == 2 and "is not before --to" in r.stderr
    r = export(home, out, start="2020-01-01", end="2020-01-02")
    assert r.returncode == 1 and "nothing recorded between 2020-01-01" in r.stderr
    assert list(out.parent.iterdir()) == []  # no file, no partial one
    r = export(home, out, "--series", "NOPE")
    assert r.returncode == 1 and "for series NOPE" in r.stderr

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    r = home.rec("record", "import", str(text))
    assert r.returncode == 2 and "not a readable Parquet file" in r.stderr
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"a": [1]}), plain)
    r = home.rec("record", "info", str(plain))
    assert r.returncode == 2 and "no rec manifest" in r.stderr
    future = tmp_path / "future.parquet"
    pq.write_table(pa.table({"a": [1]}), future)
    meta = {"format": schema.FORMAT, "format_version": 99, "rec_version": "9.0"}
    with pq.ParquetWriter(future, pa.schema([("a", pa.int64())])) as w:
        w.write_table(pa.table({"a": [1]}))
        w.add_key_value_metadata({schema.MANIFEST_KEY: json.dumps(meta).encode()})
    r = home.rec("record", "import", str(future))
    assert r.returncode == 2 and "format version 99" in r.stderr, r.stderr
