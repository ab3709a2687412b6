"""rec-market-feed's history as compact binary records (written by the feed, read by
rec-web and the tests).

Every change the feed stores is one fixed-layout record (little-endian ``struct``), tagged
with the market's integer id (``feed_market_ids``) and a time in epoch milliseconds:

=========  =====================================================================================
LEVEL      a book level's new size (0: gone): side, price, size
TICK       ticker values that changed: yes bid/ask and their sizes, last price, volume, OI
TRADE      a public trade: exchange time, price, count, taker side (written without the
           exchange's trade id: see below)
BOOK       a full book (the first one, a resync, every snapshot interval): yes then no levels
GAP        market data lost: a sequence gap (the seq expected and the one received) or a
           WebSocket outage (disconnect and reconnect times); written before the resync's BOOK
=========  =====================================================================================

Since migration 018 the feed writes every LEVEL, BOOK, TICK and TRADE it takes from the
WebSocket with ``EXACT`` set in the kind byte and three more fields after the record
(``_EXACT``): the exchange's ``seq`` of the message, the record's other clock as a step from
its time (LEVEL and BOOK: their time is rec's receive time, the step gives the delta's
``ts_ms``; TICK and TRADE: their time is the exchange's, the step gives rec's receive time),
and the venue's send time ``sending_ts_ms`` as a step from the exchange's time (from the
record's time when the exchange's is not known). A LEVEL nets the
deltas of its level within one batch: it keeps the last delta's seq and times. Records
without ``EXACT`` (REST polling, everything stored before) decode as before, the missing
fields None.

Prices are integers in $0.0001 (Kalshi's tapered markets quote sub-cent prices), sizes and
counts integers in 1/100 contract (Kalshi's ``_fp`` counts). A record's kind carries ``HTTP``
when it came from REST polling.

Public trades are stored without the exchange's trade id (``NOID`` set in the kind byte).
The id is a random 16-byte UUID that does not compress: it was a third of the stored history
(issue 11), and nothing reads it after the feed's de-duplication of a trade seen twice, which
needs only the last minutes (:class:`app.services.market_feed.store.Tracker` keeps those ids
in memory). Trades stored before migration 010 keep their id and still decode with it.

Each committed batch is one ``feed_log_hot`` row (the batch's records, all markets); the
compactor (:func:`compact`) moves those rows on, append-only: per market and compaction one
small ``feed_log_open`` chunk, never rewritten; every ``segment_sec`` (by the time they were
stored, each market at its own phase) a market's chunks are merged into one sealed
``feed_log`` segment and deleted (the space they leave is reused by the next chunks, where
rewriting a growing segment every compaction left a dead copy of it each time). Chunks and
segments are stored by column and LZMA-compressed.

A book at any time is the last BOOK record before it with the LEVEL records after it
applied (:func:`book_at`).
"""

from __future__ import annotations

import asyncio
import lzma
import struct
import uuid
import zlib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

LEVEL, TICK, TRADE, BOOK, GAP = 1, 2, 3, 4, 5
HTTP = 0x80
NOID = 0x40  # a TRADE without the exchange's trade id (written since migration 010)
EXACT = 0x20  # followed by _EXACT: seq, the other clock, the send time (since migration 018)
KIND = 0x1F

# a GAP's reason byte: (reason, channel)
GAP_SEQ_BOOK, GAP_SEQ_TRADE, GAP_OUTAGE = 1, 2, 3
GAP_REASONS = {GAP_SEQ_BOOK: ("seq", "orderbook_delta"), GAP_SEQ_TRADE: ("seq", "trade"),
               GAP_OUTAGE: ("outage", None)}

NONE16, NONE32, NONE64 = 0xFFFF, 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF
NONE_STEP = -(1 << 63)  # a step of _EXACT that is not known
SIDES = ("yes", "no")
TAKER = (None, "yes", "no")

