"""A PostgreSQL restart under the running data and pricing units (rec-market-feed,
rec-account-sync, rec-price-feed, rec-coordinator): each waits for the database (a warning
line, STATUS= says so) and goes on where it was, none exits; what happened at the exchange
while the database was down reaches the tables afterwards."""

from __future__ import annotations

import asyncio

from tests import data_in_fixtures as di
from tests import test_sim_fixtures as fx
from tests.test_account_sync import db_ledger, ledger, trade

sim = fx.sim
UNITS = ("market-feed", "account-sync", "price-feed", "coordinator")


async def test_postgres_restart_costs_every_unit_a_wait_not_a_crash(
        rec_home_db, start_service, sim):
    di.prepare(rec_home_db, sim, REC_TARGET_HOST="127.0.0.1",
               REC_ACCOUNT_SYNC_RECONCILE_INTERVAL_SEC="3600",
               REC_PRICE_FEED_STALE_AFTER_SEC="3600", REC_DB_CONNECT_TIMEOUT_SEC="2")
    svcs = {u: start_service(rec_home_db, u) for u in UNITS}
    for svc in svcs.values():
        await di.wait_notify(svc, "READY", "1")
    c = sim.client()
    conn = await di.connect(rec_home_db)
    index_rows = await di.count(conn, "index_prices")
    await conn.close()

    # down for 3 s with everything running; the exchange goes on meanwhile: fills on the
    # account, book changes, index values (kill-free: the units must ride it out)
    server = rec_home_db.db.server
    await asyncio.to_thread(server.stop)
    await trade(sim, c, 2, "while the database is down")
    for _ in range(3):
        sim.sim.world.advance(1)
        await asyncio.sleep(1.0)
    await asyncio.to_thread(server.restart)

    # the books, the ledger and the index carry on from the exchange
    conn = await di.connect(rec_home_db)
    tickers = sim.open_tickers("KXBTCD") + sim.open_tickers("KXBTC") + sim.open_tickers("KXETHD")
    sim.sim.world.advance(5)

    async def books_equal() -> bool:
        return await di.db_books(conn, tickers) == di.sim_books(sim, tickers)

    async def ledger_equal() -> bool:
        return await db_ledger(conn) == ledger(sim)

    async def index_moved() -> bool:
        return await di.count(conn, "index_prices") > index_rows

    async def priced_again() -> bool:
        got = await di.rows(conn, "SELECT count(*) FROM series_status "
                                  "WHERE updated_at > now() - interval '2 seconds'")
        return got[0][0] > 0

    await di.until(books_equal, 20, "books equal to the simulator's", svcs["market-feed"])
    await di.until(ledger_equal, 20, "ledger equal to the exchange's", svcs["account-sync"])
    await di.until(index_moved, 20, "index rows written again", svcs["price-feed"])
    await di.until(priced_again, 20, "coordinator cycles write again", svcs["coordinator"])
    await conn.close()
    for u, svc in svcs.items():
        assert svc.proc.poll() is None, f"{u} exited:\n{svc.output[-3000:]}"
        assert "database back after" in svc.output, f"{u}:\n{svc.output[-3000:]}"
        warn = [ln for ln in svc.output.splitlines()
                if ln.startswith("<4>") and "database unavailable" in ln]
        assert warn, f"{u}: no warning line\n{svc.output[-3000:]}"
        assert any(s.startswith("waiting for the database")
                   for s in svc.notify.statuses()), (u, svc.notify.statuses())

    for u, svc in svcs.items():
        assert svc.terminate() == 0, f"{u}:\n{svc.output[-3000:]}"
