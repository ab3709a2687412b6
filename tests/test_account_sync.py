"""rec-account-sync as a real process against the simulator and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests import data_in_fixtures as di
from tests import test_sim_fixtures as fx

sim = fx.sim
UNIT = Decimal(10_000)  # the simulator keeps money in $0.0001


def ledger(h: fx.SimHandle) -> dict:
    acct = h.sim.account(h.signer.key_id)
    return {
        "fills": {(f.fill_id, f.order_id): (Decimal(f.count), Decimal(f.yes_price) / UNIT,
                                            Decimal(f.fee) / UNIT) for f in acct.fills},
        "orders": {o.order_id: (o.status, Decimal(o.filled), Decimal(o.remaining))
                   for o in acct.orders.values()},
        "positions": {t: Decimal(p.position) for t, p in acct.positions.items() if p.position},
        "balance": acct.balance // 100,
        "settlements": {x.ticker: (x.result, Decimal(x.yes_count), Decimal(x.no_count))
                        for x in acct.settlements},
    }


async def db_ledger(conn) -> dict:
    fills = await di.rows(conn, "SELECT trade_id, order_id, count, yes_price, fee "
                                "FROM account_fills")
    orders = await di.rows(conn, "SELECT order_id, status, fill_count, remaining_count "
                                 "FROM account_orders")
    positions = await di.rows(conn, "SELECT ticker, position FROM account_positions "
                                    "WHERE position <> 0")
    balance = await di.rows(conn, "SELECT balance_cents FROM account_balance")
    settled = await di.rows(conn, "SELECT ticker, market_result, yes_count, no_count "
                                  "FROM account_settlements")
    return {
        "fills": {(t, o): (c, p, f) for t, o, c, p, f in fills},
        "orders": {o: (s, f, r) for o, s, f, r in orders},
        "positions": dict(positions),
        "balance": balance[0][0] if balance else None,
        "settlements": {t: (r, y, n) for t, r, y, n in settled},
    }


async def trade(h: fx.SimHandle, c, n: int, tag: str) -> None:
    """n rounds of activity on the test's account: takers that fill, orders that rest,
    a cancel, and simulated time for the market makers' flow to hit resting orders."""
    tickers = h.open_tickers("KXBTCD")
    for i in range(n):
        t = tickers[i % len(tickers)]
        await fx.place(c, t, side="yes", action="buy", count=2, price=99)
        await fx.place(c, t, side="no", action="buy", count=1, price=99)
        resting = await fx.place(c, t, side="yes", action="buy", count=3, price=2)
        if i % 2:
            r = await c.delete(f"{fx.ORDERS}/{resting['order_id']}")
            assert r.status_code == 200, r.text
        h.sim.world.advance(5)


async def test_ledger_in_db_equals_the_exchange_after_ws_drops_and_kill_9(
        rec_home_db, start_service, sim):
    di.prepare(rec_home_db, sim, REC_ACCOUNT_SYNC_RECONCILE_INTERVAL_SEC="3600")
    c = sim.client()
    await trade(sim, c, 3, "before start")  # history for the initial sync
    svc = start_service(rec_home_db, di.ACCOUNT, watchdog_usec=2_000_000)
    await di.wait_notify(svc, "READY", "1")
    statuses = svc.notify.statuses()
    for step in ("balance", "positions page 1", "orders page 1", "fills page 1",
                 "settlements page 1"):
        assert f"initial sync: {step}" in statuses, statuses
    conn = await di.connect(rec_home_db)

    async def exact() -> bool:
        return await db_ledger(conn) == ledger(sim)

    await di.until(exact, 10, "ledger after the initial sync", svc)
    await trade(sim, c, 3, "live")  # over the WebSocket
    await di.until(exact, 10, "ledger after live fills", svc)

    # the WebSocket drops and stays away while fills happen: only REST has them
    sim.sim.faults.error_status, sim.sim.faults.error_count = 503, 10_000
    sim.sim.faults.error_prefix = "/trade-api/ws"
    await sim.sim.hub.drop_all()
    await trade(sim, c, 3, "while the WS is down")
    sim.sim.faults.clear()
    await di.until(lambda: "reconcile (after reconnect) done" in svc.output, 15,
                   "reconcile after the reconnect", svc)
    await di.until(exact, 10, "ledger after the reconnect", svc)

    # kill -9 in the middle of activity, more fills while it is dead, then a restart
    more = asyncio.create_task(trade(sim, c, 3, "around the kill"))
    await asyncio.sleep(0.05)
    svc.proc.send_signal(signal.SIGKILL)
    svc.proc.wait(10)
    await more
    await trade(sim, c, 2, "while down")
    again = start_service(rec_home_db, di.ACCOUNT)
    await di.wait_notify(again, "READY", "1")
    await di.until(exact, 10, "ledger after kill -9 and restart", again)
    got = await db_ledger(conn)
    assert len(got["fills"]) == len(sim.sim.account(sim.signer.key_id).fills) >= 10
    dupes = await di.rows(conn, "SELECT count(*) - count(DISTINCT (trade_id, order_id)) "
                                "FROM account_fills")
    assert dupes[0][0] == 0
    # the hour ends: the markets close and settle; settlements arrive over REST
    sim.sim.world.advance(3700)
    await di.until(lambda: "reconcile (settlement) done" in again.output, 15, "settlement", again)
    await di.until(exact, 10, "ledger after settlement", again)
    assert (await db_ledger(conn))["settlements"]
    await conn.close()
    assert again.terminate() == 0


