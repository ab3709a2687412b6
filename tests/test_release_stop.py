"""A release switch stops rec-trade-executor after trading (docs/bundle.md, "Releases"): its
stop must leave no order in doubt. An order whose answer the exchange still holds when SIGTERM
arrives is waited for, and its outcome written, before the executor exits."""

from __future__ import annotations

import asyncio
import signal

from tests import data_in_fixtures as di
from tests import test_sim_fixtures as fx
from tests import trading_fixtures as tf

sim = fx.sim
ORDERS = "/trade-api/v2/portfolio/events/orders"


async def test_the_executor_stop_waits_for_the_order_in_flight_and_writes_its_outcome(
        rec_home_db, start_service, sim):
    home = rec_home_db
    procs = await tf.start_trading(home, sim, start_service)
    executor = procs["executor"]
    await sim.control("hold", path=ORDERS)  # served at the exchange, the answer held
    before = len(tf.sim_orders(sim))
    r = await tf.post_trade(home, {"intent": "open", "idempotency_key": "stop-1",
                                   "market": sim.open_tickers("KXBTCD")[5], "side": "yes",
                                   "count": 1, "limit_price": "0.99", "strategy": "manual"})
    assert r.status_code in (200, 201, 202), r.text
    await di.until(lambda: len(tf.sim_orders(sim)) > before, 15, "the order at the exchange",
                   executor)
    coid = tf.sim_orders(sim)[-1].client_order_id
    executor.proc.send_signal(signal.SIGTERM)
    await di.wait_notify(executor, "STOPPING", "1")
    # the answer comes only once the stop is under way: the executor waits for it, or has
    # already exited (then the leg stays unsettled: the failure this test is for)
    await di.until(lambda: executor.proc.poll() is not None or "in flight" in executor.output,
                   15, "the executor waiting for its order, or gone", executor)
    await sim.control("release", path=ORDERS)
    assert await asyncio.to_thread(executor.wait, 30) == 0, executor.output[-4000:]
    conn = await di.connect(home)
    try:
        rows = await di.rows(conn, "SELECT state, exchange_order_id FROM trade_orders "
                                   "WHERE client_order_id = %s", coid)
    finally:
        await conn.close()
    assert rows and rows[0][0] != "new" and rows[0][1], (rows, executor.output[-4000:])
