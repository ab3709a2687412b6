"""A seeded chaos soak: every trading and data service a real process against the simulator
and a real PostgreSQL, auto entry on, manual intents at a steady rate, and the faults of
testkit.chaos.schedule(seed) at their simulated moments - kill -9 of each service (restarted
after), the executor killed between send and acknowledgement, lost answers, 429/5xx storms,
WebSocket drops, a PostgreSQL restart with an intent in flight, a halt, a scheduled pause (the
exchange's maintenance window), rec-market-feed down while a market closes, closes racing
the settlement. A unit that exits on its own is restarted, as systemd would, and counted.

At the end entries stop, every trade's market closes and settles, and the books must equal
the exchange: no client_order_id twice, no order without a leg nor a sent leg without an
order, no fill unowned, no trade unfinished, the trades' P&L equal to the account's cash
change to the cent and the fees equal, and `rec ledger check` exits 0.

REC_CHAOS_SEED, REC_CHAOS_HOURS and REC_CHAOS_SPEED (simulated seconds per wall second)
choose the run; benchmarks/chaos.py runs any of them and prints the figures."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import random
import re
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from testkit import chaos as ck
from testkit.sim import START_MS
from tests import data_in_fixtures as di
from tests import trading_fixtures as tf
from tests.test_ledger import ledger_check
from tests.test_sim_fixtures import start_sim, stop_sim
from tests.test_trading_hour import SETTINGS

RAISED = re.compile(r"^[A-Za-z_.]*(?:Error|Exception): .*$", re.M)  # a traceback's last line
SEED = int(os.environ.get("REC_CHAOS_SEED", "1"))
HOURS = int(os.environ.get("REC_CHAOS_HOURS", "2"))
SPEED = float(os.environ.get("REC_CHAOS_SPEED", "150"))
INTENT_EVERY_MS = 45_000  # manual open intents, simulated time
ORDERS = "/trade-api/v2/portfolio/events/orders"
END_MS = START_MS + HOURS * ck.HOUR_MS


# each trade left unfinished: its market as rec-market-feed left it and its legs
UNFINISHED_SQL = f"""
SELECT t.id, t.status, t.ticker, m.status AS market, m.followed,
       (SELECT string_agg(o.leg || ' ' || o.state || coalesce(' ' || o.error_code, ''), ', '
                          ORDER BY o.created_at) FROM trade_orders o WHERE o.trade_id = t.id),
       (SELECT kind || ': ' || coalesce(to_status, '') FROM trade_events e
        WHERE e.trade_id = t.id ORDER BY e.id DESC LIMIT 1)
