"""The replay's fill model on small hand-built recordings (docs/replay.md): a taker walks the
recorded levels, a resting order waits for the prints of the quantity displayed ahead of
it, a recorded bid that crosses it trades with it, rec's orders do not move the recorded
future, fees are Kalshi's, markets settle on the recorded result. Every expected figure is
derived by hand in the comments."""

from __future__ import annotations

import asyncio

from app.sim.accounts import Account
from app.sim.matching import NO, YES
from app.sim.replay import ReplayWorld
from app.sim.replay_file import BOOK, CLOSE, LEVEL, OPEN, SETTLE, TRADE, RecordedMarket, Recording
from app.sim.venue import OrderRequest

T0 = 1_764_086_400_000
HOUR = 3_600_000
TK = "KXTEST-25NOV2512-T1"
CASH = 10_000_000  # $1,000 in $0.0001


def book(s: float, yes=(), no=()):
    return (T0 + int(s * 1000), BOOK, 0, (TK, [(c * 100, n) for c, n in yes],
                                         [(c * 100, n) for c, n in no]))


def level(s: float, side: str, cents: int, size: int):
    return (T0 + int(s * 1000), LEVEL, 0, (TK, side, cents * 100, size))


def trade(s: float, yes_cents: int, size: int, taker: str):
    return (T0 + int(s * 1000), TRADE, 0, (TK, yes_cents * 100, size, taker))


def world(*events, result: str = "yes", latency_ms: int = 0) -> ReplayWorld:
    m = RecordedMarket(TK, "KXTEST-25NOV2512", "KXTEST", "Test at noon? Above 1", "Above 1",
                       "Below 1", "greater", 1.0, None, T0, T0 + HOUR, result, "linear_cent",
                       60_000, "")
    evs = [(T0, OPEN, 0, TK), (T0 + HOUR, CLOSE, 0, TK), (T0 + HOUR + 60_000, SETTLE, 0, TK),
           *events]
    for i, e in enumerate(evs):  # the file's tie-break: its order
        evs[i] = (e[0], e[1], i, e[3])
    evs.sort(key=lambda e: e[:3])
    return ReplayWorld(Recording(T0, T0 + HOUR + 120_000, {TK: m}, evs), latency_ms)


def rec(w: ReplayWorld) -> Account:
    return w.exchange.account("rec", cash=CASH)


def buy(w: ReplayWorld, side: str, count: int, cents: int, tif: str = "good_till_canceled"):
    return w.exchange.place(rec(w), OrderRequest(TK, side=side, action="buy", count=count,
                                                 price=cents * 100, tif=tif))