_LEVEL = struct.Struct("<BIqBHI")  # kind, market, ms, side, price, size
_TICK = struct.Struct("<BIqHHIIHQQ")  # kind, market, ms, bid, ask, sizes, last, volume, OI
_TRADE = struct.Struct("<BIqHIBB")  # kind, market, ms, price, count, taker, id length (0: uuid)
_BOOK = struct.Struct("<BIqHH")  # kind, market, ms, yes levels, no levels
_PAIR = struct.Struct("<HI")
_HEAD = struct.Struct("<BIq")
# seq (NONE64: none), the other time and the send time as steps (64 bits: a simulator's or a
# replay's exchange clock may be far from rec's)
_EXACT = struct.Struct("<Qqq")
_LEVEL_WS = struct.Struct("<BIqBHIQqq")  # a LEVEL and its _EXACT fields, packed at once
_GAP = struct.Struct("<BIqBQQq")  # kind, market, ms, reason, expected seq, got seq, since ms
RAW, ZLIB, COLUMNS, LZMA1, LZMA = 0, 1, 2, 3, 4  # the first byte of a feed_log segment
# LZMA segments: by column, then raw LZMA2 (no container: a segment is a few kB); about a
# fifth smaller than zlib on the feed's columns (LZMA1 written since migration 010; LZMA,
# with the columns of EXACT and GAP records, since migration 018)
# (a 1 MiB dictionary: a segment is smaller, and preset 9's 64 MiB costs time and memory)
_LZMA = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 20,
          "lc": 0, "pb": 0}]


def price_units(p: Decimal) -> int:
    return int(p * 10_000)


def size_units(q: Decimal) -> int:
    return int(q * 100)


def _p(p: Decimal | None) -> int:
    return NONE16 if p is None else int(p * 10_000)


def _q(q: Decimal | None, none: int) -> int:
    return none if q is None else int(q * 100)


def _dp(v: int) -> Decimal | None:
    return None if v == NONE16 else Decimal(v).scaleb(-4)


def _dq(v: int, none: int) -> Decimal | None:
    return None if v == none else Decimal(v).scaleb(-2)


# ---- encoding (the feed's hot path) ------------------------------------------------------------

def _step(v: int | None, ms: int) -> int:
    """``v`` as a step from ``ms`` (an _EXACT field); NONE_STEP when unknown."""
    return NONE_STEP if v is None else v - ms


def exact(ms: int, seq: int | None, other: int | None, sending: int | None,
          exchange: int | None = None) -> bytes:
    """The _EXACT fields of a record of time ``ms``: the exchange's seq, the other clock
    (LEVEL, BOOK: the exchange's time, also given as ``exchange``; TICK, TRADE: rec's receive
    time) and the venue's send time, both in epoch ms. The send time is stored as a step
    from the exchange's time (``exchange``, else ``ms``): the venue sends as the change
    happens, so the step is mostly 0 or a few ms, and costs next to nothing compressed."""
    return _EXACT.pack(NONE64 if seq is None else seq, _step(other, ms),
                       _step(sending, ms if exchange is None else exchange))


def _flag(kind: int, http: bool, ex: tuple | None) -> int:
    return kind | (HTTP if http else 0) | (EXACT if ex is not None else 0)


def level(market: int, ms: int, side: str, price: Decimal, size: Decimal,
          http: bool = False, ex: tuple | None = None) -> bytes:
    """A LEVEL; ``ex``: (seq, the exchange's time, send time) of the delta (:func:`exact`)."""
    out = _LEVEL.pack(_flag(LEVEL, http, ex), market, ms, side != "yes",
                      int(price * 10_000), int(size * 100))
    return out if ex is None else out + exact(ms, *ex, ex[1])


def level_ws(market: int, ms: int, side: str, price: Decimal, size: Decimal,
             seq: int | None, ts: int | None, sent: int | None) -> bytes:
    """A LEVEL netted from WebSocket deltas, with the last one's seq, ``ts_ms`` and
    ``sending_ts_ms``: :func:`level` with ``ex``, in one pack (the feed's hot path)."""
    return _LEVEL_WS.pack(LEVEL | EXACT, market, ms, side != "yes", int(price * 10_000),
                          int(size * 100), NONE64 if seq is None else seq,
                          NONE_STEP if ts is None else ts - ms,
                          NONE_STEP if sent is None else sent - (ms if ts is None else ts))


def tick(market: int, ms: int, values: tuple, http: bool = False,
         ex: tuple | None = None) -> bytes:
    """A TICK at the exchange's time ``ms``; ``ex``: (None, rec's receive time, send time)."""
    bid, ask, bid_size, ask_size, last, volume, oi = values
    out = _TICK.pack(_flag(TICK, http, ex), market, ms, _p(bid), _p(ask),
                     _q(bid_size, NONE32), _q(ask_size, NONE32), _p(last),
                     _q(volume, NONE64), _q(oi, NONE64))
    return out if ex is None else out + exact(ms, *ex)


