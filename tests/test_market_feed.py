"""rec-market-feed as a real process against the simulator and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import duckdb
import orjson
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from app import config
from app.db import feed_log
from app.db.migrate import migrate
from app.record import schema
from app.services.market_feed import MarketFeedService
from app.services.market_feed.store import FeedStore, Tracker
from tests import data_in_fixtures as di
from tests import test_kalshi_ws as ws_fake
from tests import test_sim_fixtures as fx
from tests.test_kalshi_ws import T1, T2, FakeWsExchange

sim = fx.sim


def followed(h: fx.SimHandle) -> list[str]:
    return h.open_tickers("KXBTCD") + h.open_tickers("KXBTC") + h.open_tickers("KXETHD")


async def test_books_in_db_equal_the_simulator_after_seq_gaps(rec_home_db, start_service, sim):
    di.prepare(rec_home_db, sim)
    svc = start_service(rec_home_db, di.FEED, watchdog_usec=2_000_000)
    await di.wait_notify(svc, "READY", "1")
    statuses = svc.notify.statuses()
    assert any(s.startswith("starting: first snapshots") for s in statuses), statuses
    tickers = followed(sim)
    assert len(tickers) >= 10
    conn = await di.connect(rec_home_db)
    # READY came only after every followed market had its first snapshot stored
    snap = await di.log_records(conn, tickers)
    ids = dict(await di.rows(conn, "SELECT id, ticker FROM feed_market_ids"))
    assert {ids[r.market] for r in snap if r.kind == feed_log.BOOK} >= set(tickers)
    assert await di.db_books(conn, tickers) == di.sim_books(sim, tickers)

    listen = await psycopg.AsyncConnection.connect(rec_home_db.db.dsn, autocommit=True)
    await listen.execute("LISTEN rec_market_feed")
    for round_ in range(6):
        sim.sim.world.advance(20)
        if round_ in (1, 3):
            assert sim.sim.hub.skip_seq(None, 3) > 0  # the next delta skips 3 seqs
    sim.sim.world.advance(20)

    async def same() -> bool:
        return await di.db_books(conn, tickers) == di.sim_books(sim, tickers)

    await di.until(same, 20, "DB books equal to the simulator's", svc)
    # the history alone rebuilds the same books (last snapshot + level changes after it)
    assert await di.log_books(conn, tickers) == di.sim_books(sim, tickers)
    assert "seq gap" in svc.output and "<4>" in svc.output
    gen = listen.notifies(timeout=5)
    note = await anext(gen)
    assert note.channel == "rec_market_feed" and '"batch"' in note.payload
    await listen.close()
    # freshness: every followed market has a recent message
    fresh = await di.rows(conn, "SELECT ticker, age_sec FROM feed_freshness_ages "
                                "WHERE state = 'live'")
    assert {t for t, _ in fresh} >= set(tickers)
    assert await di.count(conn, "feed_quotes") > 0
    kinds = {r.kind for r in await di.log_records(conn, tickers)}
    assert {feed_log.TICK, feed_log.LEVEL, feed_log.TRADE, feed_log.BOOK} <= kinds
    status = await di.rows(conn, "SELECT mode, followed FROM feed_status")
    assert status and status[0][0] == "ws"
    await conn.close()
    # watchdog pings keep coming after READY
    ready = svc.notify.with_key("READY")[0]
    await __import__("asyncio").to_thread(svc.notify.wait_until, lambda ms: len(
        [m for m in ms if "WATCHDOG" in m.fields and m.at > ready.at]) >= 2, 10)
    assert svc.terminate() == 0


async def test_nothing_changed_writes_no_row(rec_home_db, start_service, sim):
    svc = await di.started(start_service, rec_home_db, sim)
    conn = await di.connect(rec_home_db)
    async def counts() -> Counter:
        return Counter(r.kind for r in await di.log_records(conn))

    # let the first batches settle, then reconnect: fresh snapshots and ticker messages
    # that repeat what is stored write nothing but the outage: a GAP and the resync's BOOK
    # per market (the replay must know the data was not whole meanwhile)
    before = await counts()
    await di.until(lambda: svc.output.count("batches") >= 0, 1)
    await sim.sim.hub.drop_all()
    await di.until(lambda: "websocket reconnected" in svc.output, 15, "reconnect", svc)
    t0 = await di.count(conn, "feed_freshness")
    assert t0 > 0
    markets = len(followed(sim))
    await di.until(lambda: _count(di.log_records(conn), before.total() + 2 * markets), 15,
                   "the outage's records", svc)
    await asyncio.sleep(1.0)  # (a batch's time: anything more would be in by now)
    assert await counts() - before == {feed_log.BOOK: markets, feed_log.GAP: markets}
    await conn.close()
    assert svc.terminate() == 0


async def test_lifecycle_opened_market_is_followed_and_closed_one_dropped(
        rec_home_db, start_service, sim):
    svc = await di.started(start_service, rec_home_db, sim)
    first = set(followed(sim))
    # one simulated hour: the current event closes, the next one opens
    sim.sim.world.advance(3600 + 90)
    now_open = set(followed(sim))
    new = now_open - first
    assert new
    conn = await di.connect(rec_home_db)

    async def picked_up() -> bool:
        got = await di.rows(conn, "SELECT ticker FROM markets WHERE followed")
        return {t for (t,) in got} == now_open

    await di.until(picked_up, 20, "followed set == the simulator's open markets", svc)
    await di.until(lambda: di.db_books(conn, now_open), 5)
    assert await di.db_books(conn, now_open) == di.sim_books(sim, now_open)
    closed = await di.rows(conn, "SELECT count(*) FROM feed_freshness WHERE state = 'closed' "
                                 "AND ticker = ANY(%s)", list(first - now_open))
    assert closed[0][0] == len(first - now_open)
    # the dropped markets carry the status their last lifecycle event gave them, and the
    # result (the trade manager settles trades from it)
    gone = sorted(first - now_open)
    want = {t: ("settled", sim.sim.exchange.markets[t].result, False) for t in gone}

    await di.until(lambda: _equal(market_states(conn, gone), want), 10,
                   "dropped markets' status", svc)
    # and the lifecycle messages themselves: settlement value, determination and settlement
    # times (the simulator's, to the second as the messages carry them)
    ex = sim.sim.exchange.markets
    lifecycle = {t: (v, d.timestamp() * 1000, s.timestamp() * 1000) for t, v, d, s in
                 await di.rows(conn, "SELECT ticker, settlement_value, determined_at, "
                                     "settled_at FROM markets WHERE ticker = ANY(%s)", gone)}
    assert lifecycle == {t: (Decimal(ex[t].settlement_value).scaleb(-4),
                             ex[t].determined_ms // 1000 * 1000, ex[t].settled_ms // 1000 * 1000)
                         for t in gone}
    assert "now following" in svc.output and "no longer following" in svc.output
    await conn.close()
    assert svc.terminate() == 0


async def market_states(conn, tickers) -> dict[str, tuple]:
    """ticker -> (status, result, followed) as rec-market-feed stored them."""
    got = await di.rows(conn, "SELECT ticker, status, result, followed FROM markets "
                              "WHERE ticker = ANY(%s)", list(tickers))
    return {t: (st, r, f) for t, st, r, f in got}


async def _equal(got, want) -> bool:
    return await got == want


async def test_markets_that_closed_while_the_feed_was_down_get_their_true_status(
        rec_home_db, start_service, sim):
    svc = await di.started(start_service, rec_home_db, sim)
    first = sorted(followed(sim))
    svc.proc.send_signal(signal.SIGKILL)
    svc.proc.wait(10)
    # the hour's events close and settle while the feed is away; no lifecycle message reaches
    # it, and discovery lists only the open markets
    sim.sim.world.advance(3600 + 120)
    truth = {t: (sim.sim.exchange.markets[t].status, sim.sim.exchange.markets[t].result, False)
             for t in first}
    assert {st for st, _, _ in truth.values()} == {"finalized"}
    again = start_service(rec_home_db, di.FEED)
    await di.wait_notify(again, "READY", "1")
    conn = await di.connect(rec_home_db)
    assert await market_states(conn, first) == truth
    closed = await di.rows(conn, "SELECT count(*) FROM feed_freshness WHERE state = 'closed' "
                                 "AND ticker = ANY(%s)", first)
    assert closed[0][0] == len(first)
    await conn.close()
    assert again.terminate() == 0


async def test_two_feeds_splitting_the_series_leave_each_others_markets_alone(
        rec_home_db, start_service, sim):
    # two app hosts share the work (REC_MARKET_FEED_SERIES split): the second feed's start
    # must not unfollow, close or reset the first one's markets
    di.prepare(rec_home_db, sim)
    btc = sim.open_tickers("KXBTCD") + sim.open_tickers("KXBTC")
    eth = sim.open_tickers("KXETHD")
    share = {"REC_MARKET_FEED_SERIES": "KXBTCD,KXBTC"}
    first = start_service(rec_home_db, di.FEED, extra_env=share)
    await di.wait_notify(first, "READY", "1")
    # (both processes log to one file: read the first one's before the second starts)
    assert f"following {len(btc)} open markets (series KXBTCD,KXBTC," in first.output
    second = start_service(rec_home_db, di.FEED, extra_env={"REC_MARKET_FEED_SERIES": "KXETHD"})
    await di.wait_notify(second, "READY", "1")
    assert f"following {len(eth)} open markets (series KXETHD," in second.output
    conn = await di.connect(rec_home_db)
    rows = await di.rows(conn, "SELECT m.ticker, f.state, f.snapshot_at IS NOT NULL FROM markets m "
                               "JOIN feed_freshness f USING (ticker) WHERE m.followed")
    assert {t for t, _, _ in rows} == set(btc + eth)
    assert {(state, snapped) for _, state, snapped in rows} == {("live", True)}
    await conn.close()
    assert second.terminate() == 0 and first.terminate() == 0


async def test_quiet_connection_is_caught_by_the_heartbeat_timeout(
        rec_home_db, start_service, tmp_path):
    # a simulator that does not ping (Kalshi pings every 10 s) and a clock that stands still
    handle, server = await fx.start_sim(tmp_path, ws_ping_interval=3600.0)
    try:
        di.prepare(rec_home_db, handle, REC_MARKET_FEED_HEARTBEAT_TIMEOUT_SEC="1",
                   REC_KALSHI_WS_PING_INTERVAL_SEC="0")
        svc = start_service(rec_home_db, di.FEED)
        await di.wait_notify(svc, "READY", "1")
        await di.until(lambda: "no frame for" in svc.output, 10, "heartbeat timeout", svc)
        await di.until(lambda: "websocket reconnected" in svc.output, 10, "reconnect", svc)
        assert svc.terminate() == 0
    finally:
        await fx.stop_sim(handle, server)


@pytest.mark.parametrize("mode", ["http"])
async def test_http_mode_polls_orderbooks_and_matches_the_simulator(
        rec_home_db, start_service, sim, mode):
    di.prepare(rec_home_db, sim, REC_MARKET_FEED_MODE=mode,
               REC_MARKET_FEED_POLL_INTERVAL_SEC="0.2")
    svc = start_service(rec_home_db, di.FEED)
    await di.wait_notify(svc, "READY", "1")
    tickers = followed(sim)
    conn = await di.connect(rec_home_db)
    sim.sim.world.advance(30)

    async def same() -> bool:
        return await di.db_books(conn, tickers) == di.sim_books(sim, tickers)

    await di.until(same, 15, "polled books equal to the simulator's", svc)
    recs = await di.log_records(conn, tickers)
    assert recs and all(r.http for r in recs if r.kind in (feed_log.LEVEL, feed_log.BOOK))
    assert await di.log_books(conn, tickers) == di.sim_books(sim, tickers)
    await conn.close()
    assert svc.terminate() == 0


async def test_ws_down_falls_back_to_http_and_returns_to_ws(rec_home_db, start_service, sim):
    di.prepare(rec_home_db, sim, REC_MARKET_FEED_POLL_INTERVAL_SEC="0.2",
               REC_MARKET_FEED_FALLBACK_AFTER_FAILURES="3")
    svc = start_service(rec_home_db, di.FEED)
    await di.wait_notify(svc, "READY", "1")
    tickers = followed(sim)
    conn = await di.connect(rec_home_db)

    async def same() -> bool:
        return await di.db_books(conn, tickers) == di.sim_books(sim, tickers)

    # the WebSocket goes away and every new handshake is refused
    sim.sim.faults.error_status, sim.sim.faults.error_count = 503, 10_000
    sim.sim.faults.error_prefix = "/trade-api/ws"
    await sim.sim.hub.drop_all()
    await di.until(lambda: "feed switched ws -> http" in svc.output, 15, "switch to http", svc)
    sim.sim.world.advance(30)  # changes while polling
    await di.until(same, 15, "polled books equal to the simulator's", svc)
    polled = [r for r in await di.log_records(conn, tickers) if r.http and r.kind == feed_log.LEVEL]
    assert polled
    # the WebSocket comes back: the feed returns to it
    sim.sim.faults.clear()
    await di.until(lambda: "feed switched http -> ws" in svc.output, 15, "switch to ws", svc)
    sim.sim.world.advance(30)
    await di.until(same, 15, "books equal after returning to the WebSocket", svc)
    statuses = svc.notify.statuses()
    assert any("REST polling" in s for s in statuses), statuses
    assert any(s.startswith("market data over WebSocket") for s in statuses), statuses
    switches = [ln for ln in svc.output.splitlines() if "feed switched" in ln]
    assert len(switches) == 2 and all(ln.startswith("<4>") for ln in switches), switches
    await conn.close()
    assert svc.terminate() == 0


async def test_retention_prunes_old_rows_in_small_batches(rec_home_db, start_service, sim):
    di.prepare(rec_home_db, sim, REC_MARKET_FEED_RETENTION_DAYS="30",
               REC_MARKET_FEED_PRUNE_BATCH_ROWS="100", REC_MARKET_FEED_PRUNE_INTERVAL_SEC="0.5")
    conn = await di.connect(rec_home_db)
    # 250 history segments of 40 days ago, one of 31 and one of yesterday
    mid = (await feed_log.market_ids(conn, ["OLD"]))["OLD"]
    blob = feed_log.pack_segment(feed_log.level(mid, 0, "yes", Decimal("0.5"), Decimal(1)))
    await conn.execute(
        "INSERT INTO feed_log (market, t0, t1, sealed, data) SELECT %s, "
        "now() - make_interval(days => d), now() - make_interval(days => d), true, %s "
        "FROM unnest(array_fill(40, array[250]) || array[31, 1]) d", (mid, blob))
    svc = start_service(rec_home_db, di.FEED)
    await di.wait_notify(svc, "READY", "1")

    async def pruned() -> bool:
        n = await di.rows(conn, "SELECT count(*) FROM feed_log WHERE market = %s", mid)
        return n[0][0] == 1  # yesterday's stays

    await di.until(pruned, 15, "old segments pruned", svc)
    # the line follows the commit: wait for it rather than race it
    await di.until(lambda: "retention: deleted 251 segments older than 30 days" in svc.output,
                   10, "retention logged", svc)
    await conn.close()
    assert svc.terminate() == 0


async def test_error_25_for_a_lagging_feed_reconnects_and_books_are_exact_again(
        rec_home_db, start_service, tmp_path):
    handle, server = await fx.start_sim(tmp_path, ws_max_queue=300)
    try:
        di.prepare(rec_home_db, handle)
        svc = start_service(rec_home_db, di.FEED)
        await di.wait_notify(svc, "READY", "1")
        handle.sim.world.advance(900)  # a burst far beyond what the exchange queues for us
        await di.until(lambda: "(error 25)" in svc.output, 15, "error 25 logged", svc)
        tickers = followed(handle)
        conn = await di.connect(rec_home_db)

        async def same() -> bool:
            return await di.db_books(conn, tickers) == di.sim_books(handle, tickers)

        await di.until(same, 20, "books exact after the resync", svc)
        await conn.close()
        assert svc.terminate() == 0
    finally:
        await fx.stop_sim(handle, server)


async def test_sending_ts_ms_on_every_message_is_tolerated(rec_home_db, start_service, sim,
                                                           monkeypatch):
    # Kalshi may stamp every WebSocket message with its send time (top-level sending_ts_ms):
    # the simulator's frames carry it here, to the market feed, account sync and price feed
    from app.sim import ws as sim_ws

    put = sim_ws.Conn.put
    clock = sim.sim.exchange.clock

    def stamped(conn, text: str) -> None:
        if isinstance(text, str) and text.startswith("{"):
            text = f'{{"sending_ts_ms":{clock()},' + text[1:]
        put(conn, text)

    monkeypatch.setattr(sim_ws.Conn, "put", stamped)
    di.prepare(rec_home_db, sim, REC_TARGET_HOST="127.0.0.1",
               REC_PRICE_FEED_STALE_AFTER_SEC="3600")
    svcs = [start_service(rec_home_db, u) for u in ("market-feed", "account-sync",
                                                     "price-feed")]
    for svc in svcs:
        await di.wait_notify(svc, "READY", "1")
    conn = await di.connect(rec_home_db)
    index_rows = await di.count(conn, "index_prices")
    from tests.test_account_sync import db_ledger, ledger, trade

    await trade(sim, sim.client(), 2, "stamped")
    sim.sim.hub.skip_seq(None, 2)  # a resync, its snapshot stamped too
    sim.sim.world.advance(20)
    tickers = followed(sim)

    async def exact() -> bool:
        return (await di.db_books(conn, tickers) == di.sim_books(sim, tickers)
                and await db_ledger(conn) == ledger(sim)
                and await di.count(conn, "index_prices") > index_rows)

    await di.until(exact, 20, "books, ledger and index rows from stamped messages", svcs[0])
    await conn.close()
    for svc in svcs:
        assert "sending_ts_ms" not in svc.output, svc.output[-3000:]  # no complaint
        assert svc.terminate() == 0


def _delta(ticker: str, side: str, price: str, delta: str, ts: int = 0) -> dict:
    """An orderbook_delta frame as parsed off the wire."""
    return {"type": "orderbook_delta", "sid": 1, "seq": 1,
            "msg": {"market_ticker": ticker, "side": side, "price_dollars": price,
                    "delta_fp": delta, "ts_ms": ts}}


def test_the_feeds_own_book_refuses_a_delta_it_cannot_take():
    """KalshiWS keeps no levels for the feed (keep_books=False): the Tracker's book is the one
    that sees a delta going below zero (or one it cannot read), leaves itself unchanged and
    says so (the feed then asks KalshiWS.resync for a fresh snapshot); the deltas around it
    apply, in order, netted per level."""
    store = FeedStore(None, name="t", batch_rows=100, flush_interval=1, snapshot_interval=3600)
    store.ids.update(T=1, U=2)
    tracker = Tracker(store)
    tracker.book("T", {Decimal("0.40"): Decimal(5)}, {}, "ws", "initial")
    bad = [_delta("T", "yes", "0.4000", "-6.00"), _delta("T", "maybe", "0.40", "1.00"),
           _delta("T", "no", "0.40", None), _delta("T", "no", "x", "1.00")]
    refused = tracker.ws_deltas(bad)
    assert [t for t, _ in refused] == ["T"] * 4
    assert "would go to -1" in refused[0][1] and "'maybe'" in refused[1][1]
    assert tracker.markets["T"].yes == {Decimal("0.40"): Decimal(5)} and not store.batch.deltas
    assert not tracker.markets["T"].no and not store.batch.net
    ok = [_delta("T", "yes", "0.4000", "-5.00"), _delta("U", "yes", "0.10", "1.00"),
          _delta("T", "no", "0.60", "2.00"), _delta("T", "no", "0.60", "-1.00")]
    assert tracker.ws_deltas(ok) == []  # U has no book: skipped
    st = tracker.markets["T"]
    assert st.yes == {} and st.no == {Decimal("0.60"): Decimal(1)} and store.batch.deltas == 3
    assert {k: v[:2] for k, v in store.batch.net.items()} == {
        ("T", "yes", Decimal("0.40")): [Decimal(5), Decimal(0)],
        ("T", "no", Decimal("0.60")): [Decimal(0), Decimal(1)]}
    # the current book to store: the netted sizes, or a full book of the batch, in order
    tracker.book("T", {Decimal("0.30"): Decimal(2)}, {}, "ws", "resync")
    assert store.batch.levels == {} and not store.batch.net  # the book came after them
    tracker.ws_deltas([_delta("T", "yes", "0.30", "1.00"), _delta("T", "no", "0.50", "4.00")])
    store.batch.net_records()
    assert store.batch.replaced["T"] == ({Decimal("0.30"): Decimal(3)},
                                         {Decimal("0.50"): Decimal(4)})


async def test_a_lifecycle_message_between_deltas_applies_in_stream_order(app_db, tmp_path):
    """The feed takes deltas in runs (delta_runs): deltas, a lifecycle message closing one of
    their markets, then more deltas, all read at once, are applied in stream order - the
    closed market's deltas before it count, the one after it does not; a delta its book
    cannot take has that market resynced."""
    migrate(app_db.dsn, progress=lambda _: None)
    ex = FakeWsExchange()
    server, ex.url = await ws_fake.start_fake(ex)
    pool = AsyncConnectionPool(app_db.dsn, min_size=1, max_size=2, open=False)
    await pool.open(wait=True)
    feed = MarketFeedService(config.load({"REC_CONFIG_DIR": str(tmp_path)}))
    feed.pool = pool
    feed.store = store = FeedStore(pool, name="t", batch_rows=10_000, flush_interval=60,
                                   snapshot_interval=3600)
    feed.tracker = tracker = Tracker(store)
    await store.ensure_ids([T1, T2])
    feed.followed = dict.fromkeys([T1, T2])
    feed.ws = ws = ws_fake.fake_client(ex, keep_books=False, delta_runs=True)
    await ws.subscribe("orderbook_delta", market_tickers=[T1, T2])
    await ws.subscribe("market_lifecycle_v2")
    try:
        async with ws:
            consumer = asyncio.create_task(feed.consume())
            await di.until(lambda: {T1, T2} <= set(tracker.markets), 5, "both books")
            consumer.cancel()  # the next messages wait until they are all read
            await asyncio.gather(consumer, return_exceptions=True)
            async with ex.together():
                await ex.delta(T1, "yes", "0.55", "1")
                await ex.delta(T2, "yes", "0.20", "2")
                await ex.lifecycle(T1, "deactivated")
                await ex.delta(T1, "yes", "0.55", "-4")
                await ex.delta(T2, "yes", "0.20", "1")
            await di.until(lambda: ws.pending_messages() == 5, 5, "the burst read")
            consumer = asyncio.create_task(feed.consume())
            y20 = (T2, "yes", Decimal("0.20"))
            await di.until(lambda: y20 in store.batch.net and store.batch.net[y20][1] == 6, 5,
                           "the last delta applied")
            assert T1 not in feed.followed and T1 not in tracker.markets
            net = store.batch.net
            assert net[(T1, "yes", Decimal("0.55"))][:2] == [Decimal(10), Decimal(11)]
            assert net[y20][:2] == [Decimal(3), Decimal(6)]
            # a delta the feed's own book cannot take (below zero): that market is resynced
            for conn, subs in ex.subs.items():
                sid, sub = next((k, v) for k, v in subs.items()
                                if v["channel"] == "orderbook_delta")
                sub["seq"] += 1
                await ex.send(conn, {"type": "orderbook_delta", "sid": sid, "seq": sub["seq"],
                                     "msg": {"market_ticker": T2, "side": "no",
                                             "price_dollars": "0.3000", "delta_fp": "-1.00"}})

            def resynced() -> bool:
                return any(c["cmd"] == "update_subscription"
                           and c["params"]["market_tickers"] == [T2] for c in ex.commands)

            await di.until(resynced, 5, "a snapshot asked for T2")
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
    finally:
        await pool.close()
        server.close()
        await server.wait_closed()


def _sent_frames(monkeypatch, sim) -> list[dict]:
    """Every frame the simulator sends from now on, as the feed reads it (stamped with
    sending_ts_ms)."""
    from app.sim import ws as sim_ws

    sent: list[dict] = []
    stamped = sim_ws.Hub._stamped

    def keep(hub, text: str) -> str:
        out = stamped(hub, text)
        sent.append(orjson.loads(out))
        return out

    monkeypatch.setattr(sim_ws.Hub, "_stamped", keep)
    return sent


def _book_sub(sim):
    """The simulator's orderbook_delta subscription of the (one) feed connection."""
    return next(sub for conn in sim.sim.hub.conns for sub in conn.subs.values()
                if sub.channel == "orderbook_delta")