FROM trades t LEFT JOIN markets m ON m.ticker = t.ticker
WHERE t.id IN ({tf.ACTIVE_LEFT_SQL.replace("count(*)", "id")}) ORDER BY t.id"""


@pytest.fixture
async def chaos_sim(tmp_path):
    """The simulator, its clock held while the services start, with the run's scheduled
    pause as its weekly maintenance window."""
    begin, end = ck.pause_window(SEED, HOURS, START_MS)
    et = datetime.fromtimestamp(begin / 1000, ZoneInfo("America/New_York"))
    start_min = et.hour * 60 + et.minute
    handle, server = await start_sim(
        tmp_path, start_ms=START_MS + 60_000, maintenance_weekday=et.weekday(),
        maintenance_minutes_et=(start_min, start_min + (end - begin) // ck.MIN_MS))
    yield handle
    await stop_sim(handle, server)


async def within(cond, seconds: float) -> bool:
    """Whether ``cond`` comes true within ``seconds`` (di.until, without failing)."""
    try:
        await di.until(cond, seconds)
    except AssertionError:
        return False
    return True


def ready(p) -> bool | None:
    """READY seen (True), the process gone (False), or neither yet (None)."""
    if any(m.fields.get("READY") == "1" for m in p.notify.snapshot()):
        return True
    return False if p.proc.poll() is not None else None


class Stack:
    """The services by name: kill -9, start again (a unit that exits on its own is started
    again by the watcher, as systemd's Restart= would, and counted)."""

    def __init__(self, home, start_service, procs: dict) -> None:
        self.home, self.start_service, self.procs = home, start_service, procs
        self.down: set[str] = set()
        self.starting: dict[str, asyncio.Task] = {}
        self.crashes: Counter = Counter()
        self.watcher = asyncio.create_task(self._watch())

    def up(self, name: str) -> bool:
        return (name not in self.down and name not in self.starting
                and self.procs[name].proc.poll() is None)

    def kill(self, name: str) -> bool:
        if not self.up(name):
            return False
        self.procs[name].proc.send_signal(signal.SIGKILL)
        self.procs[name].proc.wait(10)
        self.down.add(name)
        return True

    def start(self, name: str) -> None:
        self.down.discard(name)
        if name not in self.starting:
            self.starting[name] = asyncio.create_task(self._start(name))

    async def halt_off(self) -> None:
        await self.sim.control("halt", on=False)
        self.paused[-1][1] = self.now_ms

    async def _start(self, name: str) -> None:
        try:
            for _ in range(10):
                p = self.procs[name] = self.start_service(self.home, name)
                await within(lambda: ready(p) is not None, 90)  # noqa: B023 - this p
                if ready(p):
                    return
                if p.proc.poll() is None:
                    raise AssertionError(f"{name}: no READY in 90 s\n{p.output[-3000:]}")
                self.crashes[f"{name} (before READY)"] += 1
                await asyncio.sleep(1)  # systemd's RestartSec
            raise AssertionError(f"{name} does not start\n{p.output[-3000:]}")
        finally:
            self.starting.pop(name, None)

    async def _watch(self) -> None:
        while True:
            for name, p in list(self.procs.items()):
                if name not in self.down and name not in self.starting \
                        and p.proc.poll() is not None:
                    self.crashes[name] += 1
                    self.start(name)
            await asyncio.sleep(0.3)

    async def settle(self) -> None:
        for name in list(self.down):
            self.start(name)
        while self.starting:
            await asyncio.gather(*self.starting.values())


class Chaos:
    def __init__(self, sim, home, pg, stack: Stack, clock: tf.SimClock) -> None:
        self.sim, self.home, self.pg, self.stack, self.clock = sim, home, pg, stack, clock
        self.acct = sim.sim.account(sim.signer.key_id)
        self.rng = random.Random(SEED + 1)
        self.faults: Counter = Counter()
        self.answers: Counter = Counter()
        self.errors: dict[str, str] = {}  # the first body of each 5xx answer, by intent
        self.keys = itertools.count()
        self.later: list = []  # (at_ms, n, coroutine function) of restarts and halt ends
        self.paused = [list(ck.pause_window(SEED, HOURS, START_MS))]  # and the halts, ms
        # (simulated ms, kind, args) of each fault as injected, and the scheduled pause
        self.log: list[tuple[int, str, dict]] = [
            (self.paused[0][0], "scheduled pause", {"until": ck.sim_time(self.paused[0][1])})]

    @property
    def now_ms(self) -> int:
        return self.sim.sim.world.now_ms

    def at(self, ms: int, action) -> None:
        heapq.heappush(self.later, (ms, next(self.keys), action))

    async def until(self, ms: int) -> None:
        while self.now_ms < ms:
            while self.later and self.later[0][0] <= self.now_ms:
                await heapq.heappop(self.later)[2]()
            await asyncio.sleep(0.05)

    async def db(self, sql: str, *args) -> list[tuple]:
        for _ in range(100):  # PostgreSQL may be restarting
            try:
                async with await psycopg.AsyncConnection.connect(self.home.db.dsn,
                                                                 autocommit=True) as c:
                    return await (await c.execute(sql, args or None)).fetchall()
            except psycopg.OperationalError:
                await asyncio.sleep(0.3)
        raise AssertionError("the database stays unreachable")

    async def intent(self, body: dict) -> None:
        try:
            r = await tf.post_trade(self.home, body)
            self.answers[f"{body['intent']} {r.status_code}"] += 1
            if r.status_code >= 500:
                self.errors.setdefault(f"{body['intent']} {r.status_code}", r.text[:300])
        except httpx.HTTPError as exc:
            self.answers[f"{body['intent']} {type(exc).__name__}"] += 1

    async def manual_open(self) -> None:
        ms = self.now_ms
        live = [m for m in self.sim.sim.exchange.markets.values()
                if m.status == "active" and m.series_ticker == "KXBTCD"
                and ms + 180_000 < m.close_ms <= ms + ck.HOUR_MS]
        if not live:
            return
        m = self.rng.choice(sorted(live, key=lambda m: m.ticker))
        side = self.rng.choice(["yes", "no"])
        ask = tf.best_yes_ask(self.sim, m.ticker)
        if side == "no":
            ask = 1 - tf.best_yes_bid(self.sim, m.ticker)
        if not Decimal("0.02") <= ask <= Decimal("0.96"):
            return
        await self.intent({"intent": "open", "idempotency_key": f"chaos-{next(self.keys)}",
                           "market": m.ticker, "side": side, "count": 1,
                           "limit_price": str(ask + Decimal("0.03")), "strategy": "manual"})

    async def manual_close(self, trade_ids) -> None:
        for (trade_id,) in trade_ids:
            await self.intent({"intent": "close", "trade_id": trade_id,
                               "idempotency_key": f"chaos-close-{next(self.keys)}",
                               "close_method": "manual"})

    async def intents(self) -> None:
        """An open intent every INTENT_EVERY_MS of simulated time, a close of a random open
        trade every third."""
        due = self.now_ms
        for n in itertools.count():
            await self.until(due)
            due += INTENT_EVERY_MS
            await self.manual_open()
            if n % 3 == 2:
                await self.manual_close(await self.db(
                    "SELECT id FROM trades WHERE status = 'open' ORDER BY random() LIMIT 1"))

    async def apply(self, f: ck.Fault) -> None:
        kind, a, svc = f.kind, f.args, f.args.get("service")
        self.log.append((self.now_ms, kind, a))
        if kind in ("kill9", "feed_outage_over_close"):
            if not self.stack.kill(svc):
                self.faults[f"{kind} {svc} (skipped: down)"] += 1
                return
            self.at(self.now_ms + a["down_ms"], lambda: self._start(svc))
        elif kind == "kill9_in_flight":
            if not await self.kill_in_flight():
                self.faults[f"{kind} (skipped: no order held)"] += 1
                return
        elif kind == "lose_response":
            await self.sim.control("lose_response", path_prefix=ORDERS, status=a["status"],
                                   count=a["count"])
        elif kind == "http_storm":
            await self.sim.control("http_error", path_prefix=ORDERS, status=a["status"],
                                   count=a["count"])
        elif kind == "drop_ws":
            await self.sim.control("drop_ws")
        elif kind == "pg_restart":
            task = asyncio.create_task(self.manual_open())  # an intent in flight
            await asyncio.sleep(0.05)
            await asyncio.to_thread(self.pg.restart)
            await task
        elif kind == "halt":
            await self.sim.control("halt", on=True)
            self.paused.append([self.now_ms, END_MS + ck.HOUR_MS])
            self.at(self.now_ms + a["down_ms"], self.halt_off)
        elif kind == "close_racing_settlement":
            close = datetime.fromtimestamp(a["close_ms"] / 1000, UTC)
            await self.manual_close(await self.db(
                "SELECT id FROM trades WHERE status = 'open' AND market_close_time = %s",
                close))
        self.faults[kind if svc is None or kind != "kill9" else f"{kind} {svc}"] += 1

    async def halt_off(self) -> None:
        await self.sim.control("halt", on=False)
        self.paused[-1][1] = self.now_ms

    async def _start(self, name: str) -> None:
        self.stack.start(name)

    async def trade_record(self, trade_id: int) -> list[str]:
        """A trade's whole record: its row, legs, events, the exchange's orders and fills of
        its legs and the faults injected within a minute of them (simulated times)."""
        row = await self.db(ck.TRADE_SQL, trade_id)
        if not row:
            return [f"trade {trade_id}: no such trade"]
        market = self.sim.sim.exchange.markets.get(row[0][2])
        close = (f" (market {market.status}, closes {ck.sim_time(market.close_ms)})"
                 if market else "")
        legs = await self.db(ck.LEGS_SQL, trade_id)
        out = [f"trade {row[0]}{close}"] + [f"  leg {leg}" for leg in legs]
        out += [f"  event {e}" for e in await self.db(ck.EVENTS_SQL, trade_id)]
        lines, moments = ck.exchange_lines(self.acct, {leg[1] for leg in legs})
        return out + lines + ck.fault_lines(self.log, moments)

    async def kill_in_flight(self) -> bool:
        """The simulator holds the next order's answer; the executor is killed (-9) while
        it waits, then started again."""
        if not self.stack.up("trade-executor"):
            return False
        await self.sim.control("hold", path=ORDERS)
        before = len(self.acct.orders)
        held = False
        for _ in range(5):  # an intent of ours, unless auto entry's order comes first
            await self.manual_open()
            if held := await within(lambda: len(self.acct.orders) > before, 4):
                break
        held = held and self.stack.kill("trade-executor")
        await self.sim.control("release", path=ORDERS)
        if held:
            self.stack.start("trade-executor")
        return held


async def settle_all(chaos: Chaos, wall_sec: float) -> int:
    """Entries stop; the clock runs on until every trade is final (or ``wall_sec`` seconds of
    wall time pass). Returns the trades left unfinished."""
    await chaos.stack.settle()
    await chaos.sim.control("clear")

    async def entries_off() -> bool:
        r = await tf.put(chaos.home, "/settings", {"auto_entry_enabled": False})
        return r.status_code == 200

    assert await within(entries_off, 60), "the manager does not take the settings"
    deadline = time.monotonic() + wall_sec
    while True:
        left = (await chaos.db(tf.ACTIVE_LEFT_SQL))[0][0]
        if (not left and chaos.now_ms > END_MS + 120_000) or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.5)


