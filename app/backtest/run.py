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
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from app.backtest import report
from app.config import Settings, env_name
from app.db.migrate import migrate
from app.db.pool import conninfo

SERVICES = ("market-feed", "price-feed", "account-sync", "trade-executor", "trade-manager",
            "coordinator", "trade-supervisor", "auto-entry")
SETTLE_MS = 120_000  # after the window: the settlements and their booking
ACTIVE_SQL = ("SELECT count(*) FROM trades WHERE status IN ('pending', 'submitted', 'open', "
              "'closing') OR (status = 'expired' AND entry_cost IS NOT NULL "
              "AND market_result IS NULL)")


@dataclass
class Run:
    file: str
    start_ms: int | None = None  # None: the recording's start
    end_ms: int | None = None  # None: its end
    speed: float = 60.0
    trading: dict | None = None  # PUT /settings body for rec-trade-manager
    latency_ms: int = 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def scratch_database(dsn: str) -> AsyncIterator[str]:
    """A new, migrated database beside the one ``dsn`` names; dropped afterwards."""
    name = f"rec_backtest_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as live:
        await live.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            target = make_conninfo(dsn, dbname=name)
            await asyncio.to_thread(migrate, target, progress=lambda _: None)
            yield target
        finally:
            await live.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def service_env(settings: Settings, db: str, sim_port: int, creds: Path,
                state: Path) -> dict[str, str]:
    """This host's settings, with the run's database, exchange, credentials and ports."""
    env = dict(os.environ)
    params = conninfo_to_dict(db)
    env.update({env_name("db_name"): params["dbname"], env_name("account_mode"): "sim",
                env_name("exchange_sim_port"): str(sim_port), env_name("kalshi_base_url"): "",
                env_name("kalshi_ws_url"): "", env_name("state_dir"): str(state),
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
    procs: list[subprocess.Popen] = []
    async with scratch_database(conninfo(settings)) as db:
        await server.start()
        try:
            env = service_env(settings, db, server.port, creds, home)
            procs += [_start(name, env, home / f"{name}.log") for name in SERVICES]
            await _put_settings(env, run.trading or {})
            await _until_subscribed(sim.hub)
            say(f"backtest: {len(SERVICES)} services on {run.file}, window "
                f"{start} .. {end} ms at {run.speed:g}x (logs in {home})")
            clock = Clock(world, run.speed)
            await clock.until(end + SETTLE_MS)
            async with await psycopg.AsyncConnection.connect(db) as conn:
                left = await _until_final(conn, clock)
                rows = await (await conn.execute(report.TRADES_SQL)).fetchall()
            if left:
                say(f"backtest: {left} trade(s) not final when the recording ended (their "
                    "markets settle after it): counted without P&L")
        finally:
            for p in procs:  # our own children, by handle
                p.terminate()
            for p in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(30)
            await server.stop()
    return report.build([report.trade(r) for r in rows], *report.exchange_record(account),
                        ledger=report.ledger(account, balance0))


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
    """The replay's clock a simulated second at a time at ``speed`` x the wall clock
    (behind, never ahead, when the replay or the services cannot keep up)."""

    def __init__(self, world, speed: float) -> None:
        self.world, self.speed = world, speed
        self.loop = asyncio.get_running_loop()
        self.due = self.loop.time()

    async def second(self) -> None:
        self.world.advance(1)
        self.due += 1 / self.speed
        await asyncio.sleep(max(0.0, self.due - self.loop.time()))

    async def until(self, ms: int) -> None:
        while self.world.now_ms < ms:
            await self.second()


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
