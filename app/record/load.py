"""``rec record import``: a recording into this installation's tables, in one transaction.

Markets (``markets``, ``market_status_log``) and index rows (``index_ticks``,
``index_prices``) go in by their keys, existing rows kept. Each market's records are encoded
back into rec's packed form under this installation's id of the ticker
(``feed_market_ids``) and appended as one sealed ``feed_log`` segment, minus the records the
market's history here already holds (compared as encoded records, counted): importing a
file twice, or a window that overlaps what is stored, adds nothing twice.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pyarrow.parquet as pq

from app.db import feed_log
from app.record import export, schema

KINDS = {"book": feed_log.BOOK, "level": feed_log.LEVEL, "tick": feed_log.TICK,
         "trade": feed_log.TRADE, "gap": feed_log.GAP}
GAP_REASONS = {v: k for k, v in feed_log.GAP_REASONS.items()}  # (reason, channel) -> byte


MARKET_ROW = ("ticker", *schema.MARKET_COLUMNS)
INSERT_MARKET = (
    f"INSERT INTO markets (ticker, {', '.join(schema.MARKET_COLUMNS)}, updated_at) "
    f"VALUES ({', '.join(['%s'] * (len(MARKET_ROW) + 1))}) ON CONFLICT (ticker) DO NOTHING"
).replace(" series,", " series_ticker,")


def _exact(kind: int, row: dict[str, Any]) -> tuple | None:
    """A version-2 row's seq, other clock and send time (:func:`feed_log.exact`), or None
    when it has none (version 1, REST polling, a record stored before migration 018)."""
    other = row.get("exchange_ts") if kind in (feed_log.LEVEL, feed_log.BOOK) else \
        row.get("received_at")
    ex = (row.get("exchange_seq"), None if other is None else _ms(other), row.get("sending_ms"))
    return None if ex == (None, None, None) else ex


def encode(kind: int, market: int, ms: int, http: bool, row: dict[str, Any]) -> bytes:
    """One record in rec's packed form (:mod:`app.db.feed_log`)."""
    ex = _exact(kind, row)
    if kind == feed_log.LEVEL:
        out = feed_log.level(market, ms, row["side"], row["price"], row["size"], ex=ex)
    elif kind == feed_log.TICK:
        out = feed_log.tick(market, ms, tuple(row[k] for k in (
            "yes_bid", "yes_ask", "yes_bid_size", "yes_ask_size", "last_price", "volume",
            "open_interest")), ex=ex)
    elif kind == feed_log.TRADE:
        if row.get("trade_id"):
            out = feed_log.trade_with_id(market, ms, row["trade_id"], row["price"],
                                         row["size"], row["taker_side"])
        else:
            out = feed_log.trade(market, ms, row["price"], row["size"], row["taker_side"],
                                 ex=ex)
    elif kind == feed_log.GAP:
        return feed_log.gap(market, ms, GAP_REASONS[(row["gap_reason"], row["channel"])],
                            row["expected_seq"], row["got_seq"], _ms(row["gap_from"]))
    else:
        out = feed_log.book(market, ms, {lv["price"]: lv["size"] for lv in row["yes_book"]},
                            {lv["price"]: lv["size"] for lv in row["no_book"]}, ex=ex)
    return bytes([out[0] | feed_log.HTTP]) + out[1:] if http else out


def encode_record(r: feed_log.Record) -> bytes:
    """A decoded record packed again (what this installation holds, to compare)."""
    return encode(r.kind, r.market, r.ms, r.http, export.record_row(r, "", "", 0))


def rows(path: str) -> Iterator[dict[str, Any]]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=50_000):
        yield from batch.to_pylist()


def _ms(ts: Any) -> int:
    return ts if type(ts) is int else round(ts.timestamp() * 1000)


def _market(row: dict[str, Any]) -> tuple:
    values = [row.get(c) for c in MARKET_ROW]  # (version 1: no lifecycle columns)
    values[MARKET_ROW.index("raw")] = row["raw"] or "{}"
    return (*values, row["ts"])


INSERT_STATUS = (
    "INSERT INTO market_status_log (ticker, status, result, at) SELECT %(t)s, %(s)s, %(r)s, "
    "%(at)s WHERE NOT EXISTS (SELECT 1 FROM market_status_log WHERE ticker = %(t)s AND "
    "status = %(s)s AND result IS NOT DISTINCT FROM %(r)s AND at = %(at)s)")
