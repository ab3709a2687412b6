"""`rec backtest`: the trading bundle, unchanged, on a replayed window of a recording.

Stands up, for one run and then removes: a scratch database beside rec's own (created,
migrated, dropped: the role needs CREATEDB, as the restore drill's), the simulator in this
process replaying the file (docs/replay.md) on a loopback port with a key of the run's
own, and every trading service as a real process (`rec run <service>`, this host's
settings with the database, the exchange and every port of their own). The trading
settings (``--settings FILE``, JSON, as rec-trade-manager's PUT /settings takes them) go
in through rec-trade-manager's API. The clock runs from the window's start at ``speed``
simulated seconds a wall second to its end, then until every trade is final; the report
(report.py) is printed from rec's trades and the simulator's record of rec's orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict

from app.backtest import calibration, dbclock, report
from app.config import Settings, env_name
from app.db.migrate import migrate
from app.db.pool import conninfo
from app.db.scratch import scratch_database
from app.runtime import clock as rec_clock
from app.runtime import lockstep

SERVICES = ("market-feed", "price-feed", "account-sync", "trade-executor", "trade-manager",
            "coordinator", "trade-supervisor", "auto-entry")
SETTLE_MS = 120_000  # after the window: the settlements and their booking
ACTIVE_SQL = ("SELECT count(*) FROM trades WHERE status IN ('pending', 'submitted', 'open', "
              "'closing') OR (status = 'expired' AND entry_cost IS NOT NULL "
              "AND market_result IS NULL)")

# the lockstep (Clock): the deciding services' turns each simulated second, in this order
# (prices, then the trades' state from the exchange's answers and fills, then exits, then
# entries), and the WebSocket channel that names each service's connection
TURNS = ("coordinator", "trade-manager", "trade-supervisor", "auto-entry")
QUIET_AFTER_OWN_TURN = ("coordinator",)  # a turn that brings nothing for others to take in
WS_SERVICES = {"orderbook_delta": "market-feed", "cfbenchmarks_value": "price-feed",
               "cfbenchmarks_value_5hz": "price-feed", "fill": "account-sync"}
CLOCK_FILE = "clock"  # in the run's home: the replay's time, which the services follow


@dataclass
class Run:
    file: str
    start_ms: int | None = None  # None: the recording's start
    end_ms: int | None = None  # None: its end
    speed: float = 60.0
    trading: dict | None = None  # PUT /settings body for rec-trade-manager
    latency_ms: int = 0
    lockstep: bool = True  # Clock; False: the services run free (faster, not reproducible)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def migrated_scratch(dsn: str) -> AsyncIterator[str]:
    """A new, migrated database beside the one ``dsn`` names; dropped afterwards."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as live, \
            scratch_database(live, dsn, "rec_backtest") as target:
        await asyncio.to_thread(migrate, target, progress=lambda _: None)
        yield target


def service_env(settings: Settings, db: str, sim_port: int, creds: Path,
                state: Path) -> dict[str, str]:
    """This host's settings, with the run's database, exchange, credentials and ports, and
    the replay's clock (``state``/clock, app/runtime/clock.py)."""
    env = dict(os.environ)
    params = conninfo_to_dict(db)
    env.update({env_name("db_name"): params["dbname"], env_name("account_mode"): "sim",
                env_name("exchange_sim_port"): str(sim_port), env_name("kalshi_base_url"): "",
                env_name("kalshi_ws_url"): "", env_name("state_dir"): str(state),
                env_name("clock_file"): str(state / CLOCK_FILE),
                "REC_CREDENTIALS_PATH": str(creds)})
    for key in Settings.model_fields:
        if key.endswith("_port") and key not in ("db_port", "exchange_sim_port"):
            env[env_name(key)] = str(_free_port())
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    return env


