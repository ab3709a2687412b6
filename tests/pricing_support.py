"""What the pricing tests share: an in-process simulator (manual clock) that `rec run`
services reach through their settings, and async waits on conditions with deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from app.kalshi.signing import private_pem
from tests.test_sim_fixtures import SimHandle, signer


def point_at_sim(home: Any, sim: SimHandle, **env: str) -> None:
    """Give ``home`` the simulator's port and a key the simulator knows."""
    port = sim.base.rsplit(":", 1)[1]
    home.env.update(REC_EXCHANGE_SIM_PORT=port, REC_TARGET_HOST="127.0.0.1", **env)
    home.credential("kalshi_key_id", signer().key_id)
    home.credential("kalshi_private_key", private_pem(signer().private_key).decode())


async def wait_notify(svc: Any, key: str, value: str | None = None, timeout: float = 30) -> Any:
    return await asyncio.to_thread(svc.notify.wait_for, key, value, timeout)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0,
                     what: str = "condition") -> Any:
    """Await ``check()`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not reached within {timeout}s (last: {last!r})")


async def query(dsn: str, sql: str, params: tuple = ()) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(sql, params)
        return await cur.fetchall()


async def migrate(home: Any) -> None:
    r = await asyncio.to_thread(home.rec, "db", "migrate")
    assert r.returncode == 0, r.stderr