async def test_records_keep_the_exchanges_seq_and_times_and_gaps_are_recorded(
        rec_home_db, start_service, sim, monkeypatch, tmp_path):
    sent = _sent_frames(monkeypatch, sim)
    t0 = int(time.time() * 1000)
    svc = await di.started(start_service, rec_home_db, sim)
    tickers = followed(sim)
    conn = await di.connect(rec_home_db)
    sim.sim.world.advance(20)
    # a sequence gap: the next delta skips 3 seqs
    expected = _book_sub(sim).seq + 1
    assert sim.sim.hub.skip_seq(None, 3) == 1
    sim.sim.world.advance(20)

    async def gaps(reason: str) -> list[feed_log.Record]:
        return [r for r in await di.log_records(conn, tickers)
                if r.kind == feed_log.GAP and r.data["reason"] == reason]

    await di.until(lambda: _count(gaps("seq"), len(tickers)), 15, "a seq GAP per market", svc)
    assert {(r.data["channel"], r.data["expected"], r.data["got"]) for r in await gaps("seq")
            } == {("orderbook_delta", expected, expected + 3)}
    # an outage: every connection dropped, the feed reconnects
    down = int(time.time() * 1000)
    await sim.sim.hub.drop_all()
    await di.until(lambda: "websocket reconnected" in svc.output, 15, "reconnect", svc)
    sim.sim.world.advance(20)
    await di.until(lambda: _count(gaps("outage"), len(tickers)), 15, "an outage GAP per market",
                   svc)

    async def same() -> bool:
        return await di.db_books(conn, tickers) == di.sim_books(sim, tickers)

    await di.until(same, 20, "books exact after the gaps", svc)
    t1 = int(time.time() * 1000)
    ids = dict(await di.rows(conn, "SELECT id, ticker FROM feed_market_ids"))
    recs = await di.log_records(conn, tickers)
    for ticker in tickers:  # each GAP is followed by the market's resync BOOK
        mine = [r for r in recs if ids[r.market] == ticker]
        kinds = [r.kind for r in mine]
        for i in (i for i, k in enumerate(kinds) if k == feed_log.GAP):
            assert feed_log.BOOK in kinds[i + 1:], (ticker, kinds[i:])
    for r in await gaps("outage"):
        assert down <= r.data["since_ms"] <= r.ms <= t1

    # every WebSocket record keeps what the simulator sent: seq, ts_ms, sending_ts_ms
    def frames(kind: str) -> dict[tuple, dict]:
        return {(f["seq"] if "seq" in f else f["msg"]["ts_ms"], f["msg"]["market_ticker"],
                 f["sending_ts_ms"]): f for f in sent if f.get("type") == kind}

    deltas, snaps, trades = frames("orderbook_delta"), frames("orderbook_snapshot"), \
        frames("trade")
    ticks = frames("ticker")
    checked = {feed_log.LEVEL: 0, feed_log.BOOK: 0, feed_log.TRADE: 0, feed_log.TICK: 0}
    for r in recs:
        if r.kind == feed_log.GAP or r.http:
            continue
        ticker = ids[r.market]
        assert r.sending_ms is not None and t0 <= r.received_ms <= t1, r
        if r.kind == feed_log.LEVEL:
            key = (r.seq, ticker, r.sending_ms)
            if key in snaps:  # a level a snapshot changed
                assert snaps[key]["msg"].get("ts_ms") == r.exchange_ms, r
            else:
                f = deltas[key]["msg"]
                assert (f["side"], Decimal(f["price_dollars"]), f["ts_ms"]) == (
                    r.data[0], r.data[1], r.exchange_ms)
        elif r.kind == feed_log.BOOK:
            assert (r.seq, ticker, r.sending_ms) in snaps, r
        elif r.kind == feed_log.TRADE:
            f = trades[(r.seq, ticker, r.sending_ms)]["msg"]
            assert (f["ts_ms"], Decimal(f["yes_price_dollars"])) == (r.exchange_ms,
                                                                     r.data["yes_price"])
        else:
            assert r.seq is None and (r.exchange_ms, ticker, r.sending_ms) in ticks, r
        checked[r.kind] += 1
    assert all(checked.values()), checked

    # the export lists the gaps: as rows, and per market in the manifest
    out = tmp_path / "gaps.parquet"
    lo = min(r.ms for r in recs)
    r = rec_home_db.rec("record", "export", "--from", _iso(lo), "--to", _iso(t1 + 1000),
                        str(out))
    assert r.returncode == 0, r.stderr
    m = schema.read_manifest(str(out))
    listed = {(t, g["reason"], g.get("expected"), g.get("got"))
              for t, c in m["coverage"].items() for g in c.get("gaps", ())}
    assert listed == {(t, "seq", expected, expected + 3) for t in tickers} | {
        (t, "outage", None, None) for t in tickers}
    rows = duckdb.sql(f"SELECT ticker, gap_reason, expected_seq, got_seq FROM '{out}' "
                      "WHERE kind = 'gap'").fetchall()
    assert set(rows) == listed and len(rows) == 2 * len(tickers)
    levels = duckdb.sql(f"SELECT count(*), count(exchange_ts), count(sending_ms), "
                        f"count(received_at) FROM '{out}' WHERE kind = 'level' AND "
                        "exchange_seq IS NOT NULL").fetchall()
    assert levels[0][0] == checked[feed_log.LEVEL] and len(set(levels[0])) == 1, levels
    info = rec_home_db.rec("record", "info", str(out))
    assert info.returncode == 0 and f"market gaps: {2 * len(tickers)}" in info.stdout
    await conn.close()
    assert svc.terminate() == 0


async def _count(got, n: int) -> bool:
    return len(await got) >= n


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()