INSERT_INDEX_TICK = (
    "INSERT INTO index_ticks (index_name, ts, value, channel, sending_ms, received_at) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING")
INSERT_INDEX_SECOND = (
    f"INSERT INTO index_prices (index_name, ts, price, {', '.join(schema.INDEX_STATS)}, "
    f"received_at) VALUES ({', '.join(['%s'] * (len(schema.INDEX_STATS) + 4))}) "
    "ON CONFLICT DO NOTHING")

# kind -> (table, statement, its parameters from a row)
TABLES: dict[str, tuple[str, str, Callable[[dict[str, Any]], Any]]] = {
    "market": ("markets", INSERT_MARKET, _market),
    "status": ("market_status_log", INSERT_STATUS,
               lambda r: {"t": r["ticker"], "s": r["status"], "r": r["result"], "at": r["ts"]}),
    "index_tick": ("index_ticks", INSERT_INDEX_TICK,
                   lambda r: (r["index_name"], r["ts"], r["value"], r["channel"],
                              r["sending_ms"], r["received_at"])),
    "index_second": ("index_prices", INSERT_INDEX_SECOND,
                     lambda r: (r["index_name"], r["ts"], r["value"],
                                *(r[k] for k in schema.INDEX_STATS), r["received_at"])),
}
BATCH = 5_000


def load(dsn: str, path: str, progress: Callable[[str], None]) -> dict[str, int]:
    """Import ``path``; returns what was added per table."""
    schema.read_manifest(path)  # refuses what this rec cannot read
    added: Counter[str] = Counter()
    per_market: dict[str, list[dict[str, Any]]] = {}
    pending: dict[str, list] = {kind: [] for kind in TABLES}

    def flush(kind: str) -> None:
        table, statement, _ = TABLES[kind]
        with conn.cursor() as cur:
            cur.executemany(statement, pending[kind])
            added[table] += max(cur.rowcount, 0)
        pending[kind] = []

    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute("SET LOCAL rec.importing = 'on'")  # the file's status log, not a new one
        for row in rows(path):
            kind = row["kind"]
            if kind in KINDS:
                per_market.setdefault(row["ticker"], []).append(row)
                continue
            pending[kind].append(TABLES[kind][2](row))
            if len(pending[kind]) >= BATCH:
                flush(kind)
        for kind in TABLES:
            flush(kind)
        ids = _market_ids(conn, list(per_market))
        hot = export.hot_parts(conn)
        for n, (ticker, recs) in enumerate(sorted(per_market.items()), 1):
            added["feed_log records"] += _records(conn, ids[ticker], recs, hot)
            if n % 20 == 0:
                progress(f"{n}/{len(per_market)} markets")
    return {k: v for k, v in added.items() if v}


def _records(conn: psycopg.Connection, market: int, recs: list[dict[str, Any]],
             hot: list[dict]) -> int:
    """A market's rows of the file as one sealed segment, minus what is stored already."""
    have = Counter(encode_record(r) for r in export.stored(conn, market, hot)[0])
    new = []
    for row in sorted(recs, key=lambda r: r["seq"]):
        b = encode(KINDS[row["kind"]], market, _ms(row["ts"]), bool(row["http"]), row)
        if have[b]:
            have[b] -= 1
        else:
            new.append(b)
    if new:
        conn.execute("INSERT INTO feed_log (market, t0, t1, sealed, data) VALUES "
                     "(%s, now(), now(), true, %s)", (market, feed_log.pack_segment(b"".join(new))))
    return len(new)


def _market_ids(conn: psycopg.Connection, tickers: list[str]) -> dict[str, int]:
    conn.execute("INSERT INTO feed_market_ids (ticker) SELECT unnest(%s::text[]) "
                 "ON CONFLICT (ticker) DO NOTHING", (tickers,))
    return dict(conn.execute("SELECT ticker, id FROM feed_market_ids WHERE ticker = ANY(%s)",
                             (tickers,)).fetchall())


def dumps(added: dict[str, int]) -> str:
    return json.dumps(added, sort_keys=True)
