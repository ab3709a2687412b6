"""A simulated day, every service a real process, auto entry on (not a dry run): hourly
events traded and settled at the simulator's speed factor, through injected faults - the
executor killed with kill -9 between send and acknowledgement (the simulator holds the
answer), lost answers, 429 and 5xx storms on the order endpoint, every WebSocket dropped and a
trading pause. Trades, fees and P&L in the database equal the simulator's ledger to the cent;
exactly one exchange order per intent; every event settled and booked.

REC_DAY_HOURS and REC_DAY_SPEED (simulated seconds per wall second) size the run: 6 hours
at 300x here (about 90 s of wall time on a loaded 2-core machine); benchmarks/trading_day.py
runs the whole day (24 hours)."""

from __future__ import annotations

import os
import signal
import time

from app.sim.market import FINALIZED
from testkit.sim import START_MS
from tests import data_in_fixtures as di
from tests import trading_fixtures as tf
from tests.test_trading_hour import SETTINGS, fast_sim  # noqa: F401 - the fixture

HOURS = int(os.environ.get("REC_DAY_HOURS", "6"))
SPEED = float(os.environ.get("REC_DAY_SPEED", "300"))
ORDERS = "/trade-api/v2/portfolio/events/orders"
FIRST_CLOSE_MS = START_MS + tf.HOUR_MS
END_MS = START_MS + HOURS * tf.HOUR_MS
HALT_SEC = 900  # the trading pause, simulated seconds


def at(fraction: float) -> int:
    """A moment of the day (its fraction), in simulated ms."""
    return START_MS + 60_000 + int(fraction * (END_MS - START_MS - 60_000))


DAY_EVENTS: set[str] = set()  # the day's KXBTCD events (the simulator forgets settled ones)


def note_events(sim) -> None:
    DAY_EVENTS.update(e.event_ticker for e in sim.sim.exchange.events.values()
                      if e.series_ticker == "KXBTCD"
                      and FIRST_CLOSE_MS <= e.strike_ms <= END_MS)


async def until_sim(sim, ms: int, svc) -> None:
    def reached() -> bool:
        note_events(sim)
        return sim.sim.world.now_ms >= ms

    await di.until(reached, 200, f"simulated time {ms}", svc)


async def open_events(conn) -> set[str]:
    return {r[0] for r in await di.rows(
        conn, "SELECT DISTINCT event_ticker FROM markets WHERE series_ticker = 'KXBTCD' "
              "AND status IN ('active', 'open')")}


async def kill_between_send_and_ack(sim, home, start_service, procs, clock, acct) -> None:
    """The simulator holds the answer of the next order; the executor is killed (-9) while it
    waits; restarted, it finds the order at the exchange before anything else."""
    await sim.control("hold", path=ORDERS)
    before = len(acct.orders)
    await di.until(lambda: len(acct.orders) > before, 60, "an auto entry's order held",
                   procs["auto-entry"])
    clock.pause()
    procs["trade-executor"].proc.send_signal(signal.SIGKILL)
    procs["trade-executor"].proc.wait(10)
    await sim.control("release", path=ORDERS)
    procs["trade-executor"] = start_service(home, "trade-executor")
    await di.wait_notify(procs["trade-executor"], "READY", "1")
    out = procs["trade-executor"].output
    assert "in-doubt order" in out and "found at the exchange" in out, out[-3000:]
    clock.resume()


async def table_sizes(conn) -> dict[str, tuple[int, int]]:
    """Every table's bytes on disk (with its indexes and TOAST) and its live rows."""
    return {t: (size, rows) for t, size, rows in await di.rows(
        conn, "SELECT relname, pg_total_relation_size(relid), n_live_tup "
              "FROM pg_stat_user_tables")}


