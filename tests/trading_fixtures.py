"""Helpers for the trading service tests: the simulator in the test's loop (clock moved by the
test), rec-account-sync, rec-trade-manager and rec-trade-executor as real processes against
it and a real PostgreSQL. (No tests here.)"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal

import httpx

from app.sim.market import ACTIVE
from app.sim.views import price_ranges
from testkit.net import free_port
from tests import data_in_fixtures as di
from tests import test_sim_fixtures as fx

MANAGER = "app.services.trade_manager:TradeManagerService"
EXECUTOR = "app.services.trade_executor:TradeExecutorService"
SUPERVISOR = "app.services.trade_supervisor:TradeSupervisorService"
AUTO_ENTRY = "app.services.auto_entry:AutoEntryService"
UNIT = Decimal(10_000)


def prepare(home, h: fx.SimHandle, **env: str) -> None:
    di.prepare(home, h, REC_ACCOUNT_SYNC_RECONCILE_INTERVAL_SEC="3600", **env)
    for key in ("TRADE_MANAGER", "TRADE_EXECUTOR", "TRADE_SUPERVISOR", "AUTO_ENTRY"):
        home.env[f"REC_{key}_PORT"] = str(free_port())


def manager_url(home) -> str:
    return f"http://127.0.0.1:{home.env['REC_TRADE_MANAGER_PORT']}"


async def store_markets(conn, h: fx.SimHandle, status: str | None = None) -> list[str]:
    """What rec-market-feed would store about the simulator's markets."""
    out = []
    for m in h.sim.exchange.markets.values():
        raw = {"ticker": m.ticker, "price_level_structure": m.price_level_structure,
               "price_ranges": price_ranges(m)}
        await conn.execute(
            "INSERT INTO markets (ticker, event_ticker, series_ticker, title, status, "
            "price_level_structure, raw, followed) VALUES (%s,%s,%s,%s,%s,%s,%s,true) "
            "ON CONFLICT (ticker) DO UPDATE SET status = EXCLUDED.status",
            (m.ticker, m.event_ticker, m.series_ticker, m.title, status or m.status,
             m.price_level_structure, json.dumps(raw)))
        if m.status == ACTIVE:
            out.append(m.ticker)
    return out


async def start_trading(home, h: fx.SimHandle, start_service, *, sync: bool = True,
                        **env: str):
    """account-sync (optional), executor, manager: each READY. Returns them."""
    prepare(home, h, **env)
    conn = await di.connect(home)
    await store_markets(conn, h)
    await conn.close()
    procs = {}
    if sync:
        procs["sync"] = start_service(home, di.ACCOUNT)
        await di.wait_notify(procs["sync"], "READY", "1")
    procs["executor"] = start_service(home, EXECUTOR)
    procs["manager"] = start_service(home, MANAGER)
    await di.wait_notify(procs["executor"], "READY", "1")
    await di.wait_notify(procs["manager"], "READY", "1")
    return procs


def sim_orders(h: fx.SimHandle) -> list:
    return list(h.sim.account(h.signer.key_id).orders.values())


def sim_balance_cents(h: fx.SimHandle) -> int:
    return h.sim.account(h.signer.key_id).balance // 100


def sim_fees(h: fx.SimHandle) -> Decimal:
    return sum((Decimal(f.fee) / UNIT for f in h.sim.account(h.signer.key_id).fills),
               Decimal(0))


def best_yes_ask(h: fx.SimHandle, ticker: str) -> Decimal:
    from app.sim.views import top
    _, _, ya, _ = top(h.sim.exchange.books.get(ticker))
    return Decimal(ya) / UNIT


def best_yes_bid(h: fx.SimHandle, ticker: str) -> Decimal:
    from app.sim.views import top
    yb, _, _, _ = top(h.sim.exchange.books.get(ticker))
    return Decimal(yb) / UNIT


async def post_trade(home, body: dict, wait: float | None = None) -> httpx.Response:
    params = {"wait": str(wait)} if wait else None
    async with httpx.AsyncClient(base_url=manager_url(home), timeout=30) as c:
        return await c.post("/trades", json=body, params=params)


async def get(home, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=manager_url(home), timeout=30) as c:
        return await c.get(path)


async def put(home, path: str, body: dict) -> httpx.Response:
    async with httpx.AsyncClient(base_url=manager_url(home), timeout=30) as c:
        return await c.put(path, json=body)


async def trade_status(home, trade_id: int) -> str:
    return (await get(home, f"/trades/{trade_id}")).json()["trade"]["status"]


async def until_status(home, trade_id: int, want: str | tuple, within: float = 15, svc=None):
    wants = (want,) if isinstance(want, str) else want

    async def check():
        return await trade_status(home, trade_id) in wants

    await di.until(check, within, f"trade {trade_id} {want}", svc)
    return (await get(home, f"/trades/{trade_id}")).json()


async def put_strike(conn, ticker: str, **over) -> None:
    """A strike_table row as rec-coordinator writes it (the fields a test cares about in
    ``over``)."""
    row = {"market_ticker": ticker, "series_ticker": ticker.split("-")[0],
           "event_ticker": "-".join(ticker.split("-")[:2]), "computed_at": "now()",
           "close_time": "now()", "index_name": "BRTI", "index_ts": "now()",
           "strike": 100000, "index_price": 100050, "momentum": 0, "buffer": 50,
           "buffer_pct": "0.05", "probability": "0.5", "prob_source": "lognormal",
           "sample_size": 0, "yes_ask": None, "no_ask": None, "active_side": "yes",
           "time_to_close_sec": 900, "window_sec": 60, "window_progress": 0}
    row.update(over)
    cols = list(row)
    await conn.execute(
        f"INSERT INTO strike_table ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
        f"ON CONFLICT (market_ticker) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in cols[1:]),
        [datetime.now(UTC) if v == "now()" else v for v in row.values()])