async def test_the_books_equal_the_exchange_through_seeded_chaos(
        chaos_sim, rec_home_db, start_service, pg):
    sim, home = chaos_sim, rec_home_db
    t0, load0 = time.monotonic(), os.getloadavg()[0]
    acct = sim.sim.account(sim.signer.key_id)
    balance0 = acct.balance
    procs = await tf.start_all(home, sim, start_service,
                               {**SETTINGS, "auto_entry_max_ttc_sec": 3400})
    stack = Stack(home, start_service, procs)
    clock = tf.SimClock(sim, SPEED)
    chaos = Chaos(sim, home, pg, stack, clock)
    intents = asyncio.create_task(chaos.intents())
    try:
        for fault in ck.schedule(SEED, HOURS, START_MS):
            await chaos.until(fault.at_ms)
            await chaos.apply(fault)
        await chaos.until(END_MS)
    finally:
        intents.cancel()
    while chaos.later:  # restarts and the halt's end still due
        await heapq.heappop(chaos.later)[2]()
    unfinished = await settle_all(chaos, 3600 / SPEED + 90)
    clock.stop()
    stack.watcher.cancel()
    ledger_rc, ledger, _ = await ledger_check(home)
    legs = dict(await chaos.db("SELECT client_order_id, state FROM trade_orders"))
    trades = await chaos.db("SELECT id, pnl_cents, fees FROM trades")
    found = ck.invariants(acct, balance0, legs, trades, unfinished, ledger, ledger_rc,
                          chaos.paused)
    print(f"\nchaos: seed {SEED}, {HOURS} h at {SPEED:g}x, {time.monotonic() - t0:.0f} s wall "
          f"(load average {load0:.2f} -> {os.getloadavg()[0]:.2f}); {len(trades)} trades, "
          f"{len(acct.orders)} exchange orders, {len(acct.fills)} fills")
    print(f"chaos: faults {dict(sorted(chaos.faults.items()))}")
    print(f"chaos: units that exited on their own (restarted) {dict(stack.crashes)}")
    print(f"chaos: manual intents answered {dict(sorted(chaos.answers.items()))}")
    for inv in found:
        print(f"chaos: {'ok    ' if inv.holds else 'FAILED'} {inv.name}: {inv.figure}")
    for d in ledger.get("differences", [])[:40]:
        print(f"chaos: ledger {d['kind']}: {d['detail']}")
    for key, text in chaos.errors.items():
        print(f"chaos: first {key} answer: {text}")
    left = await chaos.db(UNFINISHED_SQL)
    for row in left:
        print(f"chaos: unfinished trade {row}")
    for name, p in sorted(stack.procs.items()):  # the last run of each unit
        for line in sorted(set(RAISED.findall(p.output)))[:5]:
            print(f"chaos: {name} raised: {line[:300]}")
    failed = [f"{i.name}: {i.figure}" for i in found if not i.holds]
    if failed:  # what names the cause, in the failure's output (and benchmarks/chaos.py's)
        for trade_id in ck.offending_trades(ledger, [row[0] for row in left])[:5]:
            record = await chaos.trade_record(trade_id)
            print("\n".join(f"chaos: record {line}" for line in record))
            failed += record
    assert not failed, "\n".join(failed)


def test_the_fault_schedule_is_the_seeds_and_holds_every_kind():
    one, again = ck.schedule(7, 6, START_MS), ck.schedule(7, 6, START_MS)
    assert [(f.at_ms, f.kind, f.args) for f in one] == [(f.at_ms, f.kind, f.args) for f in again]
    assert [f.at_ms for f in one] != [f.at_ms for f in ck.schedule(8, 6, START_MS)]
    kinds = {f.kind for f in one}
    assert kinds == {"kill9", "kill9_in_flight", "lose_response", "http_storm", "drop_ws",
                     "pg_restart", "halt", "feed_outage_over_close", "close_racing_settlement"}
    assert {f.args["service"] for f in one if f.kind == "kill9"} == set(ck.SERVICES)
    assert all(START_MS < f.at_ms <= START_MS + 6 * ck.HOUR_MS for f in one)
    begin, end = ck.pause_window(7, 6, START_MS)
    assert START_MS < begin < end <= START_MS + 6 * ck.HOUR_MS
