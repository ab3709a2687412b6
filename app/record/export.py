"""``rec record export``: a window of what rec stored, as one recording file
(:mod:`app.record.schema`).

Reads, in one REPEATABLE READ snapshot (a compaction meanwhile cannot hide or repeat a
record): the markets of the window (``markets``, by series; a market is in the window when
its open/close span meets it) with their ``market_status_log``, each market's
``feed_log`` history through rec's own decoder (sealed segments, open chunks and hot
batches alike), ``index_ticks`` and ``index_prices``. The window is [from, to) on each
record's own time. Written to a temporary name beside the target and renamed at the end:
never a partial file.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

import app
from app.db import feed_log
from app.record import schema

ROW_GROUP = 100_000
PROGRESS_EVERY = 50  # segments
SILENCE_SEC = 60.0  # a market with no record for longer: listed as a silence in the manifest
KIND_NAMES = {feed_log.BOOK: "book", feed_log.LEVEL: "level", feed_log.TICK: "tick",
              feed_log.TRADE: "trade", feed_log.GAP: "gap"}
TICK_FIELDS = ("yes_bid", "yes_ask", "yes_bid_size", "yes_ask_size", "last_price", "volume",
               "open_interest")


class NothingRecorded(Exception):
    pass


@dataclass
class Window:
    start: datetime
    end: datetime
    series: list[str] = field(default_factory=list)

    @property
    def ms(self) -> tuple[int, int]:
        return int(self.start.timestamp() * 1000), int(self.end.timestamp() * 1000)


def record_row(r: feed_log.Record, ticker: str, series: str, seq: int) -> dict[str, Any]:
    """A decoded feed_log record as a file row."""
    row: dict[str, Any] = {"kind": KIND_NAMES[r.kind], "ts": r.ms, "ticker": ticker,
                           "series": series, "seq": seq, "http": r.http,
                           "exchange_ts": r.exchange_ms, "exchange_seq": r.seq,
                           "sending_ms": r.sending_ms,
                           "received_at": None if r.received_ms is None
                           else datetime.fromtimestamp(r.received_ms / 1000, UTC)}
    if r.kind == feed_log.GAP:
        g = r.data
        row.update(gap_reason=g["reason"], channel=g["channel"], expected_seq=g["expected"],
                   got_seq=g["got"], gap_from=g["since_ms"], http=None)
    elif r.kind == feed_log.LEVEL:
        row["side"], row["price"], row["size"] = r.data
    elif r.kind == feed_log.TICK:
        row.update(zip(TICK_FIELDS, r.data, strict=True))
    elif r.kind == feed_log.TRADE:
        row.update(price=r.data["yes_price"], size=r.data["count"],
                   taker_side=r.data["taker_outcome_side"], trade_id=r.data["trade_id"])
    else:
        row["yes_book"], row["no_book"] = (
            [{"price": p, "size": q} for p, q in sorted(side.items(), reverse=True)]
            for side in r.data)
    return row


class Sink:
    """Rows into the temporary file, a row group at a time."""

    def __init__(self, path: Path) -> None:
        self.writer = pq.ParquetWriter(path, schema.SCHEMA, **schema.WRITE_OPTIONS)
        self.rows: list[dict[str, Any]] = []
        self.count = 0
        self.kinds: Counter[str] = Counter()

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.kinds[row["kind"]] += 1
        if len(self.rows) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=schema.SCHEMA))
            self.count += len(self.rows)
            self.rows = []

    def close(self, manifest: dict[str, Any]) -> None:
        self.flush()
        self.writer.add_key_value_metadata(schema.metadata(manifest))
        self.writer.close()


def _silences(times: list[int], lo: int, hi: int, gap_ms: int) -> list[list[int]]:
    """Stretches longer than ``gap_ms`` with no record (window edges included)."""
    out, prev = [], lo
    for t in [*times, hi]:
        if t - prev > gap_ms:
            out.append([prev, t])
        prev = max(prev, t)
    return out


def hot_parts(conn: psycopg.Connection) -> list[dict]:
    """The uncompacted batches, split per market."""
    return [feed_log.split(bytes(d)) for (d,) in conn.execute(
        "SELECT data FROM feed_log_hot ORDER BY id")]


def stored(conn: psycopg.Connection, market: int, hot: list[dict]
           ) -> tuple[list[feed_log.Record], int]:
    """One market's records as stored, oldest first, through rec's decoder (sealed
    segments, open chunks, then the hot batches ``hot_parts`` gave), and how many segments
    and chunks that read."""
    blobs = [feed_log.segment_bytes(bytes(d)) for (d,) in conn.execute(
        "SELECT data FROM (SELECT 0 AS w, id, data FROM feed_log WHERE market = %s "
        "UNION ALL SELECT 1, id, data FROM feed_log_open WHERE market = %s) s "
        "ORDER BY w, id", (market, market))]
    n = len(blobs)
    blobs += [bytes(part[market][0]) for part in hot if market in part]
    return [r for blob in blobs for r in feed_log.records(blob)], n


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


class Exporter:
    def __init__(self, conn: psycopg.Connection, window: Window,
                 progress: Callable[[str], None]) -> None:
        self.conn, self.window, self.progress = conn, window, progress
        self.lo, self.hi = window.ms
        self.segments = 0
        self.coverage: dict[str, dict[str, Any]] = {}
        self.gaps: list[dict[str, Any]] = []

    def markets(self) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT f.id AS market, m.ticker, coalesce(m.series_ticker, "
            "split_part(m.ticker, '-', 1)) AS series, m.event_ticker, m.title, m.status, "
            "m.strike_type, m.floor_strike, m.cap_strike, m.open_time, m.close_time, "
            "m.expiration_time, m.result, m.price_level_structure, m.raw::text AS raw, "
            "m.settlement_value, m.determined_at, m.settled_at, "
            "m.updated_at FROM markets m LEFT JOIN feed_market_ids f USING (ticker) "
            "WHERE (m.open_time IS NULL OR m.open_time < %(hi)s) "
            "AND (m.close_time IS NULL OR m.close_time >= %(lo)s) "
            "AND (cardinality(%(series)s::text[]) = 0 OR coalesce(m.series_ticker, "
            "split_part(m.ticker, '-', 1)) = ANY(%(series)s)) ORDER BY m.ticker",
            {"lo": self.window.start, "hi": self.window.end, "series": self.window.series})
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def write(self, sink: Sink) -> None:
        markets = self.markets()
        hot = hot_parts(self.conn)
        for m in markets:
            sink.add({"kind": "market", "ts": m["updated_at"], "ticker": m["ticker"],
                      **{k: m[k] for k in schema.MARKET_COLUMNS}})
            for status, result, at in self.conn.execute(
                    "SELECT status, result, at FROM market_status_log WHERE ticker = %s "
                    "ORDER BY at", (m["ticker"],)):
                sink.add({"kind": "status", "ts": at, "ticker": m["ticker"],
                          "series": m["series"], "status": status, "result": result})
        self.index_rows(sink)
        for m in markets:
            if m["market"] is not None:
                self.market_rows(sink, m, hot)

    def index_rows(self, sink: Sink) -> None:
        args = (self.window.start, self.window.end)
        for name, ts, value, channel, sending, received in self.conn.execute(
                "SELECT index_name, ts, value, channel, sending_ms, received_at FROM "
                "index_ticks WHERE ts >= %s AND ts < %s ORDER BY index_name, ts", args):
            sink.add({"kind": "index_tick", "ts": ts, "index_name": name, "value": value,
                      "channel": channel, "sending_ms": sending, "received_at": received})
        per: dict[str, list[int]] = {}
        for name, ts, price, *stats, received in self.conn.execute(
                f"SELECT index_name, ts, price, {', '.join(schema.INDEX_STATS)}, received_at "
                "FROM index_prices WHERE ts >= %s AND ts < %s ORDER BY index_name, ts", args):
            sink.add({"kind": "index_second", "ts": ts, "index_name": name, "value": price,
                      **dict(zip(schema.INDEX_STATS, stats, strict=True)),
                      "received_at": received})
            per.setdefault(name, []).append(int(ts.timestamp()))
        for name, seconds in per.items():  # seconds with no value, as runs
            lo, hi = -(-self.lo // 1000), -(-self.hi // 1000) - 1
            got = set(seconds)
            run: list[int] = []
            for s in range(lo, hi + 1):
                if s not in got:
                    run.append(s)
                if run and (s in got or s == hi):
                    self.gaps.append({"index": name, "from": _iso(run[0] * 1000),
                                      "to": _iso((run[-1] + 1) * 1000),
                                      "seconds": len(run)})
                    run = []
            self.coverage[name] = {"kind": "index", "seconds": len(seconds),
                                   "first": _iso(seconds[0] * 1000),
                                   "last": _iso(seconds[-1] * 1000)}

    def stored(self, market: int, hot: list[dict]) -> list[feed_log.Record]:
        before = self.segments
        recs, n = stored(self.conn, market, hot)
        self.segments += n
        if self.segments // PROGRESS_EVERY != before // PROGRESS_EVERY:
            self.progress(f"{self.segments} segments read")
        return recs

    def market_rows(self, sink: Sink, m: dict[str, Any], hot: list[dict]) -> None:
        recs = self.stored(m["market"], hot)
        before = [r for r in recs if r.ms < self.lo]
        inside = [r for r in recs if self.lo <= r.ms < self.hi]
        book = feed_log.replay(before)
        seq = 0
        if book is not None:  # the book as stored at the window's start
            start = feed_log.Record(feed_log.BOOK, m["market"], self.lo, False, book,
                                    received_ms=self.lo)  # as an imported one reads
            inside.insert(0, start)
        if not inside:
            return
        for r in inside:
            sink.add(record_row(r, m["ticker"], m["series"], seq))
            seq += 1
        kinds = Counter(KIND_NAMES[r.kind] for r in inside)
        times = [r.ms for r in inside]
        self.coverage[m["ticker"]] = {
            "kind": "market", "first": _iso(times[0]), "last": _iso(max(times)),
            "records": dict(sorted(kinds.items())),
            "http_records": sum(r.http for r in inside),
            "gaps": [gap_entry(r) for r in inside if r.kind == feed_log.GAP],
            "silences": [[_iso(a), _iso(b)] for a, b in
                         _silences(times, self.lo, self.hi, int(SILENCE_SEC * 1000))]}


def gap_entry(r: feed_log.Record) -> dict[str, Any]:
    """A GAP record as the manifest lists it."""
    g = r.data
    out = {"reason": g["reason"], "from": _iso(g["since_ms"]), "to": _iso(r.ms)}
    if g["reason"] == "seq":
        out.update(channel=g["channel"], expected=g["expected"], got=g["got"])
    return out


def export(dsn: str, window: Window, path: Path, progress: Callable[[str], None]
           ) -> dict[str, Any]:
    """Write ``window`` to ``path``; returns the manifest. NothingRecorded when the window
    holds no record (no file is left)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    sink = Sink(tmp)
    try:
        with psycopg.connect(dsn) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                ex = Exporter(conn, window, progress)
                ex.write(sink)
                dbname = conn.info.dbname
        k = sink.kinds
        books = k["book"] + k["level"] + k["tick"] + k["trade"]
        # the index alone is a recording, unless the series asked for have nothing
        if not books and (window.series or not k["index_tick"] + k["index_second"]):
            raise NothingRecorded(
                f"nothing recorded between {window.start.isoformat()} and "
                f"{window.end.isoformat()}"
                + (f" for series {','.join(window.series)}" if window.series else ""))
        manifest = {
            "format": schema.FORMAT, "format_version": schema.VERSION,
            "rec_version": app.__version__, "export_id": str(uuid.uuid4()),
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "source_host": socket.gethostname(), "source_database": dbname,
            "window": {"from": _iso(ex.lo), "to": _iso(ex.hi)},
            "series": sorted({c for c in window.series}) or "all",
            "rows": sink.count + len(sink.rows), "counts": dict(sorted(sink.kinds.items())),
            "coverage": ex.coverage, "index_gaps": ex.gaps, "silence_sec": SILENCE_SEC,
            "segments_read": ex.segments,
        }
        sink.close(manifest)
        os.replace(tmp, path)
        return manifest
    finally:
        if tmp.exists():
            sink.writer.close()
            tmp.unlink()