async def backtest(settings: Settings, run: Run, say: Callable[[str], None]) -> report.Report:
    from app.kalshi.signing import generate_private_key, private_pem, public_pem
    from app.runtime.http import HttpServer
    from app.sim.app import create_app
    from app.sim.cli import register_public_key
    from app.sim.config import SimConfig
    from app.sim.server import uvicorn_options

    home = Path(tempfile.mkdtemp(prefix="rec-backtest-"))
    key, key_id = generate_private_key(), f"backtest-{uuid.uuid4().hex[:8]}"
    register_public_key(home / "keys", key_id, public_pem(key))
    creds = home / "credentials"
    creds.mkdir()
    (creds / "kalshi_key_id").write_text(key_id)
    (creds / "kalshi_private_key").write_bytes(private_pem(key))
    if settings.db_password:
        (creds / "db_password").write_text(settings.db_password.get_secret_value())
    cfg = SimConfig(keys_dir=home / "keys", speed=0, faults_enabled=False,
                    rate_tier="unlimited", start_balance_cents=settings.sim_start_balance_cents,
                    replay_file=run.file, replay_latency_ms=run.latency_ms)
    app = create_app(cfg)
    sim = app.state.sim
    world = sim.world
    start = run.start_ms if run.start_ms is not None else world.rec.start_ms
    end = run.end_ms if run.end_ms is not None else world.rec.end_ms
    world.advance_to(start)
    account = sim.account(key_id)
    balance0 = account.balance
    server = HttpServer(app, "127.0.0.1", 0, **uvicorn_options(cfg))
    procs: dict[str, subprocess.Popen] = {}
    async with migrated_scratch(conninfo(settings)) as db:
        async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
            await dbclock.install(conn, world.now_ms)
        rec_clock.write(home / CLOCK_FILE, world.now_ms)
        await server.start()
        try:
            env = service_env(settings, db, server.port, creds, home)
            if run.lockstep:
                (home / lockstep.MARK).touch()
            procs.update((name, _start(name, env, home / f"{name}.log")) for name in SERVICES)
            await _put_settings(env, run.trading or {})
            await _until_subscribed(sim.hub)
            say(f"backtest: {len(SERVICES)} services on {run.file}, window "
                f"{start} .. {end} ms at {run.speed:g}x (logs in {home})")
            async with Clock(world, run.speed, db, env, home if run.lockstep else None,
                             clock_file=home / CLOCK_FILE, procs=procs) as clock, \
                    await psycopg.AsyncConnection.connect(db) as conn:
                await clock.until(end + SETTLE_MS)
                # under the lockstep the services act only on their turns: no wall grace
                left = await _until_final(conn, clock, 0 if run.lockstep else 30)
                rows = await (await conn.execute(report.TRADES_SQL)).fetchall()
            if clock.gave_up:
                say(f"backtest: lockstep gave up waiting for the services on {clock.gave_up} "
                    "simulated second(s): their inputs may differ from run to run there; "
                    f"first: {'; '.join(clock.gave_up_on)}")
            if left:
                say(f"backtest: {left} trade(s) not final when the recording ended (their "
                    "markets settle after it): counted without P&L")
        finally:
            for p in procs.values():  # our own children, by handle
                p.terminate()
            for p in procs.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(30)
            await server.stop()
    model = calibration.score(clock.predictions,
                              {t: m.result for t, m in world.rec.markets.items()})
    return report.build([report.trade(r) for r in rows], *report.exchange_record(account),
                        ledger=report.ledger(account, balance0), model=model)


def _start(service: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "app.cli", "run", service], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


async def _put_settings(env: dict[str, str], body: dict, within: float = 120) -> None:
    url = f"http://127.0.0.1:{env[env_name('trade_manager_port')]}/settings"
    end = time.monotonic() + within
    async with httpx.AsyncClient(timeout=10) as c:
        while True:
            with contextlib.suppress(httpx.TransportError):
                r = await c.put(url, json=body)
                if r.status_code == 200:
                    return
                if r.status_code < 500:
                    raise SystemExit(f"rec backtest: settings refused: {r.text}")
            if time.monotonic() > end:
                raise SystemExit("rec backtest: rec-trade-manager did not come up")
            await asyncio.sleep(0.5)


async def _until_subscribed(hub, within: float = 120) -> None:
    """Until the feeds follow the replay (book and index channels): the clock waits."""
    end = time.monotonic() + within
    channels = ("orderbook_delta", "cfbenchmarks_value", "cfbenchmarks_value_5hz")
    while not (hub.by_channel["orderbook_delta"]
               and any(hub.by_channel[c] for c in channels[1:])):
        if time.monotonic() > end:
            raise SystemExit(f"rec backtest: the feeds did not subscribe ({', '.join(channels)})")
        await asyncio.sleep(0.2)