async def test_fills_behind_the_history_cutoff_reach_the_mirror(rec_home_db, start_service,
                                                                 sim):
    """Kalshi serves fills older than its history cutoff (about two weeks) only under
    /historical/fills: a fresh install on an account with a history, and a sync that was away
    longer than the cutoff, still mirror every fill (before: the mirror missed them all)."""
    di.prepare(rec_home_db, sim, REC_ACCOUNT_SYNC_RECONCILE_INTERVAL_SEC="3600")
    c, other = sim.client(), sim.client(fx.signer("other-key"))
    ticker = sim.open_tickers("KXBTCD")[3]

    async def cross(count: int) -> None:  # the test's account buys YES from another account
        await fx.place(other, ticker, side="no", action="buy", count=count, price=1)
        got = await fx.place(c, ticker, side="yes", action="buy", count=count, price=99)
        assert got["fill_count_fp"] == f"{count}.00", got

    await cross(2)
    sim.sim.config.fill_history_ms = 0  # every fill made before now is historical
    sim.sim.world.advance(1)
    assert (await c.get("/portfolio/fills")).json()["fills"] == []
    svc = start_service(rec_home_db, di.ACCOUNT)
    await di.wait_notify(svc, "READY", "1")
    conn = await di.connect(rec_home_db)

    async def exact() -> bool:
        return await db_ledger(conn) == ledger(sim)

    await di.until(exact, 10, "the historical fills in the mirror", svc)
    first = len((await db_ledger(conn))["fills"])
    assert first > 0
    assert svc.terminate() == 0
    await cross(3)  # while the sync was away
    sim.sim.world.advance(1)
    again = start_service(rec_home_db, di.ACCOUNT)
    await di.wait_notify(again, "READY", "1")
    await di.until(exact, 10, "the fills made while away, historical by now", again)
    assert len((await db_ledger(conn))["fills"]) > first
    await conn.close()
    assert again.terminate() == 0


async def test_hung_positions_endpoint_exits_within_the_deadline_naming_the_step(
        rec_home_db, start_service, sim):
    di.prepare(rec_home_db, sim, REC_ACCOUNT_SYNC_INITIAL_DEADLINE_SEC="2")
    sim.sim.faults.hang("/trade-api/v2/portfolio/positions")
    try:
        svc = start_service(rec_home_db, di.ACCOUNT)
        code = await asyncio.to_thread(svc.wait, 20)
    finally:
        sim.sim.faults.release()
    assert code == 1
    errs = [ln for ln in svc.output.splitlines() if ln.startswith("<3>")]
    assert any("initial sync did not finish within 2s: step 'positions page 1' hung" in ln
               for ln in errs), svc.output
    assert "initial sync: positions page 1" in svc.notify.statuses()
    assert not svc.notify.with_key("READY")


async def test_5xx_and_429_bursts_are_retried_and_logged(rec_home_db, start_service, sim):
    di.prepare(rec_home_db, sim)
    c = sim.client()
    await trade(sim, c, 2, "history")
    sim.sim.faults.error_status, sim.sim.faults.error_count = 503, 2
    sim.sim.faults.error_prefix = "/trade-api/v2/portfolio/fills"
    svc = start_service(rec_home_db, di.ACCOUNT)
    await di.wait_notify(svc, "READY", "1")
    sim.sim.faults.error_status, sim.sim.faults.error_count = 429, 2
    sim.sim.faults.error_prefix = "/trade-api/v2/portfolio/balance"
    await trade(sim, c, 1, "live")
    await di.until(lambda: "HTTP 429" in svc.output, 10, "429 logged", svc)
    retries = [ln for ln in svc.output.splitlines() if "retry" in ln and ln.startswith("<4>")]
    assert any("HTTP 503" in ln for ln in retries), svc.output
    conn = await di.connect(rec_home_db)
    await di.until(lambda: _exact(conn, sim), 10, "ledger exact despite the errors", svc)
    await conn.close()
    assert svc.terminate() == 0


