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


@pytest.mark.parametrize("form", [fl.ZLIB, fl.COLUMNS, fl.LZMA])
def test_segments_give_back_the_same_records(form):
    raw = sample() * 50
    blob = fl.pack_segment(raw, form)
    assert blob[0] == form
    assert fl.segment_bytes(blob) == raw
    assert len(blob) < len(raw) / 5


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