class Clock:
    """The replay's clock, a simulated second at a time. Each second it sets the services'
    clocks (the clock file, the scratch database's ``now()``), then lets the replay bring
    what that second holds, then paces at most ``speed`` simulated seconds a wall second.

    With the lockstep (``lockstep``: the directory of the clock file, which holds the mark
    and the turn files: app/runtime/lockstep.py) each second then goes through the bundle
    in one order, so that two runs decide alike: first everything the replay sent is
    handled (every WebSocket client has handled every frame queued for it, rec-market-feed's
    rows written; every order rec-trade-executor took is held at the exchange or answered),
    then each deciding service runs one cycle, one after another (:data:`TURNS`), the
    bundle quiet again after each. A wait longer than ``patience`` wall seconds gives up
    (counted in ``gave_up``: that second may then go otherwise from run to run)."""

    def __init__(self, world, speed: float, db: str | None = None,
                 env: dict[str, str] | None = None, lockstep: Path | None = None,
                 patience: float = 10.0, clock_file: Path | None = None,
                 procs: dict[str, subprocess.Popen] | None = None) -> None:
        self.world, self.speed, self.db, self.env = world, speed, db, env or {}
        self.lockstep = lockstep
        self.patience = patience
        self.clock_file = clock_file
        self.procs = procs or {}  # the services, by name: one that exits ends the run
        self.hub = next((o for o in world.exchange.observers if hasattr(o, "conns")), None)
        self.loop = asyncio.get_running_loop()
        self.due = self.loop.time()
        self.gave_up = 0
        self.gave_up_on: list[str] = []  # the first few: simulated ms and the wait
        self.waiting = ""  # what the lockstep's last check found missing
        self.turns = dict.fromkeys(TURNS, 0)
        self.predictions: list[tuple[str, float]] = []
        self.conn: psycopg.AsyncConnection | None = None
        self.http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Clock:
        if self.db:
            self.conn = await psycopg.AsyncConnection.connect(self.db, autocommit=True)
            self.http = httpx.AsyncClient(timeout=5)
        return self

    async def __aexit__(self, *exc) -> None:
        if self.conn is not None:
            await self.conn.close()
        if self.http is not None:
            await self.http.aclose()

    async def second(self) -> None:
        # the services' clocks first (the file, the database's now()), then what the replay
        # brings at that time: what they store and decide on carries its simulated time
        ms = self.world.now_ms + 1000
        if self.clock_file is not None:
            rec_clock.write(self.clock_file, ms)
        if self.conn is not None:
            await dbclock.set_time(self.conn, ms)
        self.world.advance(1)
        if self.lockstep is not None and self.conn is not None:
            await self.settle()
        if self.conn is not None and self.world.now_ms % calibration.EVERY_MS == 0:
            self.predictions += await calibration.sample(self.conn)
        self.due += 1 / self.speed
        await asyncio.sleep(max(0.0, self.due - self.loop.time()))

    async def until(self, ms: int) -> None:
        while self.world.now_ms < ms:
            await self.second()

    # --- lockstep ------------------------------------------------------------------------
    async def settle(self) -> None:
        if not await self._until(self._quiet, "the replay's second taken in"):
            return
        for name in TURNS:
            self.turns[name] += 1
            n = self.turns[name]
            assert self.lockstep is not None
            rec_clock.write(self.lockstep / f"turn-{name}", n)
            done = self.lockstep / f"done-{name}"
            if not await self._until(lambda d=done, n=n: rec_clock.read(d) >= n,
                                     f"rec-{name}'s turn"):
                return
            # the coordinator sends no order: only its own turn is waited for
            if name not in QUIET_AFTER_OWN_TURN and not await self._until(
                    self._quiet, f"what rec-{name}'s turn brought, taken in"):
                return

    async def _until(self, check: Callable[[], bool | Awaitable[bool]], what: str) -> bool:
        end = self.loop.time() + self.patience
        while not await _answer(check()):
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise SystemExit(f"rec backtest: rec-{name} exited with status "
                                     f"{p.returncode} (its log: {self.lockstep}/{name}.log)")
            if self.loop.time() > end:
                self.gave_up += 1
                if len(self.gave_up_on) < 5:
                    self.gave_up_on.append(f"{self.world.now_ms}: {what} ({self.waiting})")
                return False
            await asyncio.sleep(0.001)
        return True

    async def _quiet(self) -> bool:
        return self._handled() and await self._sent()  # the cheap check first

    def _handled(self) -> bool:
        """Every frame the simulator queued for a service's WebSocket is handled by it."""
        assert self.lockstep is not None
        for conn in self.hub.conns if self.hub is not None else ():
            service = next((WS_SERVICES[sub.channel] for sub in conn.subs.values()
                            if sub.channel in WS_SERVICES), None)
            if service is not None and (handled := rec_clock.read(
                    self.lockstep / f"ws-{service}")) < conn.queued:
                self.waiting = f"rec-{service} handled {handled} of {conn.queued} frames"
                return False
        return True

    async def _one(self, query: str) -> object:
        return (await (await self.conn.execute(query)).fetchone())[0]  # type: ignore[union-attr]

    async def _sent(self) -> bool:
        """Every order leg rec-trade-executor has to send is held at the exchange (order
        latency) or answered, and the answers taken in."""
        held = len(self.world._waiting)
        if (new := await self._one("SELECT count(*) FROM trade_orders WHERE state = 'new'")) \
                > held:
            self.waiting = f"{new} order leg(s) to send, {held} held at the exchange"
            return False
        r = await self.http.get(  # type: ignore[union-attr]
            f"http://127.0.0.1:{self.env[env_name('trade_executor_port')]}/status")
        inflight = r.json()["inflight"]
        self.waiting = f"rec-trade-executor: {len(inflight)} in flight, {held} held"
        return len(inflight) <= held


async def _answer(value: bool | Awaitable[bool]) -> bool:
    return await value if inspect.isawaitable(value) else value


async def _until_final(conn, clock: Clock, grace_s: float = 30) -> int:
    """Play on until every trade is final or the recording has ended and settled (then a
    grace of wall time for the last bookings); returns how many are not final."""
    async def active() -> int:
        return (await (await conn.execute(ACTIVE_SQL)).fetchone())[0]

    last = clock.world.rec.end_ms + SETTLE_MS
    while (left := await active()) and clock.world.now_ms < last:
        for _ in range(10):
            await clock.second()
    end = time.monotonic() + grace_s
    while left and time.monotonic() < end:
        await asyncio.sleep(0.5)
        left = await active()
    return left


def load_trading(path: str | None) -> dict:
    return json.loads(Path(path).read_text()) if path else {}