async def _exact(conn, h) -> bool:
    return await db_ledger(conn) == ledger(h)


def test_missing_kalshi_key_is_one_line_and_exit_78(rec_home_db, start_service):
    assert rec_home_db.rec("db", "migrate").returncode == 0
    svc = start_service(rec_home_db, "account-sync")
    assert svc.wait(timeout=15) == 78
    lines = svc.output.strip().splitlines()
    assert len(lines) == 1, lines
    assert "config error: credential kalshi_key_id: missing" in lines[0]
    assert not svc.notify.with_key("READY")


async def test_a_seq_gap_reconciles_and_finds_the_fill_the_websocket_lost(
        rec_home_db, start_service, sim):
    # no periodic reconcile within the test: only the gap can bring the lost fill
    di.prepare(rec_home_db, sim, REC_ACCOUNT_SYNC_RECONCILE_INTERVAL_SEC="3600")
    svc = start_service(rec_home_db, di.ACCOUNT)
    await di.wait_notify(svc, "READY", "1")
    conn = await di.connect(rec_home_db)
    c = sim.client()
    hub = sim.sim.hub
    lost: list = []
    hub.fill = lambda account, fill, market: lost.append(fill)  # the fill message is lost
    try:
        tickers = sim.open_tickers("KXBTCD")
        for t in tickers[len(tickers) // 2:len(tickers) // 2 + 2]:  # at the money: asks < 99
            await fx.place(c, t, side="yes", action="buy", count=2, price=99)
    finally:
        del hub.fill  # the simulator's own method again
    assert lost
    # a sequenced message of the account's connection skips seqs (the simulator sequences
    # market_lifecycle_v2, not fill or user_orders): a halt and its end send them
    lifecycle = [s for conn_ in hub.conns for s in conn_.subs.values()
                 if s.channel == "market_lifecycle_v2"]
    sim.sim.exchange.set_trading(False)  # seqs 1..n: the client's count starts
    assert lifecycle and all(hub.skip_seq(s.sid, 2) for s in lifecycle)
    sim.sim.exchange.set_trading(True)
    await di.until(lambda: "reconcile (seq gap) done" in svc.output, 15, "gap reconcile", svc)
    await di.until(lambda: _exact(conn, sim), 10, "the lost fill stored", svc)
    stored = {t for (t,) in await di.rows(conn, "SELECT trade_id FROM account_fills")}
    assert {f.fill_id for f in lost} <= stored
    await conn.close()
    assert svc.terminate() == 0


async def test_an_older_order_report_never_moves_an_order_backwards(rec_home_db):
    from app.services.account_sync import ORDER_SQL

    assert rec_home_db.rec("db", "migrate").returncode == 0
    conn = await di.connect(rec_home_db)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def report(oid: str, status: str, filled: int, left: int, at: datetime | None) -> tuple:
        return (oid, "c-" + oid, "KXT-1", "yes", "bid", "limit", status, Decimal("0.5"),
                Decimal(filled), Decimal(left), Decimal(3), t0, at)

    async def apply(*rows: tuple) -> None:
        async with conn.cursor() as cur:
            await cur.executemany(ORDER_SQL, rows)

    later = t0 + timedelta(seconds=5)
    # final reports first, then older ones (a WS report without its update time included)
    await apply(report("o-exec", "executed", 3, 0, later), report("o-cxl", "canceled", 0, 0, later),
                report("o-part", "resting", 2, 1, later))
    await apply(report("o-exec", "resting", 3, 0, None), report("o-exec", "resting", 1, 2, t0),
                report("o-cxl", "resting", 0, 3, None), report("o-cxl", "resting", 0, 3, t0),
                report("o-part", "resting", 1, 2, t0), report("o-part", "resting", 1, 2, None))
    got = dict((o, (s, f, r)) for o, s, f, r in await di.rows(
        conn, "SELECT order_id, status, fill_count, remaining_count FROM account_orders"))
    assert got == {"o-exec": ("executed", 3, 0), "o-cxl": ("canceled", 0, 0),
                   "o-part": ("resting", 2, 1)}
    # a newer report still moves an order forward
    await apply(report("o-part", "executed", 3, 0, later + timedelta(seconds=1)))
    got = await di.rows(conn, "SELECT status, fill_count FROM account_orders "
                              "WHERE order_id = 'o-part'")
    assert got == [("executed", 3)]
    await conn.close()
