"""A recording (`rec record export`'s Parquet file, docs/record.md) as the replay's input:
the markets it holds and its events in the order they happened, in the simulator's units
(prices $0.0001, sizes whole contracts, times ms).

Reads format version 1 and uses version 2's columns where a file has them (``exchange_ts``:
the exchange's time of a book change, preferred to rec's receive time); columns this reader
does not know are ignored. Events at one time keep the order rec stored them (``seq`` per
market, then the file's row order), so a replay of one file is always the same sequence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from app.record.schema import read_manifest
from app.sim.money import ONE

# event kinds, in the order they apply when they share a millisecond: a market opens
# before its first book, trades and books before it closes, closes before it settles
OPEN, BOOK, LEVEL, TRADE, INDEX, INDEX_SECOND, CLOSE, SETTLE = range(8)
MARKET_KINDS = {"book": BOOK, "level": LEVEL, "trade": TRADE}


@dataclass
class RecordedMarket:
    ticker: str
    event_ticker: str
    series: str
    title: str
    yes_sub_title: str
    no_sub_title: str
    strike_type: str
    floor_strike: float | None
    cap_strike: float | None
    open_ms: int
    close_ms: int
    result: str  # "yes" | "no" | "" (not determined within the recording)
    price_level_structure: str
    settle_delay_ms: int
    expiration_value: str


@dataclass
class Recording:
    start_ms: int
    end_ms: int
    markets: dict[str, RecordedMarket]
    # (ts_ms, kind, tie-break, payload); sorted
    events: list[tuple[int, int, int, Any]] = field(default_factory=list)

    @property
    def index_names(self) -> list[str]:
        return sorted({e[3][0] for e in self.events if e[1] in (INDEX, INDEX_SECOND)})


def _ms(col: pa.ChunkedArray) -> list[int | None]:
    return pc.cast(pc.cast(col, pa.timestamp("ms", tz="UTC")), pa.int64()).to_pylist()


def _units(col: pa.ChunkedArray, scale: int) -> list[int | None]:
    return [None if v is None else round(v * scale)
            for v in pc.cast(col, pa.float64()).to_pylist()]


def _levels(books: list | None) -> list[tuple[int, int]]:
    return [(round(float(lv["price"]) * ONE), round(float(lv["size"]))) for lv in books or ()]


def load(path: str) -> Recording:
    """The recording at ``path`` (BadFile from app.record.schema when it is none)."""
    manifest = read_manifest(path)
    table = pq.read_table(path)
    window = manifest.get("window") or {}
    markets = _markets(table)
    events: list[tuple[int, int, int, Any]] = []
    _market_events(table, events)
    _index_events(table, events)
    for m in markets.values():
        events.append((m.open_ms, OPEN, 0, m.ticker))
        events.append((m.close_ms, CLOSE, 0, m.ticker))
        if m.result:
            events.append((m.close_ms + m.settle_delay_ms, SETTLE, 0, m.ticker))
    events.sort(key=lambda e: e[:3])
    times = [e[0] for e in events if e[1] not in (OPEN, CLOSE, SETTLE)]
    start = _iso_ms(window.get("from")) or (min(times) if times else 0)
    end = _iso_ms(window.get("to")) or (max(times) if times else start)
    return Recording(start, end, markets, events)


def _iso_ms(text: str | None) -> int | None:
    if not text:
        return None
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _kind(table: pa.Table, kind: str) -> pa.Table:
    return table.filter(pc.equal(pc.cast(table["kind"], pa.string()), kind))


def _col(t: pa.Table, name: str) -> list:
    return t[name].to_pylist() if name in t.column_names else [None] * t.num_rows


def _markets(table: pa.Table) -> dict[str, RecordedMarket]:
    out: dict[str, RecordedMarket] = {}
    for r in _kind(table, "market").to_pylist():
        raw = json.loads(r.get("raw") or "{}")
        out[r["ticker"]] = RecordedMarket(
            ticker=r["ticker"], event_ticker=r.get("event_ticker") or raw.get("event_ticker", ""),
            series=r.get("series") or "", title=r.get("title") or raw.get("title", ""),
            yes_sub_title=raw.get("yes_sub_title", ""), no_sub_title=raw.get("no_sub_title", ""),
            strike_type=r.get("strike_type") or "greater",
            floor_strike=None if r.get("floor_strike") is None else float(r["floor_strike"]),
            cap_strike=None if r.get("cap_strike") is None else float(r["cap_strike"]),
            open_ms=int(r["open_time"].timestamp() * 1000),
            close_ms=int(r["close_time"].timestamp() * 1000),
            result=r.get("result") or "",
            price_level_structure=r.get("price_level_structure") or "linear_cent",
            settle_delay_ms=int(raw.get("settlement_timer_seconds") or 60) * 1000,
            expiration_value=raw.get("expiration_value") or "")
    return out


def _market_events(table: pa.Table, events: list) -> None:
    for name, kind in MARKET_KINDS.items():
        t = _kind(table, name)
        if not t.num_rows:
            continue
        ts = _ms(t["ts"])
        if "exchange_ts" in t.column_names:  # format 2: the exchange's time of the change
            ts = [x if x is not None else y for x, y in zip(_ms(t["exchange_ts"]), ts,
                                                          strict=True)]
        tickers = t["ticker"].to_pylist()
        seqs = _col(t, "seq")
        if kind == BOOK:
            payloads = [(tk, _levels(y), _levels(n)) for tk, y, n in
                        zip(tickers, t["yes_book"].to_pylist(), t["no_book"].to_pylist(),
                            strict=True)]
        elif kind == LEVEL:
            payloads = list(zip(tickers, _col(t, "side"), _units(t["price"], ONE),
                                _units(t["size"], 1), strict=True))
        else:
            payloads = list(zip(tickers, _units(t["price"], ONE), _units(t["size"], 1),
                                _col(t, "taker_side"), strict=True))
        events.extend((ms, kind, seq or 0, p) for ms, seq, p in zip(ts, seqs, payloads,
                                                                    strict=True))


def _index_events(table: pa.Table, events: list) -> None:
    """Every published index value (``index_tick``); an index with none (a recording made
    before they were stored) falls back to its per-second values (``index_second``)."""
    ticks = _kind(table, "index_tick")
    names = ticks["index_name"].to_pylist()
    for ms, name, value in zip(_ms(ticks["ts"]), names,
                               pc.cast(ticks["value"], pa.float64()).to_pylist(), strict=True):
        events.append((ms, INDEX, 0, (name, value)))
    have = set(names)
    secs = _kind(table, "index_second")
    for ms, name, value in zip(_ms(secs["ts"]), secs["index_name"].to_pylist(),
                               pc.cast(secs["value"], pa.float64()).to_pylist(), strict=True):
        if name not in have:
            events.append((ms, INDEX_SECOND, 0, (name, value)))