def describe(manifest: dict[str, Any]) -> list[str]:
    """The manifest as lines a person reads (``rec record info``)."""
    w = manifest["window"]
    series = manifest["series"]
    lines = [f"{manifest['format']} v{manifest['format_version']} written by rec "
             f"{manifest['rec_version']} on {manifest['source_host']} "
             f"({manifest['source_database']}) at {manifest['created_at']}",
             f"window {w['from']} .. {w['to']}; series "
             f"{series if isinstance(series, str) else ','.join(series)}",
             f"{manifest['rows']} rows: " + ", ".join(
                 f"{n} {k}" for k, n in manifest["counts"].items())]
    for name, c in manifest["coverage"].items():
        if c["kind"] == "index":
            lines.append(f"  {name:<28} index {c['first']} .. {c['last']}, {c['seconds']} s")
        else:
            recs = " ".join(f"{k}={n}" for k, n in c["records"].items())
            lines.append(f"  {name:<28} {c['first']} .. {c['last']}  {recs}"
                         + (f"  http={c['http_records']}" if c["http_records"] else "")
                         + (f"  gaps={len(c['gaps'])}" if c.get("gaps") else "")
                         + (f"  silences={len(c['silences'])}" if c["silences"] else ""))
    market_gaps = [(name, g) for name, c in manifest["coverage"].items()
                   for g in c.get("gaps", ())]  # (version 1: none listed)
    if manifest["format_version"] >= 2:
        lines.append(f"market gaps: {len(market_gaps)}" + "".join(
            f"\n  {name} {g['reason']} {g['from']} .. {g['to']}"
            + (f" ({g['channel']} seq {g['expected']} expected, {g['got']} received)"
               if g["reason"] == "seq" else "") for name, g in market_gaps[:20]))
    gaps = manifest["index_gaps"]
    lines.append(f"index gaps: {len(gaps)}" + "".join(
        f"\n  {g['index']} {g['from']} .. {g['to']} ({g['seconds']} s)" for g in gaps[:20]))
    return lines


def dumps(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True)
