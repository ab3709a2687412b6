"""rec's Kalshi client (app.kalshi) against the real simulator (app.sim) over loopback.

Every REST endpoint and WS channel the client uses, auth failures, pagination, the
order lifecycle on the V2 endpoints (rest, amend, decrease, partial fill, fill, cancel,
batches, cancel-all; legacy writes answered 410 and never sent), sub-cent prices on a
tapered_deci_cent market, settlement, 429/5xx handling, exactly-once creates and
batches under the simulator's lose_response fault, pacing by the account's token
buckets, seq gap -> resync (rebuilt book == simulator book) and WS drop -> reconnect
without losing a fill. The simulator is started with the sim's own test fixtures
(tests/test_sim_fixtures.py); its clock only moves when a test advances it.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.kalshi import signing
from app.kalshi.errors import KalshiAuthError, KalshiBadRequest, KalshiNotFound, KalshiTimeout
from app.kalshi.prices import InvalidPrice
from app.kalshi.rest import KalshiRest, LegacyOrderWrite, RetryPolicy, order_body
from app.kalshi.ws import KalshiWS, WsCommandError
from app.sim.matching import NO, YES
from tests import test_sim_fixtures as fx
from tests.test_sim_fixtures import PREFIX, signer

sim = fx.sim
quiet_sim = fx.quiet_sim

START = 1_000_000
FAST = RetryPolicy(max_attempts=5, base_delay=0.02, max_delay=0.2)


class _StaleSigner(signing.Signer):
    def headers(self, method: str, path: str, now_ms: int | None = None) -> dict[str, str]:
        return super().headers(method, path, now_ms=int(time.time() * 1000) - 120_000)


def rest(h: fx.SimHandle, s: signing.Signer | None = None, **kw: Any) -> KalshiRest:
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout", 5)
    return KalshiRest(h.base + PREFIX, s or h.signer, **kw)


def ws_client(h: fx.SimHandle, s: signing.Signer | None = None, **kw: Any) -> KalshiWS:
    kw.setdefault("backoff_base", 0.05)
    kw.setdefault("backoff_max", 0.3)
    kw.setdefault("snapshot_timeout", 2.0)
    kw.setdefault("compression", None)
    return KalshiWS(h.ws_url, s or h.signer, **kw)


async def _next_of(ws: KalshiWS, mtype: str, within: float = 5.0, pred=None):
    async with asyncio.timeout(within):
        while True:
            m = await ws.recv()
            if m.type == mtype and (pred is None or pred(m)):
                return m


async def _until(cond, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not cond():  # noqa: ASYNC110 - polling observable state
            await asyncio.sleep(0.01)


def sim_book(h: fx.SimHandle, ticker: str) -> tuple[dict, dict]:
    """The simulator's own book, in the wire's dollars/contracts (it keeps $0.0001 units)."""
    book = h.sim.exchange.books[ticker]
    out = []
    for outcome in (YES, NO):
        out.append({Decimal(p) / 10_000: Decimal(q) for p, q in book.depth(outcome)})
    return out[0], out[1]


# ------------------------------------------------------------------ auth


async def test_auth_failures_are_refused_with_kalshis_error_body(sim):
    cases = {
        "unknown key": signing.Signer("nobody", signer().private_key),
        "wrong signature": signing.Signer("test-key", signer("other-key").private_key),
        "stale timestamp": _StaleSigner("test-key", signer().private_key),
    }
    for why, s in cases.items():
        async with rest(sim, s) as c:
            with pytest.raises(KalshiAuthError) as info:
                await c.get_balance()
        err = info.value
        assert err.status == 401, why
        assert err.code == "authentication_error", why
        assert err.details, why
    ws = ws_client(sim, cases["wrong signature"])
    await ws.start()
    with pytest.raises(KalshiAuthError):
        await ws.wait_connected(within=5)
    await ws.close()


# ------------------------------------------------------------------ market data


async def test_exchange_series_events_markets_orderbook_trades(sim):
    async with rest(sim) as c:
        status = await c.get_exchange_status()
        assert status.exchange_active and status.trading_active

        series = await c.get_series_list()
        assert "KXBTCD" in {s.ticker for s in series}
        one = await c.get_series("KXBTCD")
        assert one.ticker == "KXBTCD" and one.fee_type

        events = [e async for e in c.iter_events(series_ticker="KXBTCD", limit=2)]
        assert events and all(e.series_ticker == "KXBTCD" for e in events)
        ev = await c.get_event(events[0].event_ticker, with_nested_markets=True)
        assert ev.event.event_ticker == events[0].event_ticker
        nested = ev.event.markets or ev.markets
        assert nested and all(m.event_ticker == ev.event.event_ticker for m in nested)

        open_markets = await c.get_markets(status="open", series_ticker="KXBTCD", limit=1000)
        assert open_markets.items and all(m.status == "active" for m in open_markets.items)
        by_event = await c.get_markets(event_ticker=ev.event.event_ticker, limit=1000)
        assert {m.ticker for m in by_event.items} == {m.ticker for m in nested}
        pick = [m.ticker for m in open_markets.items[:3]]
        assert {m.ticker for m in (await c.get_markets(tickers=pick)).items} == set(pick)

        t = open_markets.items[0].ticker
        m = await c.get_market(t)
        assert m.ticker == t and isinstance(m.yes_bid_dollars, Decimal)
        assert m.yes_bid_dollars is not None and m.yes_ask_dollars is not None
        book = await c.get_orderbook(t)
        yes, no = book.as_maps()
        assert (yes, no) == sim_book(sim, t)
        if book.yes:
            assert max(yes) == m.yes_bid_dollars
        top = await c.get_orderbook(t, depth=1)
        assert len(top.yes) <= 1 and len(top.no) <= 1

        await sim.control("advance", seconds=600)  # simulated flow trades
        trades = [x async for x in c.iter_trades(limit=5)]
        assert trades, "ten simulated minutes without a trade"
        assert all(x.yes_price_dollars + x.no_price_dollars == 1 for x in trades)
        assert len({x.trade_id for x in trades}) == len(trades)


async def test_pagination_walks_every_market_once(sim):
    async with rest(sim) as c:
        everything = (await c.get_markets(limit=1000)).items
        paged = [m.ticker async for m in c.iter_markets(limit=7)]
    assert len(everything) > 7
    assert paged == [m.ticker for m in everything]
    with pytest.raises(KalshiBadRequest):
        async with rest(sim) as c:
            await c.get_markets(cursor="not-a-cursor")


# ------------------------------------------------------------------ orders & portfolio


async def test_order_lifecycle_rest_amend_decrease_partial_fill_fill_cancel(quiet_sim):
    h = quiet_sim
    t = h.open_tickers()[0]
    async with rest(h) as a, rest(h, signer("other-key")) as b:
        ack = await a.create_order(t, "yes", "buy", 10, "0.40", client_order_id="lc-1")
        assert (ack.client_order_id, ack.fill_count, ack.remaining_count) == (
            "lc-1",
            Decimal(0),
            Decimal(10),
        )
        o = await a.get_order(ack.order_id)
        assert (o.status, o.outcome_side, o.book_side, o.yes_price_dollars) == (
            "resting",
            "yes",
            "bid",
            Decimal("0.40"),
        )
        assert o.client_order_id == "lc-1" and o.exchange_index == 0

        am = await a.amend_order(
            o.order_id,
            ticker=t,
            side="yes",
            action="buy",
            price=Decimal("0.41"),
            count=12,
            client_order_id="lc-1",
            updated_client_order_id="lc-2",
        )
        oid = am.order_id
        got = await a.get_order(oid)
        assert (got.yes_price_dollars, got.remaining_count_fp, got.client_order_id) == (
            Decimal("0.41"),
            Decimal(12),
            "lc-2",
        )
        dec = await a.decrease_order(oid, reduce_by=2, ticker=t)
        assert dec.remaining_count == 10
        assert (await a.get_orderbook(t)).yes == [(Decimal("0.41"), Decimal(10))]
        assert (await a.get_balance()).balance == START - 410  # collateral of the bid

        # B sells 4 YES into the bid: a partial fill at the maker's price
        taker = await b.create_order(t, "yes", "sell", 4, "0.41")
        assert (taker.fill_count, taker.remaining_count) == (Decimal(4), Decimal(0))
        got = await a.get_order(oid)
        assert (got.status, got.fill_count_fp, got.remaining_count_fp) == (
            "resting",
            Decimal(4),
            Decimal(6),
        )
        fills = [f async for f in a.iter_fills(ticker=t)]
        assert [(f.count_fp, f.yes_price_dollars, f.is_taker, f.outcome_side) for f in fills] == [
            (Decimal(4), Decimal("0.41"), False, "yes")
        ]
        taker_fills = [f async for f in b.iter_fills(ticker=t)]
        assert [(f.outcome_side, f.book_side) for f in taker_fills] == [("no", "ask")]
        pos = await a.get_positions(ticker=t)
        assert pos.market_positions[0].position_fp == 4

        # the rest fills: B buys NO at 0.59 = an ask for YES at 0.41
        await b.create_order(t, "no", "buy", 6, "0.59")
        got = await a.get_order(oid)
        assert (got.status, got.remaining_count_fp) == ("executed", Decimal(0))
        positions = [p async for p in a.iter_market_positions(ticker=t)]
        assert positions[0].position_fp == 10
        assert positions[0].market_exposure_dollars == Decimal("4.10")

        # cancel
        o2 = await a.create_order(t, "yes", "buy", 5, "0.30")
        c = await a.cancel_order(o2.order_id, ticker=t)
        assert (c.order_id, c.reduced_by) == (o2.order_id, Decimal(5))
        with pytest.raises(KalshiNotFound):
            await a.cancel_order(o2.order_id, ticker=t)
        canceled = [x.order_id async for x in a.iter_orders(status="canceled", limit=1)]
        assert o2.order_id in canceled
        assert [x async for x in a.iter_orders(ticker=t, status="resting")] == []
        assert (await a.get_balance()).balance == START - 410


async def test_batched_create_and_cancel(quiet_sim):
    h = quiet_sim
    t = h.open_tickers()[0]
    async with rest(h) as a:
        a.validate_prices = False  # the unknown market below must reach the exchange
        items = await a.batch_create_orders(
            [
                order_body(t, "yes", "buy", 1, "0.10", client_order_id="b1"),
                order_body(t, "no", "sell", 2, "0.89", client_order_id="b2"),
                order_body("NO-SUCH-MARKET", "yes", "buy", 1, "0.10"),
            ]
        )
        assert [i.order_id is not None for i in items] == [True, True, False]
        assert [i.client_order_id for i in items[:2]] == ["b1", "b2"]
        assert items[2].error is not None and items[2].error.code == "not_found"
        b2 = await a.get_order(items[1].order_id)
        assert (b2.book_side, b2.yes_price_dollars) == ("bid", Decimal("0.11"))
        res = await a.batch_cancel_orders([items[0].order_id, (items[1].order_id, t)])
        assert [(r.order_id, r.reduced_by) for r in res] == [
            (items[0].order_id, Decimal(1)),
            (items[1].order_id, Decimal(2)),
        ]
        await a.create_order(t, "yes", "buy", 3, "0.12")
        await a.cancel_all_orders()
        assert [x async for x in a.iter_orders(ticker=t, status="resting")] == []


async def test_subpenny_prices_on_a_tapered_market_and_off_tick_prices_stay_home(quiet_sim):
    h = quiet_sim
    async with rest(h) as a:
        markets = [m async for m in a.iter_markets(status="open")]
        tapered = next(m for m in markets if m.price_level_structure == "tapered_deci_cent")
        t = tapered.ticker
        low = await a.create_order(t, "yes", "buy", 1, "0.001", client_order_id="sp-1")
        high = await a.create_order(t, "no", "buy", 1, "0.001", client_order_id="sp-2")
        got = {o.client_order_id: o async for o in a.iter_orders(ticker=t)}
        assert (got["sp-1"].book_side, got["sp-1"].yes_price_dollars) == ("bid", Decimal("0.001"))
        assert (got["sp-2"].book_side, got["sp-2"].yes_price_dollars) == ("ask", Decimal("0.999"))
        before = a.stats["requests"]
        tick = r"the tick is 0\.01 \(nearest valid: 0\.55 or 0\.56\)"
        with pytest.raises(InvalidPrice, match=tick):
            await a.create_order(t, "yes", "buy", 1, "0.555")
        assert a.stats["requests"] == before  # refused before anything was sent
        # the exchange agrees: sent anyway, the simulator refuses the same price
        a.validate_prices = False
        with pytest.raises(KalshiBadRequest):
            await a.create_order(t, "yes", "buy", 1, "0.555")
        for o in (low, high):
            await a.cancel_order(o.order_id, ticker=t)


async def test_a_legacy_order_endpoint_answers_410_and_the_client_never_calls_it(quiet_sim):
    h = quiet_sim
    async with rest(h) as a:
        with pytest.raises(LegacyOrderWrite):
            await a.request("POST", "/portfolio/orders", json={})
    # what the exchange says to a client that still writes there
    async with httpx.AsyncClient(base_url=h.base) as raw:
        path = PREFIX + "/portfolio/orders"
        r = await raw.post(path, json={}, headers=h.signer.headers("POST", path))
    assert r.status_code == 410 and "deprecated_v1_order_endpoint" in r.text


async def test_settlement_is_reported_with_exact_revenue(quiet_sim):
    h = quiet_sim
    spot = h.sim.world.spot
    ticker = next(
        m.ticker
        for m in h.sim.exchange.markets.values()
        if m.status == "active" and m.strike_type == "greater" and m.floor_strike < spot - 400
    )
    async with rest(h) as a, rest(h, signer("other-key")) as b:
        await a.create_order(ticker, "yes", "buy", 10, "0.70")
        await b.create_order(ticker, "no", "buy", 10, "0.30")
        await h.control("set_spot", spot=spot + 5000)
        await h.control("advance", seconds=3600 + 61)
        m = await a.get_market(ticker)
        assert (m.status, m.result, m.settlement_value_dollars) == ("finalized", "yes", Decimal(1))
        settlements = [s async for s in a.iter_settlements()]
        assert len(settlements) == 1
        s = settlements[0]
        assert (s.ticker, s.market_result, s.yes_count_fp, s.revenue) == (
            ticker,
            "yes",
            Decimal(10),
            1000,
        )
        assert s.yes_total_cost_dollars == Decimal("7.00")
        assert (await a.get_balance()).balance == START - 700 + 1000


# ------------------------------------------------------------------ 429 / 5xx


async def test_injected_429_and_5xx_are_retried_and_orders_stay_single(quiet_sim):
    h = quiet_sim
    t = h.open_tickers()[0]
    async with rest(h) as a:
        await h.control("http_error", status=429, count=2, path_prefix=PREFIX + "/portfolio")
        assert (await a.get_balance()).balance == START
        await h.control(
            "http_error", status=503, count=2, path_prefix=PREFIX + "/portfolio/events/orders"
        )
        o = await a.create_order(t, "yes", "buy", 1, "0.20", client_order_id="r-1")
        assert o.client_order_id == "r-1"
        orders = [x async for x in a.iter_orders(ticker=t)]
        assert [x.client_order_id for x in orders] == ["r-1"]
        assert a.stats["retries"] == 4
        # an amend is never repeated after a 5xx
        await h.control("http_error", status=500, count=1, path_prefix=PREFIX + "/portfolio")
        before = a.stats["requests"]
        with pytest.raises(Exception) as info:
            await a.amend_order(
                o.order_id, ticker=t, side="yes", action="buy", price="0.21", count=1
            )
        assert getattr(info.value, "status", None) == 500
        assert a.stats["requests"] == before + 1


async def test_order_whose_answer_is_lost_is_placed_once(quiet_sim):
    h = quiet_sim
    t = h.open_tickers()[0]
    async with rest(h) as a:
        # another order already rests on the same ticker: a lookup by ticker alone
        # would return it; the 409 must be resolved by the client_order_id
        other = await a.create_order(t, "yes", "buy", 1, "0.10", client_order_id="other-1")
        # the simulator places the order, then answers 502 as if the reply were lost
        await h.control("lose_response", status=502, count=1,
                        path_prefix=PREFIX + "/portfolio/events/orders")
        o = await a.create_order(t, "no", "buy", 2, "0.80", client_order_id="lost-1")
        assert (o.client_order_id, o.recovered) == ("lost-1", True) and a.stats["retries"] >= 1
        assert o.order_id != other.order_id and o.order is not None
        assert (o.order.book_side, o.order.yes_price_dollars) == ("ask", Decimal("0.20"))
        orders = [x async for x in a.iter_orders(ticker=t)]
        assert sorted(x.client_order_id for x in orders) == ["lost-1", "other-1"]
        assert h.sim.faults.lost_count == 0  # the fault really fired
        # a lost cancel answer: the retry finds it already cancelled, still one order
        await h.control("lose_response", status=504, count=1,
                        path_prefix=PREFIX + "/portfolio/events/orders/")
        cancelled = await a.cancel_order(o.order_id, ticker=t)
        assert (cancelled.order_id, cancelled.reduced_by) == (o.order_id, None)
        statuses = {x.client_order_id: x.status async for x in a.iter_orders(ticker=t)}
        assert statuses == {"lost-1": "canceled", "other-1": "resting"}


async def test_batch_whose_answer_is_lost_is_placed_once(quiet_sim):
    h = quiet_sim
    t = h.open_tickers()[0]
    async with rest(h) as a:
        await a.create_order(t, "yes", "buy", 1, "0.10", client_order_id="solo")
        await h.control("lose_response", status=502, count=1,
                        path_prefix=PREFIX + "/portfolio/events/orders/batched")
        items = await a.batch_create_orders(
            [
                order_body(t, "yes", "buy", 1, "0.11", client_order_id="bl-1"),
                order_body(t, "no", "buy", 2, "0.80", client_order_id="bl-2"),
            ]
        )
        assert h.sim.faults.lost_count == 0  # the fault really fired
        assert [(i.client_order_id, i.recovered, i.error) for i in items] == [
            ("bl-1", True, None),
            ("bl-2", True, None),
        ]
        assert items[1].order is not None and items[1].order.book_side == "ask"
        coids = sorted([x.client_order_id async for x in a.iter_orders(ticker=t)])
        assert coids == ["bl-1", "bl-2", "solo"]


async def test_start_on_an_unlimited_simulator_paces_nothing(quiet_sim):
    async with rest(quiet_sim) as c:
        budget = await c.start()
        assert budget is not None and budget.read is None and budget.write is None
        await c.get_exchange_status()
        assert c.stats["paced_s"] == 0


async def test_requests_are_paced_by_the_simulators_limits_without_429(tmp_path):
    handle, server = await fx.start_sim(tmp_path, rate_tier="basic")
    try:
        # basic: reads 200 tokens/s, writes 100 tokens/s (10 orders/s, 50 cancels/s)
        once = RetryPolicy(max_attempts=1)
        async with rest(handle, retry=once) as c:
            budget = await c.start()
            assert budget is not None and budget.usage_tier == "basic"
            t = handle.open_tickers()[0]
            reads = await asyncio.gather(*[c.get_exchange_status() for _ in range(30)])
            acks = await asyncio.gather(
                *[c.create_order(t, "yes", "buy", 1, "0.05") for _ in range(14)]
            )
            cancels = await asyncio.gather(*[c.cancel_order(x.order_id, ticker=t) for x in acks])
        assert len(reads) == 30 and all(x.reduced_by == 1 for x in cancels)
        assert c.stats["retries"] == 0 and c.stats["paced_s"] > 0  # no 429, some waiting
    finally:
        await fx.stop_sim(handle, server)


async def test_rate_limited_burst_completes_through_429_retries(tmp_path):
    handle, server = await fx.start_sim(tmp_path, rate_tier="basic")
    try:
        policy = RetryPolicy(max_attempts=12, base_delay=0.05, max_delay=0.5)
        async with rest(handle, retry=policy) as c:
            results = await asyncio.gather(*[c.get_exchange_status() for _ in range(60)])
        assert all(r.exchange_active for r in results)
        assert c.stats["retries"] > 0  # basic tier: 20 reads/s, so some were refused
    finally:
        await fx.stop_sim(handle, server)


# ------------------------------------------------------------------ WebSocket


async def test_every_channel_delivers_typed_messages(quiet_sim):
    h = quiet_sim
    t = h.open_tickers()[0]
    async with ws_client(h) as ws, rest(h) as a, rest(h, signer("other-key")) as b:
        await ws.subscribe("orderbook_delta", market_tickers=[t])
        await ws.subscribe("ticker", market_tickers=[t])
        await ws.subscribe("trade", market_tickers=[t])
        await ws.subscribe("fill")
        await ws.subscribe("user_orders")
        await ws.subscribe("market_positions")
        await ws.subscribe("market_lifecycle_v2")
        await ws.wait_connected(within=5)
        listed = await ws.list_subscriptions()
        assert len(listed) == 7
        with pytest.raises(WsCommandError) as info:
            await ws.subscribe("no_such_channel")
        assert info.value.ws_code == 8

        await a.create_order(t, "yes", "buy", 3, "0.45", client_order_id="ws-1")
        await b.create_order(t, "yes", "sell", 3, "0.45")
        seen: dict[str, Any] = {}
        async with asyncio.timeout(5):
            while not {"fill", "user_order", "market_position", "trade", "ticker"} <= set(seen):
                m = await ws.recv()
                if m.data is not None:
                    seen.setdefault(m.type, m.data)
        assert seen["fill"].count_fp == 3 and seen["fill"].yes_price_dollars == Decimal("0.45")
        assert seen["user_order"].client_order_id == "ws-1"
        assert seen["market_position"].position_fp == 3
        assert seen["trade"].yes_price_dollars == Decimal("0.45")
        assert ws.books[t].valid and ws.books[t].as_maps() == sim_book(h, t)

        await h.control("advance", seconds=3600 + 61)
        life = await _next_of(ws, "market_lifecycle_v2", pred=lambda m: m.msg["market_ticker"] == t)
        assert life.data.event_type in {
            "deactivated",
            "determined",
            "settled",
            "close_date_updated",
        }


async def test_seq_gap_resyncs_and_the_rebuilt_book_equals_the_simulators(sim):
    h = sim
    tickers = h.open_tickers()[:3]
    async with ws_client(h) as ws:
        sub = await ws.subscribe("orderbook_delta", market_tickers=tickers)
        await ws.wait_connected(within=5)
        await _until(lambda: all(ws.books[t].valid for t in tickers))
        await h.control("skip_seq", n=3)
        await h.control("advance", seconds=120)  # liquidity moves the books
        gap = await _next_of(ws, "client.seq_gap")
        assert gap.sid == sub.sid
        await _next_of(ws, "client.resynced")
        await h.control("advance", seconds=120)
        # the simulator's clock stands still between advances: the client's books
        # must converge to its books exactly
        await _until(
            lambda: all(ws.books[t].as_maps() == sim_book(h, t) for t in tickers), within=5
        )
        for t in tickers:
            assert ws.books[t].valid
            assert ws.books[t].as_maps() == sim_book(h, t), t
        assert ws.stats.seq_gaps == 1 and ws.stats.resyncs == 1


async def test_ws_drop_reconnects_and_no_fill_is_lost(quiet_sim):
    """A consumer that follows fills on WS and reconciles over REST after every
    reconnect ends with exactly the exchange's fills, including the one made while
    the connection was down."""
    h = quiet_sim
    t = h.open_tickers()[0]
    fills: dict[str, Decimal] = {}

    async with ws_client(h) as ws, rest(h) as a, rest(h, signer("other-key")) as b:
        await ws.subscribe("fill")
        await ws.wait_connected(within=5)
        await a.create_order(t, "yes", "buy", 10, "0.50")

        async def consume() -> None:
            async for m in ws:
                if m.type == "fill":
                    fills[m.data.trade_id] = m.data.count_fp
                elif m.type == "client.connected" and m.msg["reconnect"]:
                    async for f in a.iter_fills():
                        fills.setdefault(f.trade_id, f.count_fp)

        consumer = asyncio.create_task(consume())
        await b.create_order(t, "yes", "sell", 2, "0.50")
        await _until(lambda: len(fills) == 1)

        await h.control("drop_ws")
        await b.create_order(t, "yes", "sell", 3, "0.50")  # while down
        await _until(lambda: ws.stats.reconnects == 1 and ws.connected.is_set())
        await b.create_order(t, "yes", "sell", 1, "0.50")
        await _until(lambda: len(fills) == 3)
        consumer.cancel()

        exchange_fills = {f.trade_id: f.count_fp async for f in a.iter_fills()}
    assert fills == exchange_fills
    assert sum(fills.values()) == 6


async def test_added_latency_times_out_and_gets_are_retried(quiet_sim):
    h = quiet_sim
    await h.control("latency", ms=400)
    async with rest(h, timeout=0.15, retry=RetryPolicy(max_attempts=3, base_delay=0.01)) as c:
        t0 = time.monotonic()
        with pytest.raises(KalshiTimeout):
            await c.get_balance()
        assert time.monotonic() - t0 < 1.5
        assert c.stats["requests"] == 3
        await h.control("clear")
        assert (await c.get_balance()).balance == START


async def test_simulator_heartbeat_pings_keep_a_quiet_connection_alive(tmp_path):
    handle, server = await fx.start_sim(tmp_path, ws_ping_interval=0.2)
    try:
        async with ws_client(handle, heartbeat_timeout=0.6, ping_interval=None) as ws:
            await ws.subscribe("fill")  # nothing trades: no data frames at all
            await ws.wait_connected(within=5)
            await asyncio.sleep(1.5)
            assert ws.stats.heartbeat_timeouts == 0 and ws.stats.reconnects == 0
    finally:
        await fx.stop_sim(handle, server)


async def test_handshake_hang_then_release_reconnects_with_backoff(quiet_sim):
    h = quiet_sim
    async with ws_client(h, open_timeout=0.3) as ws:
        await ws.subscribe("fill")
        await ws.wait_connected(within=5)
        await h.control("hang", path="/trade-api/ws/v2")
        await h.control("drop_ws")
        await _next_of(ws, "client.disconnected")
        await asyncio.sleep(1.0)  # attempts time out against the hung handshake
        assert not ws.connected.is_set()
        await h.control("release", path="/trade-api/ws/v2")
        back = await _next_of(ws, "client.connected", within=5)
        assert back.msg == {"reconnect": True}
        assert [s["channel"] for s in await ws.list_subscriptions()] == ["fill"]