def trade(market: int, ms: int, price: Decimal, count: Decimal, taker: str | None,
          ex: tuple | None = None) -> bytes:
    """A public trade as stored: without the exchange's trade id; ``ex``: (seq, rec's
    receive time, send time)."""
    out = _TRADE.pack(_flag(TRADE | NOID, False, ex), market, ms, int(price * 10_000),
                      int(count * 100), TAKER.index(taker) if taker in TAKER else 0, 0)
    return out if ex is None else out + exact(ms, *ex)


def trade_with_id(market: int, ms: int, trade_id: str, price: Decimal, count: Decimal,
                  taker: str | None) -> bytes:
    """A public trade with its id, as stored before migration 010 (old segments hold these;
    the tests write them to check they still decode)."""
    try:
        raw = uuid.UUID(trade_id).bytes if len(trade_id) == 36 else None
    except ValueError:
        raw = None
    if raw is None:
        raw = trade_id.encode()[:255]
        n = len(raw)
    else:
        n = 0
    return _TRADE.pack(TRADE, market, ms, int(price * 10_000), int(count * 100),
                       TAKER.index(taker) if taker in TAKER else 0, n) + raw


def book(market: int, ms: int, yes: dict[Decimal, Decimal], no: dict[Decimal, Decimal],
         http: bool = False, ex: tuple | None = None) -> bytes:
    """A BOOK; ``ex``: (seq, the exchange's time, send time) of the snapshot."""
    parts = [_BOOK.pack(_flag(BOOK, http, ex), market, ms, len(yes), len(no))]
    for side in (yes, no):
        parts.extend(_PAIR.pack(int(p * 10_000), int(q * 100))
                     for p, q in sorted(side.items(), reverse=True))
    if ex is not None:
        parts.append(exact(ms, *ex, ex[1]))
    return b"".join(parts)


def gap(market: int, ms: int, reason: int, expected: int | None = None,
        got: int | None = None, since: int | None = None) -> bytes:
    """A GAP at ``ms`` (when the feed learned of it): a sequence gap (``reason``
    GAP_SEQ_BOOK / GAP_SEQ_TRADE, the seq expected and the one received) or an outage
    (GAP_OUTAGE: ``since`` the disconnect, ``ms`` the reconnect)."""
    return _GAP.pack(GAP, market, ms, reason, NONE64 if expected is None else expected,
                     NONE64 if got is None else got, ms if since is None else since)


# ---- decoding ------------------------------------------------------------------------------------

@dataclass(slots=True)
class Record:
    kind: int  # LEVEL | TICK | TRADE | BOOK | GAP
    market: int
    ms: int  # LEVEL, BOOK: rec's receive time; TICK, TRADE: the exchange's; GAP: see gap()
    http: bool
    data: Any  # LEVEL (side, price, size); TICK the 7 values; TRADE dict; BOOK (yes, no);
    # GAP dict (reason, channel, expected, got, since_ms)
    seq: int | None = None  # the exchange's seq of the message (EXACT records)
    exchange_ms: int | None = None  # the exchange's time (LEVEL, BOOK: EXACT records only)
    received_ms: int | None = None  # rec's receive time (TICK, TRADE: EXACT records only)
    sending_ms: int | None = None  # the venue's send time (EXACT records)

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.ms / 1000, UTC)


def _length(data: bytes | memoryview, i: int) -> int:
    """The size of the record at ``i``."""
    flag = data[i]
    kind = flag & KIND
    ext = _EXACT.size if flag & EXACT else 0
    if kind == LEVEL:
        return _LEVEL.size + ext
    if kind == TICK:
        return _TICK.size + ext
    if kind == TRADE:
        if flag & NOID:
            return _TRADE.size + ext
        n = data[i + _TRADE.size - 1]
        return _TRADE.size + (n or 16)
    if kind == BOOK:
        _, _, _, ny, nn = _BOOK.unpack_from(data, i)
        return _BOOK.size + (ny + nn) * _PAIR.size + ext
    if kind == GAP:
        return _GAP.size
    raise ValueError(f"feed log: unknown record kind {kind} at byte {i}")


