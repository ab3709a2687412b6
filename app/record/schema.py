"""The recording file: one Parquet file, one row per event, a ``kind`` column and typed
columns (a column a kind does not use is null, which Parquet stores for almost nothing), the
manifest as JSON in the file's key-value metadata (key ``rec.manifest``).

Why one table: a replay merges every kind on one clock (``ORDER BY ts, seq``), a user
filters with ``WHERE kind = 'trade'``, and one file travels whole. Prices and sizes are
exact decimals (Parquet DECIMAL stored as integers: $0.0001 prices, 1/100 contracts), times
UTC timestamps in ms.

=================  ==========================================================================
kind               columns (besides ``kind``, ``ts``, ``ticker``, ``series``, ``seq``)
=================  ==========================================================================
``book``           ``yes_book``, ``no_book`` (lists of {price, size}, best first), ``http``
``level``          ``side``, ``price``, ``size`` (0: the level is gone), ``http``
``tick``           ``yes_bid``, ``yes_ask``, ``yes_bid_size``, ``yes_ask_size``,
                   ``last_price``, ``volume``, ``open_interest``, ``http``
``trade``          ``price`` (yes price), ``size`` (count), ``taker_side``, ``trade_id``
``gap``            market data lost: ``gap_reason`` (``seq``: ``expected_seq``, ``got_seq``
                   on ``channel``; ``outage``: the WebSocket down from ``gap_from`` to ``ts``)
``market``         the ``markets`` row: ``event_ticker``, ``title``, ``status``, ``result``,
                   ``strike_type``, ``floor_strike``, ``cap_strike``, ``open_time``,
                   ``close_time``, ``expiration_time``, ``price_level_structure``, ``raw``
                   (JSON), ``settlement_value``, ``determined_at``, ``settled_at`` (the
                   lifecycle message's); ``ts`` = when rec last updated it
``status``         ``status``, ``result``: a status the market took, ``ts`` when rec stored it
``index_tick``     ``index_name``, ``value``, ``channel``, ``sending_ms``, ``received_at``:
                   every value the index channel published
``index_second``   ``index_name``, ``value`` (the second's last value), ``avg_1m``, ``d1m``
                   ... ``d30m``, ``momentum``, ``received_at`` (``index_prices``)
=================  ==========================================================================

The four market kinds (version 2) also carry ``exchange_ts`` (the exchange's time: a
delta's or snapshot's ``ts_ms``, a ticker's or trade's time), ``received_at`` (rec's receive
time), ``exchange_seq`` (the message's ``seq`` on its subscription) and ``sending_ms`` (the
venue's send time, ``sending_ts_ms``); null where the record did not keep it (REST polling,
records stored before migration 018).

``seq`` orders a market's records as rec stored them (ties in ``ts`` keep that order); a
window that starts inside a market's history begins with a ``book`` at the window's start
(the book as stored then), so a reader needs nothing before the file.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

FORMAT = "rec-record"
VERSION = 2  # the file layout written; a reader refuses versions it does not know
READS = (1, 2)  # version 1: without the exchange_*, gap and lifecycle columns
MANIFEST_KEY = b"rec.manifest"

PRICE = pa.decimal128(10, 4)
SIZE = pa.decimal128(18, 2)
VALUE = pa.decimal128(20, 8)
STRIKE = pa.decimal128(20, 6)
MS = pa.timestamp("ms", tz="UTC")
US = pa.timestamp("us", tz="UTC")
LEVELS = pa.list_(pa.struct([("price", PRICE), ("size", SIZE)]))
TEXT = pa.dictionary(pa.int32(), pa.string())

SCHEMA = pa.schema([
    ("kind", TEXT), ("ts", MS), ("ticker", TEXT), ("series", TEXT), ("seq", pa.int64()),
    ("http", pa.bool_()),
    ("side", TEXT), ("price", PRICE), ("size", SIZE), ("taker_side", TEXT),
    ("trade_id", pa.string()),
    ("yes_bid", PRICE), ("yes_ask", PRICE), ("yes_bid_size", SIZE), ("yes_ask_size", SIZE),
    ("last_price", PRICE), ("volume", SIZE), ("open_interest", SIZE),
    ("yes_book", LEVELS), ("no_book", LEVELS),
    ("index_name", TEXT), ("value", VALUE), ("channel", TEXT), ("sending_ms", pa.int64()),
    ("received_at", US),
    ("avg_1m", VALUE), ("d1m", VALUE), ("d2m", VALUE), ("d3m", VALUE), ("d4m", VALUE),
    ("d15m", VALUE), ("d30m", VALUE), ("momentum", VALUE),
    ("event_ticker", pa.string()), ("title", pa.string()), ("status", TEXT),
    ("result", TEXT), ("strike_type", TEXT), ("floor_strike", STRIKE), ("cap_strike", STRIKE),
    ("open_time", US), ("close_time", US), ("expiration_time", US),
    ("price_level_structure", TEXT), ("raw", pa.string()),
    # version 2
    ("exchange_ts", MS), ("exchange_seq", pa.int64()),
    ("gap_reason", TEXT), ("gap_from", MS), ("expected_seq", pa.int64()),
    ("got_seq", pa.int64()),
    ("settlement_value", PRICE), ("determined_at", US), ("settled_at", US),
])
COLUMNS = SCHEMA.names
# how the file is written: times and counters as deltas (they mostly step a little), the
# other columns dictionary-encoded where that pays, zstd over all (level 15: a fifth smaller
# than pyarrow's defaults on the simulator's recording, at no cost that shows)
_DELTAS = ("ts", "seq", "sending_ms", "received_at", "exchange_ts", "exchange_seq")
WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd", "compression_level": 15, "store_decimal_as_integer": True,
    "use_dictionary": [c for c in SCHEMA.names if c not in _DELTAS],
    "column_encoding": dict.fromkeys(_DELTAS, "DELTA_BINARY_PACKED")}
INDEX_STATS = ("avg_1m", "d1m", "d2m", "d3m", "d4m", "d15m", "d30m", "momentum")
MARKET_COLUMNS = ("event_ticker", "series", "title", "status", "strike_type", "floor_strike",
                  "cap_strike", "open_time", "close_time", "expiration_time", "result",
                  "price_level_structure", "raw", "settlement_value", "determined_at",
                  "settled_at")


class BadFile(Exception):
    """A file this rec cannot read as a recording (the message says why)."""


def metadata(manifest: dict[str, Any]) -> dict[bytes, bytes]:
    return {MANIFEST_KEY: json.dumps(manifest, sort_keys=True).encode()}


def read_manifest(path: str) -> dict[str, Any]:
    """The manifest of the recording at ``path``; BadFile when it is none this rec reads."""
    try:
        meta = pq.read_metadata(path).metadata or {}
    except (OSError, pa.ArrowException) as exc:
        raise BadFile(f"{path}: not a readable Parquet file ({exc})") from None
    raw = meta.get(MANIFEST_KEY)
    if raw is None:
        raise BadFile(f"{path}: no rec manifest (key {MANIFEST_KEY.decode()}): not a recording "
                      "written by `rec record export`")
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise BadFile(f"{path}: the manifest is not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BadFile(f"{path}: manifest format {manifest.get('format')!r} is not {FORMAT!r}"
                      if isinstance(manifest, dict) else f"{path}: the manifest is no object")
    version = manifest.get("format_version")
    if version not in READS:
        raise BadFile(f"{path}: recording format version {version!r}; this rec "
                      f"({manifest.get('rec_version', '?')} wrote it) reads versions "
                      f"{', '.join(map(str, READS))} only: use a rec that knows it")
    return manifest
