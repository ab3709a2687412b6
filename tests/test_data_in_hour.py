"""Issue 11's "done means": rec-market-feed and rec-account-sync run as real processes for a
simulated hour at the default (busy-hour) activity while every fault is injected - WebSocket
drops, seq gaps, 5xx and 429 bursts on both services' REST calls, a kill -9 of each service
(restarted as systemd's Restart=on-failure would) - and the database then matches the
exchange exactly: the current books and the books rebuilt from the history equal the
simulator's, the fills, orders, positions, balance and settlements equal its ledger, and
nothing is stored twice. The figures are printed (``pytest -s``)."""

from __future__ import annotations

import asyncio
import json
import signal
import time

from app import config
from app.db import feed_log
from tests import data_in_fixtures as di
from tests import test_account_sync as acct
from tests import test_sim_fixtures as fx
from tests.test_market_feed import followed

BUSY = json.loads(config.DEFAULT_FILE.read_text())["sim_activity"]
RESTART_SEC = 0.5  # the units' RestartSec= is longer; the restart itself is the same


async def kill_9_and_restart(svc, rec_home_db, start_service, service: str,
                             outputs: list[str]):
    """SIGKILL the process, then start it again as Restart=on-failure would; READY again.
    The killed run's output goes to ``outputs`` (the new run writes the same log file)."""
    svc.proc.send_signal(signal.SIGKILL)
    assert await asyncio.to_thread(svc.proc.wait, 10) == -signal.SIGKILL
    outputs.append(svc.output)
    await asyncio.sleep(RESTART_SEC)
    again = start_service(rec_home_db, service)
    await di.wait_notify(again, "READY", "1", 60)
    return again


def burst(h: fx.SimHandle, status: int, prefix: str, n: int = 2) -> None:
    f = h.sim.faults
    f.error_status, f.error_count, f.error_prefix = status, n, prefix


async def test_both_services_a_simulated_hour_with_every_fault_and_the_db_matches(
        rec_home_db, start_service, tmp_path):
    h, server = await fx.start_sim(tmp_path, activity_per_min=BUSY)
    try:
        # compaction and sealing as often as a simulated hour in a minute calls for
        di.prepare(rec_home_db, h, REC_ACCOUNT_SYNC_RECONCILE_INTERVAL_SEC="3600",
                   REC_MARKET_FEED_COMPACT_INTERVAL_SEC="0.5", REC_MARKET_FEED_SEGMENT_SEC="10")
        c = h.client()
        await acct.trade(h, c, 2, "history")  # something for the initial sync
        feed = start_service(rec_home_db, di.FEED)
        sync = start_service(rec_home_db, di.ACCOUNT)
        await di.wait_notify(feed, "READY", "1")
        await di.wait_notify(sync, "READY", "1")
        feeds, syncs = [feed], [sync]
        feed_out: list[str] = []
        sync_out: list[str] = []
        sent0, t0 = h.sim.hub.sent, time.monotonic()
        gaps = drops = 0
        # the faults, by simulated minute
        for minute in range(60):
            if minute in (5, 40):
                # the reconcile after the reconnect runs into a 5xx or 429 burst
                burst(h, *((503, "/trade-api/v2/portfolio/fills") if minute == 5 else
                           (429, "/trade-api/v2/portfolio/balance")))
                drops += 1
                await h.sim.hub.drop_all()  # every WebSocket of both services
            if minute in (10, 25, 50):
                gaps += 1
                assert h.sim.hub.skip_seq(None, 3) > 0
            if minute == 30:
                # the restarted feed discovers its markets through a 503 burst
                burst(h, 503, "/trade-api/v2/markets")
                feeds.append(await kill_9_and_restart(feeds[-1], rec_home_db, start_service,
                                                      di.FEED, feed_out))
            if minute == 45:
                syncs.append(await kill_9_and_restart(syncs[-1], rec_home_db, start_service,
                                                      di.ACCOUNT, sync_out))
            if minute % 4 == 1:
                await acct.trade(h, c, 1, f"minute {minute}")  # 5 simulated seconds
                steps = 55
            else:
                steps = 60
            for _ in range(steps // 5):
                h.sim.world.advance(5)
                await asyncio.sleep(0.02)
        # the settlement of the hour's event, then quiet: everything must have arrived
        h.sim.world.advance(120)
        h.sim.faults.clear()
        feed, sync = feeds[-1], syncs[-1]
        conn = await di.connect(rec_home_db)
        tickers = followed(h)

        async def books_exact() -> bool:
            return await di.db_books(conn, tickers) == di.sim_books(h, tickers)

        async def ledger_exact() -> bool:
            return await acct.db_ledger(conn) == acct.ledger(h)

        await di.until(books_exact, 60, "DB books equal to the simulator's", feed)
        await di.until(ledger_exact, 60, "DB ledger equal to the simulator's", sync)
        wall = time.monotonic() - t0
        # the history alone rebuilds the same books, through sealed (by column, LZMA) segments
        sealed = await di.rows(conn, "SELECT count(*) FROM feed_log WHERE sealed AND "
                                     "get_byte(data, 0) = %s", feed_log.LZMA)
        assert sealed[0][0] > 0
        assert await di.log_books(conn, tickers) == di.sim_books(h, tickers)
        # nothing stored twice: every public trade in the history is one of the simulator's,
        # stored once (the history keeps no trade ids), every fill once
        recs = await di.log_records(conn)
        stored = await di.stored_tickers(conn)
        trades = await di.log_trades(conn, stored)
        extra = trades - di.sim_trades(h, stored)
        assert trades and not extra, extra
        dupes = await di.rows(conn, "SELECT count(*) - count(DISTINCT (trade_id, order_id)) "
                                    "FROM account_fills")
        assert dupes[0][0] == 0
        ledger = acct.ledger(h)
        assert len(ledger["fills"]) >= 20 and ledger["settlements"]
        # every fault was seen and recovered from, by both services
        out_feed = "".join(feed_out) + feed.output
        out_sync = "".join(sync_out) + sync.output
        gaps_seen = out_feed.count("asking for a fresh snapshot")
        assert gaps_seen >= gaps, out_feed[-3000:]
        assert out_feed.count("websocket reconnected") >= drops
        assert out_sync.count("websocket reconnected: reconciling") >= drops, "\n".join(
            ln for ln in out_sync.splitlines() if "reconcil" in ln or "websocket" in ln)
        assert "HTTP 503" in out_sync and "HTTP 429" in out_sync
        assert "HTTP 503" in feed.output, feed.output[-3000:]  # the restarted feed's discovery
        assert len(feeds) == len(syncs) == 2
        assert not [ln for ln in (out_feed + out_sync).splitlines() if ln.startswith("<3>")]
        msgs = h.sim.hub.sent - sent0
        print(f"\nsimulated hour with faults: {wall:.0f} s wall, {msgs:,} WS messages sent, "
              f"{trades.total():,} public trades and {len(recs):,} history records stored, "
              f"{gaps_seen} seq gaps recovered, {drops} WS drops, "
              f"{len(ledger['fills'])} fills, {len(ledger['orders'])} orders, restarts: "
              f"feed {len(feeds) - 1}, account sync {len(syncs) - 1}")
        await conn.close()
        assert feed.terminate() == 0 and sync.terminate() == 0
    finally:
        await fx.stop_sim(h, server)