def split(data: bytes) -> dict[int, tuple[bytearray, int, int]]:
    """Records per market: market -> (its records, first ms, last ms), in order."""
    out: dict[int, tuple[bytearray, int, int]] = {}
    i, end = 0, len(data)
    while i < end:
        n = _length(data, i)
        _, market, ms = _HEAD.unpack_from(data, i)
        got = out.get(market)
        if got is None:
            out[market] = (bytearray(data[i:i + n]), ms, ms)
        else:
            got[0].extend(data[i:i + n])
            out[market] = (got[0], min(got[1], ms), max(got[2], ms))
        i += n
    return out


def _exact_fields(r: Record, data: bytes | memoryview, i: int) -> None:
    """A record's _EXACT fields (at ``i``) onto it."""
    seq, other, sending = _EXACT.unpack_from(data, i)
    r.seq = None if seq == NONE64 else seq
    other_ms = None if other == NONE_STEP else r.ms + other
    if r.kind in (LEVEL, BOOK):
        r.exchange_ms = other_ms
    else:
        r.received_ms = other_ms
    base = r.ms if r.exchange_ms is None else r.exchange_ms
    r.sending_ms = None if sending == NONE_STEP else base + sending


def _base(data: bytes | memoryview, i: int, flag: int) -> tuple[Record, int]:
    """The record at ``i`` without its _EXACT fields, and where they (or the next) begin."""
    kind, http = flag & KIND, bool(flag & HTTP)
    if kind == LEVEL:
        _, m, ms, side, p, q = _LEVEL.unpack_from(data, i)
        return (Record(LEVEL, m, ms, http, (SIDES[side], _dp(p), Decimal(q).scaleb(-2)),
                       received_ms=ms), i + _LEVEL.size)
    if kind == TICK:
        _, m, ms, bid, ask, bs, as_, last, vol, oi = _TICK.unpack_from(data, i)
        return (Record(TICK, m, ms, http, (_dp(bid), _dp(ask), _dq(bs, NONE32),
                                           _dq(as_, NONE32), _dp(last), _dq(vol, NONE64),
                                           _dq(oi, NONE64)), exchange_ms=ms),
                i + _TICK.size)
    if kind == TRADE:
        _, m, ms, p, c, taker, n = _TRADE.unpack_from(data, i)
        i += _TRADE.size
        if flag & NOID:
            tid = None
        else:
            raw = bytes(data[i:i + (n or 16)])
            i += n or 16
            tid = str(uuid.UUID(bytes=raw)) if n == 0 else raw.decode()
        return (Record(TRADE, m, ms, http, {"trade_id": tid, "yes_price": _dp(p),
                                            "count": Decimal(c).scaleb(-2),
                                            "taker_outcome_side": TAKER[taker]},
                       exchange_ms=ms), i)
    if kind == BOOK:
        _, m, ms, ny, nn = _BOOK.unpack_from(data, i)
        i += _BOOK.size
        sides = []
        for n in (ny, nn):
            side = {}
            for _ in range(n):
                p, q = _PAIR.unpack_from(data, i)
                side[Decimal(p).scaleb(-4)] = Decimal(q).scaleb(-2)
                i += _PAIR.size
            sides.append(side)
        return Record(BOOK, m, ms, http, (sides[0], sides[1]), received_ms=ms), i
    if kind == GAP:
        _, m, ms, why, expected, got, since = _GAP.unpack_from(data, i)
        reason, channel = GAP_REASONS.get(why, ("unknown", None))
        return (Record(GAP, m, ms, False, {
            "reason": reason, "channel": channel,
            "expected": None if expected == NONE64 else expected,
            "got": None if got == NONE64 else got, "since_ms": since}), i + _GAP.size)
    raise ValueError(f"feed log: unknown record kind {kind} at byte {i}")


def records(data: bytes | memoryview) -> Iterator[Record]:
    i, end = 0, len(data)
    while i < end:
        flag = data[i]
        r, i = _base(data, i, flag)
        if flag & EXACT:
            _exact_fields(r, data, i)
            i += _EXACT.size
        yield r


