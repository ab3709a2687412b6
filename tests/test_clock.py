"""The replay's clock (app/runtime/clock.py), the scratch database's now() on it
(app/backtest/dbclock.py) and the lockstep's turns (app/runtime/lockstep.py): the pieces
`rec backtest` makes reproducible with, each on real files, a real PostgreSQL and real
tasks."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest

from app.backtest import dbclock
from app.runtime import clock, lockstep

T0 = 1_764_086_400_000  # 2025-11-25T16:00:00Z


@pytest.fixture
def followed(tmp_path):
    path = tmp_path / "clock"
    clock.write(path, T0)
    clock.follow(path)
    yield path
    clock.follow(None)


def test_a_followed_clock_gives_the_files_time_and_the_wall_clock_again_after(followed):
    assert clock.now_ms() == T0
    assert clock.now() == datetime(2025, 11, 25, 16, 0, tzinfo=UTC)
    clock.write(followed, T0 + 1500)
    assert clock.now_ms() == T0 + 1500
    assert clock.monotonic() == (T0 + 1500) / 1000
    clock.follow(None)
    assert abs(clock.now_ms() - time.time() * 1000) < 5000
    assert abs(clock.monotonic() - time.monotonic()) < 5


def test_a_torn_value_is_read_again_until_whole(tmp_path):
    path = tmp_path / "n"
    path.write_bytes((42).to_bytes(8, "little") + (0).to_bytes(8, "little"))  # no complement
    threading.Timer(0.2, clock.write, (path, 7)).start()
    t0 = time.monotonic()
    assert clock.read(path) == 7  # never 42: its check did not match
    assert time.monotonic() - t0 >= 0.15
    assert clock.read(tmp_path / "none", missing=-1) == -1


async def test_sleep_on_a_followed_clock_waits_for_its_time_not_the_walls(followed):
    done = asyncio.Event()

    async def sleeper():
        await clock.sleep(2)
        done.set()

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0.1)
    clock.write(followed, T0 + 1999)
    await asyncio.sleep(0.1)
    assert not done.is_set()  # 0.2 s of wall time and 1.999 s of the clock's: not yet
    clock.write(followed, T0 + 2000)
    await asyncio.wait_for(task, 2)


async def test_the_scratch_databases_now_and_time_defaults_follow_the_replay(app_db):
    async with await psycopg.AsyncConnection.connect(app_db.dsn, autocommit=True) as conn:
        await conn.execute("CREATE TABLE seen (id int, at timestamptz NOT NULL DEFAULT now(), "
                           "at2 timestamptz DEFAULT clock_timestamp())")
        assert await dbclock.install(conn, T0) == 2
    # a new session (as the services' are): now(), a column default, SQL arithmetic
    async with await psycopg.AsyncConnection.connect(app_db.dsn, autocommit=True) as conn:
        assert (await (await conn.execute("SELECT now()")).fetchone())[0] == datetime(
            2025, 11, 25, 16, 0, tzinfo=UTC)
        await conn.execute("INSERT INTO seen (id) VALUES (1)")
        await dbclock.set_time(conn, T0 + 90_000)
        age = await (await conn.execute(
            "SELECT extract(epoch FROM now() - at), at2 FROM seen")).fetchone()
        assert float(age[0]) == 90.0
        assert age[1] == datetime(2025, 11, 25, 16, 0, tzinfo=UTC)
        # a qualified pg_catalog.now() is still the wall's: only the unqualified one moves
        wall = (await (await conn.execute("SELECT pg_catalog.now()")).fetchone())[0]
        assert wall.year >= 2026


async def test_a_lockstep_service_runs_one_cycle_per_turn_and_says_so(tmp_path):
    (tmp_path / lockstep.MARK).touch()
    lockstep.enable(tmp_path / "clock", "svc")
    ran: list[int] = []

    async def cycle():
        ran.append(len(ran) + 1)
        if len(ran) == 2:
            raise RuntimeError("a failing cycle is logged and still done")

    task = asyncio.create_task(lockstep.serve(cycle, logging.getLogger("test")))
    try:
        await asyncio.sleep(0.05)
        assert ran == []  # no turn given: nothing runs
        for turn in (1, 2, 3):
            clock.write(tmp_path / "turn-svc", turn)
            for _ in range(500):
                if clock.read(tmp_path / "done-svc") >= turn:
                    break
                await asyncio.sleep(0.01)
            assert clock.read(tmp_path / "done-svc") == turn
        assert ran == [1, 2, 3]
        lockstep.idle(10)
        lockstep.idle(9)  # a report finishing late never lowers the count
        assert clock.read(tmp_path / "ws-svc") == 10
    finally:
        task.cancel()
        lockstep.enable(None, "")
