"""rec-market-feed's history records: every kind survives packing, splitting and both
segment forms exactly (the integration tests rebuild books from them)."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal as D

import psycopg
import pytest

from app.db import feed_log as fl
from app.db import migrate as mig
from app.services.market_feed import store as st
from tests import data_in_fixtures as di

YES = {D("0.5600"): D("120.00"), D("0.0015"): D("3.50")}  # a sub-cent tail price
NO = {D("0.4300"): D("7.00")}
TID = str(uuid.UUID(int=12345))


def sample() -> bytes:
    return b"".join([
        fl.book(7, 1_000, YES, NO),
        fl.level(7, 1_005, "yes", D("0.5600"), D("0")),
        fl.level(7, 1_006, "no", D("0.4400"), D("12.25"), http=True),
        fl.tick(7, 1_010, (D("0.5500"), D("0.5700"), D("10.00"), None, D("0.5600"),
                           D("123456789.00"), None)),
        fl.trade_with_id(7, 1_020, TID, D("0.5600"), D("2.00"), "yes"),  # as before 010
        fl.trade_with_id(7, 990, "not-a-uuid", D("0.0010"), D("0.50"), None),  # steps back
        fl.tick(7, 1_030, (None,) * 7, http=True),
        fl.trade(7, 1_040, D("0.5700"), D("1.00"), "no"),  # as stored now: no trade id
    ])


def test_every_record_kind_round_trips_exactly():
    recs = list(fl.records(sample()))
    assert [r.kind for r in recs] == [fl.BOOK, fl.LEVEL, fl.LEVEL, fl.TICK, fl.TRADE,
                                      fl.TRADE, fl.TICK, fl.TRADE]
    assert [r.http for r in recs] == [False, False, True, False, False, False, True, False]
    assert recs[0].data == (YES, NO) and recs[0].ms == 1_000
    assert recs[1].data == ("yes", D("0.56"), D(0))
    assert recs[2].data == ("no", D("0.44"), D("12.25"))
    assert recs[3].data == (D("0.55"), D("0.57"), D(10), None, D("0.56"), D(123456789), None)
    assert recs[4].data == {"trade_id": TID, "yes_price": D("0.56"), "count": D(2),
                            "taker_outcome_side": "yes"}
    assert recs[5].data["trade_id"] == "not-a-uuid" and recs[5].ms == 990
    assert recs[6].data == (None,) * 7
    assert recs[7].data == {"trade_id": None, "yes_price": D("0.57"), "count": D(1),
                            "taker_outcome_side": "no"} and recs[7].ms == 1_040
    assert len(fl.trade(7, 0, D("0.57"), D(1), "no")) < len(fl.trade_with_id(
        7, 0, TID, D("0.57"), D(1), "no")) - 15  # the 16 random bytes are not stored
    assert fl.replay(recs) == ({D("0.0015"): D("3.5")}, {D("0.43"): D(7), D("0.44"): D("12.25")})


@pytest.mark.parametrize("form", [fl.ZLIB, fl.COLUMNS, fl.LZMA1, fl.LZMA])
def test_segments_give_back_the_same_records(form):
    raw = sample() * 50
    blob = fl.pack_segment(raw, form)
    assert blob[0] == form
    assert fl.segment_bytes(blob) == raw
    assert len(blob) < len(raw) / 5


def exact_sample() -> bytes:
    """Records as the feed writes them since migration 018: the WebSocket's with the
    exchange's seq, the other clock and the venue's send time; GAPs."""
    return b"".join([
        fl.book(7, 2_000, YES, NO, ex=(10, 1_990, 1_995)),
        fl.level(7, 2_005, "yes", D("0.5600"), D("0"), ex=(11, 1_999, 2_001)),
        fl.level(7, 2_006, "no", D("0.4400"), D("1.00"), http=True),  # polled: as before
        fl.tick(7, 2_010, (D("0.5500"),) + (None,) * 6, ex=(None, 2_013, 2_011)),
        fl.trade(7, 2_020, D("0.5600"), D("2.00"), "yes", ex=(12, 2_024, None)),
        fl.gap(7, 2_030, fl.GAP_SEQ_BOOK, expected=12, got=15),
        fl.gap(7, 2_040, fl.GAP_OUTAGE, since=2_031),
        fl.level(7, 2_041, "yes", D("0.5700"), D("4.00"), ex=(2**40, None, 2_040)),
    ])


def test_exact_and_gap_records_round_trip_and_old_forms_still_decode():
    recs = list(fl.records(exact_sample()))
    assert [r.kind for r in recs] == [fl.BOOK, fl.LEVEL, fl.LEVEL, fl.TICK, fl.TRADE, fl.GAP,
                                      fl.GAP, fl.LEVEL]
    times = [(r.seq, r.exchange_ms, r.received_ms, r.sending_ms) for r in recs]
    assert times == [(10, 1_990, 2_000, 1_995), (11, 1_999, 2_005, 2_001),
                     (None, None, 2_006, None), (None, 2_010, 2_013, 2_011),
                     (12, 2_020, 2_024, None), (None,) * 4, (None,) * 4,
                     (2**40, None, 2_041, 2_040)]
    assert recs[0].data == (YES, NO) and recs[1].data == ("yes", D("0.56"), D(0))
    assert recs[4].data["yes_price"] == D("0.56") and recs[4].data["trade_id"] is None
    assert recs[5].data == {"reason": "seq", "channel": "orderbook_delta", "expected": 12,
                            "got": 15, "since_ms": 2_030}
    assert recs[6].data == {"reason": "outage", "channel": None, "expected": None,
                            "got": None, "since_ms": 2_031}
    assert fl.replay(recs) == ({D("0.57"): D(4), D("0.0015"): D("3.5")},
                               {D("0.43"): D(7), D("0.44"): D(1)})
    # the LZMA form holds them (old and new records mixed); the old forms cannot
    raw = (sample() + exact_sample()) * 20
    blob = fl.pack_segment(raw)
    assert blob[0] == fl.LZMA and fl.segment_bytes(blob) == raw
    assert fl.split(raw)[7][0] == raw
    for form in (fl.LZMA1, fl.COLUMNS):
        with pytest.raises(ValueError, match="EXACT and GAP"):
            fl.pack_segment(exact_sample(), form)
    # what was stored before 018 (old records in an LZMA1 segment) reads as it did: no
    # seq, the one clock it had
    old = list(fl.records(fl.segment_bytes(fl.pack_segment(sample(), fl.LZMA1))))
    assert [(r.seq, r.exchange_ms, r.received_ms, r.sending_ms) for r in old] == [
        (None, None, r.ms, None) if r.kind in (fl.BOOK, fl.LEVEL) else (None, r.ms, None, None)
        for r in old]
    assert [r.data for r in old] == [r.data for r in fl.records(sample())]


def test_the_feed_keeps_each_levels_last_delta_and_writes_gaps_before_the_resync():
    feed = st.FeedStore(None, name="t", batch_rows=10_000, flush_interval=1,
                        snapshot_interval=3600)
    feed.ids["M"] = 7
    tracker = st.Tracker(feed)
    t = int(time.time() * 1000) - 60_000  # the exchange's times: a minute before rec's
    tracker.book("M", {D("0.5"): D(10)}, {}, "ws", "initial", ex=(1, t + 900, t + 905))

    def delta(seq: int, price: str, qty: str, ts: int) -> dict:
        return {"type": "orderbook_delta", "sid": 1, "seq": seq, "sending_ts_ms": ts + 3,
                "msg": {"market_ticker": "M", "side": "yes", "price_dollars": price,
                        "delta_fp": qty, "ts_ms": ts}}

    # two deltas on one level net to one LEVEL: its size, seq and times are the last's
    assert tracker.ws_deltas([delta(2, "0.5", "-4", t + 1_000),
                              delta(3, "0.6", "1", t + 1_001),
                              delta(4, "0.5", "-1", t + 1_002)]) == []
    tracker.gap("M", fl.GAP_SEQ_BOOK, expected=5, got=8)
    # the resync's book is what the tracker has: no level changed, still a BOOK after a GAP
    tracker.book("M", {D("0.5"): D(5), D("0.6"): D(1)}, {}, "ws", "resync",
                  ex=(9, t + 1_100, t + 1_104))
    tracker.book("M", {D("0.5"): D(5), D("0.6"): D(1)}, {}, "ws", "resync", ex=(10, 1, 2))
    recs = list(fl.records(bytes(feed.batch.log)))
    assert [r.kind for r in recs] == [fl.BOOK, fl.LEVEL, fl.LEVEL, fl.GAP, fl.BOOK]
    assert [(r.data, r.seq, r.exchange_ms, r.sending_ms) for r in recs[1:3]] == [
        (("yes", D("0.5"), D(5)), 4, t + 1_002, t + 1_005),
        (("yes", D("0.6"), D(1)), 3, t + 1_001, t + 1_004)]
    assert recs[3].data["expected"] == 5 and recs[3].data["got"] == 8
    assert (recs[4].seq, recs[4].exchange_ms, recs[4].sending_ms) == (9, t + 1_100, t + 1_104)
    assert recs[4].data == ({D("0.5"): D(5), D("0.6"): D(1)}, {})


def test_split_keeps_each_markets_records_in_order():
    a = fl.level(1, 5, "yes", D("0.5"), D(1))
    b = fl.tick(2, 6, (None,) * 7)
    c = fl.book(1, 7, {}, {})
    parts = fl.split(a + b + c)
    assert parts[1] == (bytearray(a + c), 5, 7) and parts[2] == (bytearray(b), 6, 6)


def test_the_feed_stores_a_trade_seen_twice_once_and_without_its_id():

    feed = st.FeedStore(None, name="t", batch_rows=10_000, flush_interval=1,
                        snapshot_interval=60)
    feed.ids["M"] = 7
    tracker = st.Tracker(feed)
    args = (1_000, D("0.5600"), D("2.00"), "yes")
    assert tracker.trade("M", TID, *args) and not tracker.trade("M", TID, *args)
    assert tracker.trade("M", "other", *args)  # another trade at the same time and price
    recs = list(fl.records(bytes(feed.batch.log)))
    assert [r.data["trade_id"] for r in recs] == [None, None] and feed.batch.trades == 2
    assert TID.encode() not in feed.batch.log and uuid.UUID(TID).bytes not in feed.batch.log
    # the ids are remembered for TRADE_DEDUPE_SEC only: older ones are forgotten
    tracker.recent_trades = {"a": time.monotonic() - st.TRADE_DEDUPE_SEC - 1}
    assert tracker.trade("M", "b", *args)
    assert list(tracker.recent_trades) == ["b"]
    assert tracker.trade("M", "a", *args)  # too old to be a repeat


async def test_compaction_appends_chunks_and_seals_them_into_one_segment(app_db, tmp_path):
    # up to 009, with an open segment as 009's compactor left it (zlib, a trade with its
    # id); 010 moves it into feed_log_open
    for f in mig.discover():
        if f.version <= 9:
            (tmp_path / f.path.name).symlink_to(f.path)
    assert mig.migrate(app_db.dsn, tmp_path, progress=lambda m: None)
    conn = await psycopg.AsyncConnection.connect(app_db.dsn, autocommit=True)
    mid = (await fl.market_ids(conn, ["M"]))["M"]
    other = (await fl.market_ids(conn, ["N"]))["N"]
    old = fl.book(mid, 1, YES, NO) + fl.trade_with_id(mid, 2, TID, D("0.56"), D(1), "yes")
    await conn.execute("INSERT INTO feed_log (market, t0, t1, sealed, data) VALUES "
                       "(%s, now(), now(), false, %s)", (mid, fl.pack_segment(old, fl.ZLIB)))
    applied = [m.split("_")[0] for m in mig.migrate(app_db.dsn, progress=lambda m: None)]
    assert applied[0] == "010" and applied == sorted(applied), applied  # then any later one
    assert await di.rows(conn, "SELECT count(*) FROM feed_log") == [(0,)]
    batches = [fl.level(mid, 3, "yes", D("0.56"), D(0)) + fl.tick(other, 3, (None,) * 7),
               fl.trade(mid, 4, D("0.57"), D(2), "no")]
    for b in batches:
        await conn.execute("INSERT INTO feed_log_hot (data) VALUES (%s)", (b,))
    assert await fl.compact(conn, 86_400) == (2, 2)  # a chunk for each market, nothing sealed
    chunks = await di.rows(conn, "SELECT id, xmin::text FROM feed_log_open ORDER BY id")
    await conn.execute("INSERT INTO feed_log_hot (data) VALUES (%s)",
                       (fl.level(mid, 5, "no", D("0.43"), D(1)),))
    assert await fl.compact(conn, 86_400) == (1, 1)
    after = await di.rows(conn, "SELECT id, xmin::text FROM feed_log_open ORDER BY id")
    assert after[:len(chunks)] == chunks and len(after) == 4  # appended, none rewritten
    want = [r.ms for r in await fl.market_records(conn, "M")]
    assert want == [1, 2, 3, 4, 5]
    # due: every market's chunks (and nothing new) become one sealed LZMA segment each
    await conn.execute("INSERT INTO feed_log_hot (data) VALUES (%s)",
                       (fl.level(mid, 6, "no", D("0.43"), D(0)),))
    await asyncio.sleep(0.01)
    assert await fl.compact(conn, 0.001) == (1, 2)
    assert await di.rows(conn, "SELECT count(*) FROM feed_log_open") == [(0,)]
    sealed = await di.rows(conn, "SELECT market, sealed, get_byte(data, 0) FROM feed_log "
                                 "ORDER BY market")
    assert sealed == [(mid, True, fl.LZMA), (other, True, fl.LZMA)]
    recs = await fl.market_records(conn, "M")
    assert [r.ms for r in recs] == [1, 2, 3, 4, 5, 6]
    assert [r.data["trade_id"] for r in recs if r.kind == fl.TRADE] == [TID, None]
    assert await fl.book_at(conn, "M") == ({D("0.0015"): D("3.5")}, {})
    await conn.close()