def segment_bytes(blob: bytes) -> bytes:
    """A feed_log segment's records (stored raw, zlib-compressed, or by column)."""
    if blob[0] == LZMA:
        return _from_columns(lzma.decompress(blob[1:], lzma.FORMAT_RAW, filters=_LZMA),
                             len(_COLS))
    if blob[0] == LZMA1:
        return _from_columns(lzma.decompress(blob[1:], lzma.FORMAT_RAW, filters=_LZMA),
                             _OLD_COLS)
    if blob[0] == COLUMNS:
        return _from_columns(zlib.decompress(blob[1:]), _OLD_COLS)
    return zlib.decompress(blob[1:]) if blob[0] == ZLIB else blob[1:]


def pack_segment(raw: bytes, form: int = LZMA) -> bytes:
    """A segment as stored: by column (the same field of successive records side by side:
    time steps, prices, sizes), then LZMA, which the compactor writes (chunks and sealed
    segments alike); ZLIB (as it is), COLUMNS (by column, zlib) and LZMA1 (by column without
    the columns of EXACT and GAP records, LZMA) are the forms segments written before
    migrations 010 and 018 hold (kept to write old forms in the tests)."""
    if form == LZMA:
        return bytes([LZMA]) + lzma.compress(_to_columns(raw, len(_COLS)), lzma.FORMAT_RAW,
                                             filters=_LZMA)
    if form == LZMA1:
        return bytes([LZMA1]) + lzma.compress(_to_columns(raw, _OLD_COLS), lzma.FORMAT_RAW,
                                              filters=_LZMA)
    if form == COLUMNS:
        return bytes([COLUMNS]) + zlib.compress(_to_columns(raw, _OLD_COLS), 9)
    return bytes([ZLIB]) + zlib.compress(raw, 6)


# the columns of a sealed segment, in this order: record kinds, time steps, then per kind
# its fields (a BOOK's and a TRADE id's variable part as bytes); then (LZMA form only) the
# _EXACT fields of EXACT records and the fields of GAP records
_COLS = ("B", "q", "B", "H", "I", "H", "H", "I", "I", "H", "Q", "Q", "H", "I", "B", "B", "B",
         "B", "Q", "q", "q", "B", "Q", "Q", "q")
_OLD_COLS = 18  # the columns of the forms before migration 018


def _to_columns(raw: bytes, ncols: int) -> bytes:
    cols = [array(code) for code in _COLS]
    kinds, steps = cols[0], cols[1]
    lv, tk, tr = cols[2:5], cols[5:12], cols[12:16]
    tail, books = cols[16], cols[17]  # trade ids, book bodies (bytes)
    xc, gp = cols[18:21], cols[21:25]
    by_kind = {LEVEL: (_LEVEL, lv), TICK: (_TICK, tk), TRADE: (_TRADE, tr), GAP: (_GAP, gp)}
    prev = market = 0
    i, end = 0, len(raw)
    while i < end:
        n = _length(raw, i)
        flag, market, ms = _HEAD.unpack_from(raw, i)
        kinds.append(flag)
        steps.append(ms - prev)
        prev = ms
        kind = flag & KIND
        body = i + n - _EXACT.size if flag & EXACT else i + n
        fixed = by_kind.get(kind)
        if fixed is None:  # BOOK
            books.frombytes(raw[i + _HEAD.size:body])
        else:
            form, into = fixed
            for col, v in zip(into, form.unpack_from(raw, i)[3:], strict=True):
                col.append(v)
            if kind == TRADE:
                tail.frombytes(raw[i + _TRADE.size:body])
        if flag & EXACT:
            for col, v in zip(xc, _EXACT.unpack_from(raw, body), strict=True):
                col.append(v)
        i += n
    if any(cols[ncols:]):
        raise ValueError("feed log: EXACT and GAP records need the LZMA segment form")
    cols = cols[:ncols]
    for j in _DELTA:
        if j < ncols:
            _delta(cols[j])
    parts = [c.tobytes() for c in cols]
    return struct.pack(f"<I{len(parts)}I", market, *map(len, parts)) + b"".join(parts)


# the number columns stored as steps from the row before (modulo their width): volume, open
# interest, prices and sizes mostly move a little, and small steps compress well; so do the
# exchange's seqs
_DELTA = (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 18, 22, 23)