async def test_a_simulated_day_trades_on_its_own_exactly_once_through_faults(
        fast_sim, rec_home_db, start_service):  # noqa: F811 - the fixture
    sim = fast_sim
    t0 = time.monotonic()
    acct = sim.sim.account(sim.signer.key_id)
    balance0 = acct.balance
    procs = await tf.start_all(rec_home_db, sim, start_service,
                               {**SETTINGS, "auto_entry_max_ttc_sec": 3400})
    conn = await di.connect(rec_home_db)
    sizes0 = await table_sizes(conn)
    clock = tf.SimClock(sim, SPEED)
    mgr = procs["trade-manager"]
    await until_sim(sim, at(0.08), mgr)
    await kill_between_send_and_ack(sim, rec_home_db, start_service, procs, clock, acct)
    for fraction, action, kw in [(0.2, "lose_response", {"status": 502, "count": 2}),
                                 (0.3, "http_error", {"status": 429, "count": 3}),
                                 (0.4, "http_error", {"status": 503, "count": 3}),
                                 (0.45, "lose_response", {"status": 504, "count": 1})]:
        await until_sim(sim, at(fraction), mgr)
        await sim.control(action, path_prefix=ORDERS, **kw)
    await until_sim(sim, at(0.5), mgr)
    await sim.control("drop_ws")
    await until_sim(sim, at(0.6), mgr)
    await sim.control("halt", on=True)
    halt_on = sim.sim.world.now_ms
    await until_sim(sim, halt_on + HALT_SEC * 1000, mgr)
    await sim.control("halt", on=False)
    halt_off = sim.sim.world.now_ms
    await until_sim(sim, END_MS, mgr)
    await tf.until_settled(conn, sim, END_MS, 300, mgr)
    day = set(DAY_EVENTS)

    async def rec_saw_every_close() -> bool:
        return not day & await open_events(conn)

    await di.until(rec_saw_every_close, 60, "rec-market-feed seeing every event close",
                   procs["market-feed"])
    clock.stop()
    wall = time.monotonic() - t0

    trades = await di.rows(conn, "SELECT id, status, quantity, fees, pnl_cents, close_method, "
                                 "close_rule, entry_method, event_ticker FROM trades "
                                 "ORDER BY id")
    legs = dict(await di.rows(conn, "SELECT client_order_id, state FROM trade_orders"))
    booked = {r[0]: r[1] for r in await di.rows(
        conn, "SELECT ticker, market_result FROM account_settlements")}
    held_to_close = await di.rows(conn, "SELECT ticker, market_result FROM trades "
                                        "WHERE status = 'expired' AND entry_cost IS NOT NULL")
    if os.environ.get("REC_DAY_DISK"):  # benchmarks/disk_growth.py: each table's growth
        for table, (size, tuples) in (await table_sizes(conn)).items():
            print(f"disk: {table} {size - sizes0.get(table, (0, 0))[0]} "
                  f"{tuples - sizes0.get(table, (0, 0))[1]}")
    await conn.close()
    ledger_cents, fees = tf.assert_ledger(acct, balance0, trades)
    # exactly one exchange order per intent: every order is a leg's, every sent leg has one
    at_exchange = {o.client_order_id: o for o in acct.orders.values()}
    assert set(at_exchange) <= set(legs), set(at_exchange) - set(legs)
    sent = {c for c, state in legs.items() if state in ("accepted", "canceled", "cancel")}
    assert sent <= set(at_exchange), sent - set(at_exchange)
    # nothing was sent during the pause
    assert not [o for o in acct.orders.values() if halt_on < o.created_ms < halt_off]
    # every hourly event of the day closed, settled at the exchange and booked in rec
    assert len(day) == HOURS
    assert all(m.status == FINALIZED for m in sim.sim.exchange.markets.values()
               if m.event_ticker in day)  # (or no longer listed: removed once settled)
    # every settlement of the account booked by rec, and in every trade held to the close
    assert booked == {r.ticker: r.result for r in acct.settlements}
    assert held_to_close and all(result == booked[t] for t, result in held_to_close)
    settled_hours = {booked_t.rsplit("-", 1)[0] for booked_t in booked}
    # auto entry traded on its own, in many hours
    assert all(t[7] == "auto" for t in trades)
    opened = [t for t in trades if t[4] is not None]
    hours_traded = {t[8] for t in opened}
    assert len(hours_traded) >= max(2, HOURS // 3), hours_traded
    ways: dict[str, int] = {}
    for t in opened:
        key = f"{t[1]}/{t[5]}/{t[6] or '-'}"
        ways[key] = ways.get(key, 0) + 1
    print(f"\nday: {HOURS} h at {SPEED:g}x in {wall:.0f} s wall; {len(trades)} trades (open "
          f"intents), {len(sent)} legs sent, {len(at_exchange)} exchange orders, "
          f"{len(opened)} trades with P&L in "
          f"{len(hours_traded)} hours; outcomes {ways}; events settled {len(day)}, "
          f"{len(settled_hours)} with a position booked at settlement; "
          f"P&L {ledger_cents} cents = ledger; fees ${fees}")
    for p in procs.values():
        assert p.terminate() == 0
