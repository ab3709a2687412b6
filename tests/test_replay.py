"""The simulator in replay mode on the checked-in recording: it serves a market's book over
REST and over WebSocket (snapshot, then sequenced deltas) equal to the recorded book at
that time, rebuilt here independently from the file with DuckDB (the last `book` row plus
the `level` rows after it), and plays the recorded index values and lifecycle."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from tests import test_sim_fixtures as fx
from tests.test_sim_fixtures import drain, recv_json
from tests.test_sim_ws import _apply  # a snapshot or a delta applied to a {(side, price): size}

FIXTURE = str(Path(__file__).parent / "fixtures" / "rec-sim.parquet")
START_MS = 1_764_086_400_000  # the recording's window starts 2025-11-25T16:00Z
TICKER = "KXBTCD-25NOV2512-T100249.99"


def recorded_book(ticker: str, at_ms: int) -> dict[tuple[str, str], float]:
    """The book as the file has it at ``at_ms``: {(side, "0.5000"): size}."""
    sql = f"""
      with last_book as (select max(seq) as seq from '{FIXTURE}'
                         where kind = 'book' and ticker = $t and epoch_ms(ts) <= $at),
      snap as (select 'yes' as side, u.l.price as price, u.l.size as size, 0 as seq
               from (select unnest(yes_book) as l from '{FIXTURE}'
                     where kind = 'book' and ticker = $t and seq = (select seq from last_book)) u
               union all
               select 'no', u.l.price, u.l.size, 0
               from (select unnest(no_book) as l from '{FIXTURE}'
                     where kind = 'book' and ticker = $t and seq = (select seq from last_book)) u),
      lv as (select side, price, size, seq from '{FIXTURE}'
             where kind = 'level' and ticker = $t and epoch_ms(ts) <= $at
               and seq > (select seq from last_book)),
      every as (select * from snap union all select * from lv)
      select side, price, arg_max(size, seq) from every group by side, price"""
    rows = duckdb.execute(sql, {"t": ticker, "at": at_ms}).fetchall()
    return {(side, f"{price:.4f}"): float(size) for side, price, size in rows if size > 0}


@pytest.fixture
async def replay(tmp_path):
    handle, server = await fx.start_sim(tmp_path, replay_file=FIXTURE)
    yield handle
    await fx.stop_sim(handle, server)


async def _rest_book(sim) -> dict:
    r = await sim.client().get(f"/markets/{TICKER}/orderbook")
    assert r.status_code == 200, r.text
    ob = r.json()["orderbook_fp"]
    return {(side, p): float(q) for side in ("yes", "no") for p, q in ob[f"{side}_dollars"]}


async def test_replay_serves_the_recorded_book_over_rest_and_websocket(replay):
    await replay.control("advance", seconds=900)
    at = START_MS + 900_000
    assert (await replay.client(auth=False).get("/markets",
                                                params={"status": "open"})).status_code == 200
    expect = recorded_book(TICKER, at)
    assert len(expect) >= 4  # a book with both sides, not an empty one
    assert await _rest_book(replay) == expect

    ws = await replay.ws()
    await ws.send('{"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], '
                  f'"market_ticker": "{TICKER}"}}}}')
    assert (await recv_json(ws))["type"] == "subscribed"
    book: dict = {}
    snap = await recv_json(ws)
    assert snap["type"] == "orderbook_snapshot"
    _apply(book, snap)
    assert book == expect
    await replay.control("advance", seconds=600)
    msgs = await drain(ws)
    assert len(msgs) > 10 and all(m["type"] == "orderbook_delta" for m in msgs)
    assert [m["seq"] for m in msgs] == list(range(2, 2 + len(msgs)))
    for m in msgs:
        _apply(book, m)
    later = recorded_book(TICKER, at + 600_000)
    assert book == later != expect
    assert await _rest_book(replay) == later
    await ws.close()


async def test_replay_plays_the_index_and_settles_on_the_recorded_result(replay):
    ws = await replay.ws()
    await ws.send('{"id": 1, "cmd": "subscribe", "params": {"channels": '
                  '["cfbenchmarks_value"], "index_ids": ["BRTI"]}}')
    assert (await recv_json(ws))["type"] == "subscribed"
    await replay.control("advance", seconds=5)
    got = [m["msg"] for m in await drain(ws) if m["type"] == "cfbenchmarks_value"]
    rows = duckdb.execute(
        f"select epoch_ms(ts), value from '{FIXTURE}' where kind = 'index_tick' and "
        "index_name = 'BRTI' and epoch_ms(ts) % 1000 = 0 and epoch_ms(ts) <= $at order by ts",
        {"at": START_MS + 5000}).fetchall()
    sent = [(m["index_id"], json.loads(m["data"])["time"], json.loads(m["data"])["value"])
            for m in got]
    assert sent == [("BRTI", ts, f"{float(v):.2f}") for ts, v in rows]
    await ws.close()
    result = duckdb.execute(f"select result from '{FIXTURE}' where kind = 'market' and "
                            "ticker = $t", {"t": TICKER}).fetchone()[0]
    await replay.control("advance", seconds=3600 + 61)
    m = (await replay.client().get(f"/markets/{TICKER}")).json()["market"]
    assert (m["status"], m["result"]) == ("finalized", result)


def test_rec_run_exchange_sim_replays_the_file_its_settings_name(rec_home, start_service):
    """The settings reach the service: `rec run exchange-sim` with REC_SIM_REPLAY_FILE
    serves the recording's markets (and none of the generated world's), on its first
    instant, open as recorded."""
    import httpx

    rec_home.env.update(REC_SIM_KEYS_DIR=str(rec_home.root / "state" / "sim-keys"),
                        REC_SIM_REPLAY_FILE=FIXTURE, REC_SIM_SPEED="0")
    svc = start_service(rec_home, "exchange-sim")
    svc.notify.wait_for("READY", "1", timeout=60)
    base = f"http://127.0.0.1:{rec_home.env['REC_EXCHANGE_SIM_PORT']}"
    assert httpx.get(base + "/healthz").json()["sim_time_ms"] == START_MS
    got = httpx.get(base + "/trade-api/v2/markets", params={"status": "open",
                                                            "limit": 1000}).json()
    recorded = {r[0] for r in duckdb.execute(
        f"select ticker from '{FIXTURE}' where kind = 'market' and "
        "epoch_ms(open_time) <= $at and epoch_ms(close_time) > $at", {"at": START_MS}).fetchall()}
    assert {m["ticker"] for m in got["markets"]} == recorded and len(recorded) == 22
    assert svc.terminate() == 0


def test_a_replay_file_that_is_no_recording_is_a_config_error(rec_home, start_service):
    rec_home.env.update(REC_SIM_KEYS_DIR=str(rec_home.root / "state" / "sim-keys"),
                        REC_SIM_REPLAY_FILE=str(rec_home.root / "missing.parquet"))
    svc = start_service(rec_home, "exchange-sim")
    assert svc.wait(60) == 78  # EX_CONFIG: systemd does not restart it in a loop
    assert "sim_replay_file:" in svc.output and "missing.parquet" in svc.output