def _delta(col: array) -> None:
    mask, prev = (1 << (col.itemsize * 8)) - 1, 0
    for j, v in enumerate(col):
        col[j] = (v - prev) & mask
        prev = v


def _undelta(col: array) -> None:
    mask, prev = (1 << (col.itemsize * 8)) - 1, 0
    for j, v in enumerate(col):
        prev = (prev + v) & mask
        col[j] = prev


def _from_columns(data: bytes, ncols: int) -> bytes:
    head = struct.Struct(f"<I{ncols}I")
    market, *sizes = head.unpack_from(data)
    cols, i = [], head.size
    for code, size in zip(_COLS[:ncols], sizes, strict=True):
        col = array(code)
        col.frombytes(data[i:i + size])
        cols.append(col)
        i += size
    cols += [array(code) for code in _COLS[ncols:]]
    for j in _DELTA:
        _undelta(cols[j])
    kinds, steps = cols[0], cols[1]
    lv, tk, tr = cols[2:5], cols[5:12], cols[12:16]
    tail, books = bytes(cols[16]), bytes(cols[17])
    xc, gp = cols[18:21], cols[21:25]
    out = bytearray()
    ms = 0
    at = [0, 0, 0, 0, 0]  # next row of the LEVEL, TICK, TRADE, EXACT, GAP columns
    t_at = b_at = 0
    for flag, step in zip(kinds, steps, strict=True):
        ms += step
        kind = flag & KIND
        if kind == LEVEL:
            j = at[0]
            out += _LEVEL.pack(flag, market, ms, *(c[j] for c in lv))
            at[0] += 1
        elif kind == TICK:
            j = at[1]
            out += _TICK.pack(flag, market, ms, *(c[j] for c in tk))
            at[1] += 1
        elif kind == TRADE:
            j = at[2]
            n = 0 if flag & NOID else tr[3][j] or 16
            out += _TRADE.pack(flag, market, ms, *(c[j] for c in tr)) + tail[t_at:t_at + n]
            t_at += n
            at[2] += 1
        elif kind == GAP:
            j = at[4]
            out += _GAP.pack(flag, market, ms, *(c[j] for c in gp))
            at[4] += 1
        else:
            ny, nn = struct.unpack_from("<HH", books, b_at)
            n = 4 + (ny + nn) * _PAIR.size
            out += _HEAD.pack(flag, market, ms) + books[b_at:b_at + n]
            b_at += n
        if flag & EXACT:
            j = at[3]
            out += _EXACT.pack(*(c[j] for c in xc))
            at[3] += 1
    return bytes(out)


_PHI = 0.6180339887498949  # spreads the markets' segment boundaries (:func:`compact`)


# ---- the database side ---------------------------------------------------------------------------

async def market_ids(conn: Any, tickers: Iterable[str]) -> dict[str, int]:
    """The integer ids of ``tickers`` (made on first sight)."""
    tickers = list(tickers)
    await conn.execute("INSERT INTO feed_market_ids (ticker) SELECT unnest(%s::text[]) "
                       "ON CONFLICT (ticker) DO NOTHING", (tickers,))
    cur = await conn.execute("SELECT ticker, id FROM feed_market_ids WHERE ticker = ANY(%s)",
                             (tickers,))
    return dict(await cur.fetchall())