def depth(w: ReplayWorld, outcome: str) -> list[tuple[int, int]]:
    return [(p // 100, n) for p, n in w.exchange.books[TK].depth(outcome)]


def test_a_taker_walks_the_recorded_levels_and_pays_kalshis_fee():
    # NO bids 60c x10 and 58c x20 = YES asks 40c x10, 42c x20
    w = world(book(0, yes=[(35, 50)], no=[(60, 10), (58, 20)]), level(10, NO, 58, 20))
    w.advance(1)
    o = buy(w, YES, 25, 42)
    # walks 40c x10, then 42c x15: nothing rests
    assert (o.filled, o.remaining, o.status) == (25, 0, "executed")
    assert o.taker_cost == 10 * 4000 + 15 * 4200
    # fees: 0.07*10*0.40*0.60 = $0.168 exact, then the order's total 0.168 + 0.07*15*0.42
    # *0.58 = $0.42378 -> $0.4238, so the second fill's trade fee is $0.2558; the balance
    # is whole cents: fill 1 costs $4.1680 -> rounding fee $0.0020 (to $4.17), fill 2
    # $6.5558 -> $0.0042 (to $6.56); rebates wait for $0.01 of rounding (0.0062 < 0.01).
    # Fees paid: 0.1680+0.0020+0.2558+0.0042 = $0.4300; cash: 1000 - 4.00 - 6.30 - 0.43
    assert o.taker_fees == 4300
    assert rec(w).cash == CASH - 103_000 - 4300
    assert depth(w, NO) == [(58, 5)]  # what rec left of the 58c level
    w.advance(10)
    # the next recorded size of the level stands: rec's trade did not move the recording
    assert depth(w, NO) == [(58, 20)]


def test_a_limit_taker_rests_its_remainder_behind_the_displayed_queue():
    # YES asks: 40c x10 (NO bid 60c); YES bids 39c x30
    w = world(book(0, yes=[(39, 30)], no=[(60, 10)]),
              # the recorded 39c bid is sold into: 30 more then 5 (the queue ahead is 30)
              trade(20, 39, 30, NO), trade(30, 39, 5, NO), level(30, YES, 39, 0))
    w.advance(1)
    o = buy(w, YES, 14, 40)
    # 10 fill at 40c; 4 rest at 40c, a better bid than the recorded 39c: nothing ahead
    assert (o.filled, o.remaining) == (10, 4)
    assert w.queues.ahead(o) == 0
    w.advance(25)
    # the 30 printed at 39c went through rec's 40c bid first: 4 of them fill it, at 40c
    assert (o.filled, o.remaining, o.status) == (14, 0, "executed")
    m = w.exchange.markets[TK]
    # volume: rec's 10 taker contracts + the recorded 30 (4 of them rec's) ; then 5 more
    assert m.volume == 40
    w.advance(10)
    assert m.volume == 45


def test_a_resting_order_fills_once_the_quantity_ahead_of_it_has_printed():
    w = world(book(0, yes=[(50, 30)], no=[(45, 40)]),
              trade(10, 50, 20, NO),   # 20 of the 30 ahead traded: rec not reached
              trade(20, 50, 15, NO),   # 10 ahead left, then 5 fill rec
              level(25, YES, 50, 200),  # a recorded size change ahead is no print: no fill
              trade(30, 50, 8, NO),    # rec's last 5, the print's other 3 to the recording
              trade(40, 50, 9, NO))    # rec is done: all 9 print for the recording
    w.advance(1)
    o = buy(w, YES, 10, 50)
    assert (o.filled, w.queues.ahead(o)) == (0, 30)
    w.advance(10)
    assert (o.filled, w.queues.ahead(o)) == (0, 10)
    w.advance(10)
    assert (o.filled, w.queues.ahead(o)) == (5, 0)
    w.advance(5)
    assert o.filled == 5
    w.advance(5)
    assert (o.filled, o.status) == (10, "executed")
    w.advance(10)
    # the market's volume is the recording's: 20 + 15 + 8 + 9 (rec's 10 inside them)
    assert w.exchange.markets[TK].volume == 52
    # maker on a quadratic series: no fee; 10 at 50c cost $5.00
    assert (o.maker_fees, rec(w).cash) == (0, CASH - 50_000)


def test_prints_on_the_other_side_or_at_a_worse_price_for_it_do_not_fill():
    w = world(book(0, yes=[(50, 10)], no=[(45, 10)]),
              trade(10, 55, 10, YES),  # a YES buyer hit NO bids at 45c: rec bids YES
              trade(20, 48, 10, NO))   # YES bids sold into down to 48c only
    w.advance(1)
    o = buy(w, YES, 5, 47)
    # rec's 47c bid is behind the 50c bid: nothing at 47c, so ahead 0; the first print
    # hits the other side; the second stops at 48c, above rec's price: not reached
    w.advance(30)
    assert o.filled == 0 and o.status == "resting"


def test_a_recorded_bid_that_crosses_a_resting_order_trades_with_it():
    w = world(book(0, yes=[(40, 10)], no=[(50, 10)]),
              level(10, NO, 56, 6),   # NO bid 56c = YES ask 44c: through rec's 45c bid
              level(20, NO, 56, 9))
    w.advance(1)
    o = buy(w, YES, 10, 45)
    assert o.filled == 0
    w.advance(10)
    # 6 of rec's 10 fill at its own 45c; the recorded 56c bid shows nothing (it traded)
    assert (o.filled, o.remaining) == (6, 4)
    assert (56, 6) not in depth(w, NO)
    w.advance(10)
    # the next recorded size, 9: rec's last 4 fill, 5 show
    assert (o.filled, o.status) == (10, "executed")
    assert (56, 5) in depth(w, NO)
    assert rec(w).cash == CASH - 10 * 4500


def test_the_market_settles_on_the_recorded_result():
    w = world(book(0, yes=[(30, 10)], no=[(60, 10)]), result="no")
    w.advance(1)
    o = buy(w, NO, 10, 70)  # takes the YES bid 30c = NO at 70c
    assert o.filled == 10
    paid = CASH - rec(w).cash  # $7.00 and the fee
    # 0.07*10*0.7*0.3 = $0.147 -> $0.1470; cash change $7.1470 -> rounding $0.0030
    assert paid == 70_000 + 1470 + 30
    w.advance(3600)
    assert w.exchange.markets[TK].status == "closed"
    w.advance(60)
    m = w.exchange.markets[TK]
    assert (m.status, m.result) == ("finalized", "no")
    assert rec(w).cash == CASH - paid + 10 * 10_000  # NO pays $1 a contract


async def test_an_order_meets_the_book_latency_ms_after_it_was_sent():
    # NO bid 60c x10 (YES ask 40c) until 1.3 s, then 55c x10 (YES ask 45c)
    w = world(book(0, yes=[(30, 10)], no=[(60, 10)]), level(1.3, NO, 60, 0),
              level(1.3, NO, 55, 10), latency_ms=500)
    w.advance(1)

    async def send():  # what the REST handler does: the latency, then the exchange
        await w.order_latency()
        return buy(w, YES, 10, 42, tif="immediate_or_cancel")

    sent = asyncio.create_task(send())
    await asyncio.sleep(0)
    w.advance_to(T0 + 1400)
    await asyncio.sleep(0)
    assert not sent.done()  # 400 ms of the 500 gone
    w.advance_to(T0 + 1500)
    o = await sent
    # sent at 1.0 s the IOC buy at 42c would have taken the 40c ask; it arrives at 1.5 s,
    # when the ask is 45c: nothing fills
    assert (o.filled, o.status) == (0, "canceled")


def test_the_reader_takes_the_exchanges_time_of_a_change_when_the_file_has_it(tmp_path):
    """Format 2 adds ``exchange_ts`` (and other columns) to the market kinds: a book change
    plays at the exchange's time, not at rec's receive time; unknown columns and kinds are
    ignored."""
    import json as _json
    from datetime import UTC, datetime
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    from app.record import schema
    from app.sim.replay_file import load

    def at(ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, UTC)

    base = {c: None for c in schema.COLUMNS}
    rows = [
        {**base, "kind": "market", "ts": at(T0), "ticker": TK, "series": "KXTEST",
         "event_ticker": "KXTEST-25NOV2512", "title": "Test?", "status": "settled",
         "result": "yes", "strike_type": "greater", "floor_strike": Decimal("1"),
         "open_time": at(T0), "close_time": at(T0 + HOUR), "expiration_time": at(T0 + HOUR),
         "price_level_structure": "linear_cent", "raw": "{}"},
        # received at +2.0 s and +2.5 s; the exchange made them at +1.9 s and +1.0 s
        {**base, "kind": "level", "ts": at(T0 + 2000), "ticker": TK, "series": "KXTEST",
         "seq": 1, "side": "yes", "price": Decimal("0.4000"), "size": Decimal("7")},
        {**base, "kind": "level", "ts": at(T0 + 2500), "ticker": TK, "series": "KXTEST",
         "seq": 2, "side": "yes", "price": Decimal("0.4100"), "size": Decimal("3")},
        {**base, "kind": "gap", "ts": at(T0 + 2600), "ticker": TK, "series": "KXTEST",
         "seq": 3},
    ]
    exchange_ts = [None, at(T0 + 1900), at(T0 + 1000), None]
    rows = [{**row, "exchange_ts": ts} for row, ts in zip(rows, exchange_ts, strict=True)]
    table = pa.Table.from_pylist(rows, schema=schema.SCHEMA)  # format 2's own column
    path = tmp_path / "v2ish.parquet"
    manifest = {"format": schema.FORMAT, "format_version": schema.VERSION,
                "window": {"from": "2025-11-25T16:00:00Z", "to": "2025-11-25T17:00:00Z"}}
    pq.write_table(table.replace_schema_metadata({schema.MANIFEST_KEY: _json.dumps(
        manifest).encode()}), path)
    rec = load(str(path))
    levels = [(e[0] - T0, e[3][2]) for e in rec.events if e[1] == LEVEL]
    assert levels == [(1000, 4100), (1900, 4000)]  # the exchange's order, not the receipt's
    w = ReplayWorld(rec)
    w.advance_to(T0 + 1500)
    assert depth(w, YES) == [(41, 3)]


def test_an_amended_price_takes_the_back_of_its_new_level_and_a_halt_fills_nothing():
    w = world(book(0, yes=[(50, 30), (49, 12)], no=[(45, 40)]),
              trade(10, 49, 12, NO),  # would fill rec at 49c behind nothing: 12 ahead
              trade(20, 49, 5, NO),   # the 12 ahead are gone: 5 fill rec
              trade(30, 49, 5, NO))   # trading halted: the print fills nothing of rec's
    w.advance(1)
    o = buy(w, YES, 10, 50)
    assert w.queues.ahead(o) == 30
    w.exchange.amend(rec(w), o.order_id, TK, YES, 4900, None, None)
    # the back of the 49c level: the 12 recorded there
    assert (o.price, w.queues.ahead(o)) == (4900, 12)
    w.advance(10)
    assert (o.filled, w.queues.ahead(o)) == (0, 0)
    w.advance(10)
    assert o.filled == 5
    w.halted = True
    w.sync_trading()
    w.advance(10)
    assert o.filled == 5 and w.exchange.markets[TK].volume == 12 + 5 + 5