async def put_watch(conn, ticker: str, side: str, probability, ask, diff_cents) -> None:
    await conn.execute(
        "INSERT INTO watchlist (market_ticker, side, series_ticker, probability, ask, "
        "diff_cents, volume, computed_at) VALUES (%s,%s,%s,%s,%s,%s,100,now()) "
        "ON CONFLICT (market_ticker, side) DO UPDATE SET probability = EXCLUDED.probability, "
        "ask = EXCLUDED.ask, diff_cents = EXCLUDED.diff_cents, computed_at = now()",
        (ticker, side, ticker.split("-")[0], probability, ask, diff_cents))


# --- a simulated hour or day, every service a real process ------------------------------------

HOUR_MS = 3_600_000
SERVICES_BEFORE_SETTINGS = ("market-feed", "price-feed", "account-sync", "trade-executor",
                            "trade-manager")
SERVICES_AFTER_SETTINGS = ("coordinator", "trade-supervisor", "auto-entry")
ACTIVE_LEFT_SQL = ("SELECT count(*) FROM trades WHERE status IN ('pending', 'submitted', "
                   "'open', 'closing') OR (status = 'expired' AND entry_cost IS NOT NULL "
                   "AND market_result IS NULL)")


class SimClock:
    """Moves the in-test simulator's clock at ``speed`` simulated seconds per wall second (in
    steps of ``step_s``; behind if the world cannot keep up), with pause() and resume()."""

    def __init__(self, sim: fx.SimHandle, speed: float, step_s: int = 3) -> None:
        self.sim, self.speed, self.step_s = sim, speed, step_s
        self.running = asyncio.Event()
        self.running.set()
        self.task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            if not self.running.is_set():
                await self.running.wait()
                due = loop.time()
            self.sim.sim.world.advance(self.step_s)
            due += self.step_s / self.speed
            await asyncio.sleep(max(0.0, due - loop.time()))

    def pause(self) -> None:
        self.running.clear()

    def resume(self) -> None:
        self.running.set()

    def stop(self) -> None:
        self.task.cancel()


async def start_all(home, sim: fx.SimHandle, start_service, settings: dict) -> dict:
    """Every service of the trading day as a real process: the data-in services, the
    executor and the manager, the trading ``settings`` through the manager's API, then the
    coordinator, the supervisor and auto entry. Returns the processes by name."""
    prepare(home, sim, REC_MARKET_FEED_SERIES="KXBTCD", REC_PRICE_FEED_INDICES="BRTI",
            REC_COORDINATOR_SERIES="KXBTCD:BRTI", REC_COORDINATOR_INTERVAL_SEC="0.2",
            REC_COORDINATOR_MIN_VOL_SAMPLES="30", REC_COORDINATOR_MAX_INDEX_AGE_SEC="5",
            REC_WATCHLIST_MIN_DIFF_CENTS="1", REC_TRADE_SUPERVISOR_INTERVAL_SEC="0.2",
            REC_AUTO_ENTRY_INTERVAL_SEC="0.2", REC_LOG_LEVEL="info")
    procs = {}
    for name in SERVICES_BEFORE_SETTINGS:
        procs[name] = start_service(home, name)
        await di.wait_notify(procs[name], "READY", "1")
    r = await put(home, "/settings", settings)
    assert r.status_code == 200, r.text
    for name in SERVICES_AFTER_SETTINGS:
        procs[name] = start_service(home, name)
        await di.wait_notify(procs[name], "READY", "1")
    return procs


async def until_settled(conn, sim: fx.SimHandle, end_ms: int, within: float, svc) -> None:
    """Until the simulator is two minutes past ``end_ms`` and every trade is final (those
    that held contracts at a close with their settlement booked)."""
    async def settled_and_final():
        if sim.sim.world.now_ms < end_ms + 120_000:
            return False
        return (await di.rows(conn, ACTIVE_LEFT_SQL))[0][0] == 0

    await di.until(settled_and_final, within, "the trading settled and booked", svc)


def assert_ledger(acct, balance0: int, trades: list[tuple]) -> tuple[int, Decimal]:
    """Trades as (id, status, quantity, fees, pnl_cents, ...): their P&L equals the account's
    cash movement and their fees the fills' fees, to the cent; every order at the exchange
    is one trade leg's (client_order_id derived), each leg at most one order. Returns
    (ledger cents, fees)."""
    coids = [o.client_order_id for o in acct.orders.values()]
    assert len(coids) == len(set(coids)) and all(c.startswith("rec-") for c in coids), coids
    ledger_cents = (acct.balance - balance0) // 100
    assert sum(t[4] for t in trades if t[4] is not None) == ledger_cents, (trades, ledger_cents)
    fees = sum((Decimal(f.fee) / UNIT for f in acct.fills), Decimal(0))
    assert sum(t[3] for t in trades) == fees
    return ledger_cents, fees