async def compact(conn: Any, segment_sec: float) -> tuple[int, int]:
    """Move the committed batches of ``feed_log_hot`` on (one transaction): per market one
    new ``feed_log_open`` chunk, or, at the market's segment boundary (every
    ``segment_sec``), its chunks and the new records as one sealed ``feed_log`` segment (the
    chunks deleted).
    Rows are only inserted and deleted, never rewritten. Returns (hot rows moved, rows
    written)."""
    async with conn.transaction():
        cur = await conn.execute("SELECT id, data FROM feed_log_hot ORDER BY id")
        hot = await cur.fetchall()
        if not hot:
            return 0, 0
        per: dict[int, bytearray] = {}
        for _, data in hot:
            for market, (recs, _, _) in split(data).items():
                got = per.get(market)
                if got is None:
                    per[market] = recs
                else:
                    got.extend(recs)
        # t0/t1: when a row's first and last batches were moved (the storage clock, which
        # retention and sealing go by; a record's own time is the exchange's)
        # a market's chunks are due at its segment boundary: every segment_sec, each market
        # at its own phase (its id times the golden ratio, modulo 1), so that the markets'
        # open chunks spread over the period instead of all growing until one common seal
        # (which doubled feed_log_open's high-water mark)
        cur = await conn.execute(
            "DELETE FROM feed_log_open WHERE market IN (SELECT market FROM feed_log_open "
            "GROUP BY market HAVING floor(extract(epoch FROM now()) / %(s)s + market * "
            "%(phi)s) > floor(extract(epoch FROM min(t0)) / %(s)s + market * %(phi)s)) "
            "RETURNING market, id, t0, data", {"s": segment_sec, "phi": _PHI})
        due: dict[int, list[tuple[int, datetime, bytes]]] = {}
        for market, id_, t0, data in await cur.fetchall():
            due.setdefault(market, []).append((id_, t0, data))
        for market, chunks in due.items():
            chunks.sort()
            raw = b"".join(segment_bytes(d) for _, _, d in chunks) + per.pop(market, b"")
            # packing (columns + LZMA at preset 9) off the event loop: the feed's consumer
            # shares it, and lzma releases the GIL
            packed = await asyncio.to_thread(pack_segment, raw)
            await conn.execute(
                "INSERT INTO feed_log (market, t0, t1, sealed, data) VALUES (%s, %s, now(), "
                "true, %s)", (market, chunks[0][1], packed))
        if per:
            markets = list(per)
            blobs = await asyncio.to_thread(
                lambda: [pack_segment(bytes(per[m])) for m in markets])
            await conn.execute(
                "INSERT INTO feed_log_open (market, t0, data) SELECT * FROM "
                "unnest(%s::int[], array_fill(now(), array[%s]), %s::bytea[])",
                (markets, len(markets), blobs))
        await conn.execute("DELETE FROM feed_log_hot WHERE id <= %s", (hot[-1][0],))
    return len(hot), len(due) + len(per)


async def market_records(conn: Any, ticker: str, since: datetime | None = None,
                         kinds: frozenset[int] | None = None) -> list[Record]:
    """The stored records of one market, oldest first (segments, then uncompacted batches)."""
    cur = await conn.execute("SELECT id FROM feed_market_ids WHERE ticker = %s", (ticker,))
    row = await cur.fetchone()
    if row is None:
        return []
    market = row[0]
    # one statement, one snapshot: a compaction in between cannot hide or repeat records
    cur = await conn.execute(
        "SELECT 0, id, data FROM feed_log WHERE market = %s AND (%s::timestamptz IS NULL OR "
        "t1 >= %s) UNION ALL SELECT 1, id, data FROM feed_log_open WHERE market = %s "
        "UNION ALL SELECT 2, id, data FROM feed_log_hot ORDER BY 1, 2",
        (market, since, since, market))
    since_ms = None if since is None else since.timestamp() * 1000
    out: list[Record] = []
    for where, _, blob in await cur.fetchall():
        if where == 2:  # a hot batch: every market's records
            part = split(blob).get(market)
            if part is None:
                continue
            blob = part[0]
        else:
            blob = segment_bytes(blob)
        for r in records(blob):
            if (kinds is None or r.kind in kinds) and (since_ms is None or r.ms >= since_ms):
                out.append(r)
    return out


def replay(recs: Iterable[Record]) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]] | None:
    """The book after ``recs``: the last BOOK with the LEVEL records after it (None: no BOOK)."""
    yes: dict[Decimal, Decimal] | None = None
    no: dict[Decimal, Decimal] = {}
    for r in recs:
        if r.kind == BOOK:
            yes, no = dict(r.data[0]), dict(r.data[1])
        elif r.kind == LEVEL and yes is not None:
            side, p, q = r.data
            levels = yes if side == "yes" else no
            if q:
                levels[p] = q
            else:
                levels.pop(p, None)
    return None if yes is None else (yes, no)


async def book_at(conn: Any, ticker: str, at: datetime | None = None
                  ) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]] | None:
    """The book of ``ticker`` as stored at ``at`` (default: the latest), from the log."""
    recs = await market_records(conn, ticker, kinds=frozenset((LEVEL, BOOK)))
    if at is not None:
        cut = at.timestamp() * 1000
        recs = [r for r in recs if r.ms <= cut]
    return replay(recs)
