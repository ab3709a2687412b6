"""Paper mode (docs/paper.md) with a simulator standing in for the live exchange ("prod" on a
loopback port, in the test's loop, its clock still): rec-paper, rec-account-sync,
rec-trade-executor, rec-trade-manager and rec-web as real processes on a real PostgreSQL.
Orders fill on rec-paper against the stand-in's book by the replay's fill rules; the stand-in
never receives an order of rec's; the ledger check passes; every page says PAPER."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import httpx
import pytest

from app.kalshi.signing import public_pem
from app.sim.cli import register_public_key
from app.sim.world import WorldParams
from testkit.net import free_port
from tests import data_in_fixtures as di
from tests import test_sim_fixtures as fx
from tests import trading_fixtures as tf
from tests.conftest import WEB_PASSWORD, WEB_USER

SERIES = "KXBTCD"


@pytest.fixture
async def standin(tmp_path):
    """The "live" exchange: no simulated liquidity (only the test's accounts trade), its
    markets at today's wall time (the paper engine runs on the wall clock), a third key for
    the stand-in's takers."""
    handle, server = await fx.start_sim(tmp_path, start_ms=None,
                                        world=WorldParams(mm_levels=0, flow_rate_per_s=0.0))
    taker = fx.signer("taker-key")
    register_public_key(tmp_path / "keys", taker.key_id, public_pem(taker.private_key))
    yield handle
    await fx.stop_sim(handle, server)


def paper_env(h: fx.SimHandle, engine_port: int) -> dict[str, str]:
    return {"REC_ACCOUNT_MODE": "paper", "REC_PAPER_SOURCE": "prod",
            "REC_KALSHI_BASE_URL": h.base + fx.PREFIX, "REC_KALSHI_WS_URL": h.ws_url,
            "REC_MARKET_FEED_SERIES": SERIES, "REC_EXCHANGE_SIM_PORT": str(engine_port)}


async def start_engine(home, h: fx.SimHandle, start_service) -> fx.SimHandle:
    """rec-paper for ``home``, mirroring ``h``; a handle for its REST API (rec's key)."""
    port = free_port()
    tf.prepare(home, h, **paper_env(h, port))
    engine = start_service(home, "paper")
    await di.wait_notify(engine, "READY", "1")
    base = f"http://127.0.0.1:{port}"
    handle = fx.SimHandle(base, f"ws://127.0.0.1:{port}/trade-api/ws/v2", None, h.signer)
    handle.process = engine  # type: ignore[attr-defined]
    return handle


async def book(c: httpx.AsyncClient, ticker: str) -> dict:
    r = await c.get(f"/markets/{ticker}/orderbook")
    assert r.status_code == 200, r.text
    return r.json()["orderbook_fp"]


async def mirrored(live: httpx.AsyncClient, paper: httpx.AsyncClient, ticker: str) -> dict:
    """The engine's book once it equals the stand-in's."""
    want = await book(live, ticker)

    async def same():
        return await book(paper, ticker) == want

    await di.until(same, 15, f"the engine's {ticker} book mirrored")
    return want


def stand_in_orders_of_rec(h: fx.SimHandle) -> list:
    return list(h.sim.account(h.signer.key_id).orders.values())


async def test_an_intent_fills_on_the_engine_by_the_fill_rules_and_never_reaches_the_exchange(
        rec_home_db, start_service, standin):
    ticker = standin.open_tickers(SERIES)[3]
    maker = standin.client(fx.signer("other-key"))
    await fx.place(maker, ticker, side="no", price=55, count=10)  # YES ask 45c x10
    await fx.place(maker, ticker, side="no", price=50, count=10)  # YES ask 50c x10
    await fx.place(maker, ticker, side="yes", price=40, count=20)  # YES bid 40c x20
    engine = await start_engine(rec_home_db, standin, start_service)
    paper = engine.client()
    live_book = await mirrored(standin.client(), paper, ticker)
    procs = await tf.start_trading(rec_home_db, standin, start_service,
                                   **paper_env(standin, int(engine.base.rsplit(":", 1)[1])))
    cash0 = (await paper.get("/portfolio/balance")).json()["balance"]

    body = {"intent": "open", "idempotency_key": "paper-1", "market": ticker, "side": "yes",
            "count": 12, "limit_price": "0.99", "strategy": "manual"}
    r = await tf.post_trade(rec_home_db, body, wait=10)
    assert r.status_code == 201, r.text
    trade_id = r.json()["trade"]["id"]
    await tf.until_status(rec_home_db, trade_id, "open", svc=procs["manager"])
    # rule 1: the taker walked the mirrored levels, best first: 10 at 45c, then 2 at 50c
    fills = (await paper.get("/portfolio/fills", params={"ticker": ticker})).json()["fills"]
    assert sorted((f["yes_price_dollars"], f["count_fp"]) for f in fills) == [
        ("0.4500", "10.00"), ("0.5000", "2.00")]
    # what rec took is gone from the engine's book (until the exchange's next size there);
    # the stand-in's book and orders are untouched: no order of rec's reached it
    assert await book(standin.client(), ticker) == live_book
    paper_book = await book(paper, ticker)
    assert paper_book["no_dollars"] == [["0.5000", "8.00"]], paper_book
    assert stand_in_orders_of_rec(standin) == []

    close = {"intent": "close", "idempotency_key": "paper-1-close", "trade_id": trade_id,
             "close_method": "manual"}
    r = await tf.post_trade(rec_home_db, close)
    assert r.status_code == 201, r.text
    got = await tf.until_status(rec_home_db, trade_id, "closed", svc=procs["manager"])
    t = got["trade"]
    # closed into the mirrored YES bid at 40c: P&L = 12 x 0.40 - (10 x 0.45 + 2 x 0.50) - fees
    fees = sum(Decimal(f["fee_cost"]) for f in
               (await paper.get("/portfolio/fills", params={"ticker": ticker})).json()["fills"])
    assert Decimal(t["fees"]) == fees > 0
    cash1 = (await paper.get("/portfolio/balance")).json()["balance"]
    assert t["pnl_cents"] == cash1 - cash0 < 0, (t, cash0, cash1)
    assert stand_in_orders_of_rec(standin) == []
    await asyncio.sleep(0.5)  # account-sync has the closing fills (the check retries anyway)
    check = await asyncio.to_thread(rec_home_db.rec, "ledger", "check")
    assert check.returncode == 0, check.stdout + check.stderr


async def fills_behind_five(paper: httpx.AsyncClient, maker: httpx.AsyncClient,
                            taker: httpx.AsyncClient, ticker: str, order_id: str) -> None:
    """rec's resting YES bid of 3 at 40c behind the 5 the exchange displays there: a live
    print of 5 at 40c fills nothing (the queue ahead), the level refills and a print of 4
    fills all 3 (rec's order is first now)."""
    async def filled() -> Decimal:
        got = (await paper.get(f"/portfolio/orders/{order_id}")).json()["order"]
        return Decimal(got["fill_count_fp"])

    async def prints() -> int:
        r = await paper.get("/markets/trades", params={"ticker": ticker})
        return sum(int(Decimal(t["count_fp"])) for t in r.json()["trades"])

    printed = await prints()
    await fx.place(taker, ticker, side="no", price=60, count=5,
                   time_in_force="immediate_or_cancel")

    async def mirrored_print() -> bool:
        return await prints() == printed + 5

    await di.until(mirrored_print, 15, "the exchange's print mirrored")
    assert await filled() == 0
    await fx.place(maker, ticker, side="yes", price=40, count=5)
    await fx.place(taker, ticker, side="no", price=60, count=4,
                   time_in_force="immediate_or_cancel")

    async def three() -> bool:
        return await filled() == 3

    await di.until(three, 15, "rec's resting order filled from the print")


async def test_a_resting_order_fills_behind_the_displayed_queue_from_the_exchanges_prints(
        rec_home_db, start_service, standin):
    ticker = standin.open_tickers(SERIES)[3]
    maker = standin.client(fx.signer("other-key"))
    taker = standin.client(fx.signer("taker-key"))
    await fx.place(maker, ticker, side="yes", price=40, count=5)  # YES bid 40c x5
    engine = await start_engine(rec_home_db, standin, start_service)
    paper = engine.client()
    await mirrored(standin.client(), paper, ticker)
    mine = await fx.place(paper, ticker, side="yes", price=40, count=3)  # 5 displayed ahead
    await fills_behind_five(paper, maker, taker, ticker, mine["order_id"])
    fills = (await paper.get("/portfolio/fills", params={"ticker": ticker})).json()["fills"]
    assert [(f["yes_price_dollars"], f["count_fp"], f["is_taker"]) for f in fills] == [
        ("0.4000", "3.00", False)]
    assert stand_in_orders_of_rec(standin) == []


async def test_every_page_says_paper_and_rec_status_too(rec_home_db, start_service, standin):
    await start_engine(rec_home_db, standin, start_service)
    web = start_service(rec_home_db, "web")
    await di.wait_notify(web, "READY", "1")
    url = f"http://127.0.0.1:{rec_home_db.env['REC_WEB_PORT']}"
    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        r = await c.post("/login", data={"user": WEB_USER, "password": WEB_PASSWORD},
                         headers={"Accept": "application/json"})
        assert r.status_code == 200, r.text
        for path in ("/", "/trades", "/services", "/settings"):
            page = await c.get(path)
            assert page.status_code == 200, (path, page.status_code)
            assert 'id="paper" class="paper-banner"' in page.text, path
    status = await asyncio.to_thread(rec_home_db.rec, "status")
    assert "account mode" in status.stdout and "PAPER: market data from prod" in status.stdout


def test_no_paper_banner_outside_paper_mode(rec_home_db, start_service):
    web = start_service(rec_home_db, "web")
    web.notify.wait_for("READY", "1")
    r = httpx.get(f"http://127.0.0.1:{rec_home_db.env['REC_WEB_PORT']}/login", timeout=10)
    assert r.status_code == 200 and "paper-banner" not in r.text


def test_paper_mode_runs_rec_paper_in_the_simulators_place(rec_home):
    rec_home.env.update(REC_ACCOUNT_MODE="paper", REC_PAPER_SOURCE="prod")
    r = rec_home.rec("services", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "rec-paper.service" in out["units"] and "rec-exchange-sim.service" not in out["units"]
    by_name = {s["name"]: s for s in out["services"]}
    # after the engine that is its exchange, then data in (the release order: data in first)
    assert by_name["trade-executor"]["after"] == [
        "rec-migrate.service", "rec-paper.service", "rec-market-feed.service",
        "rec-account-sync.service", "rec-price-feed.service"]
    assert by_name["paper"]["credentials"] == ["kalshi_key_id", "kalshi_private_key"]
    assert by_name["paper"]["ip_allow"] is None  # it reads the exchange


def test_paper_source_sim_needs_the_stand_ins_urls(rec_home):
    rec_home.env.update(REC_ACCOUNT_MODE="paper", REC_PAPER_SOURCE="sim")
    r = rec_home.rec("config", "show")
    assert r.returncode == 78 and "paper_source sim: set kalshi_base_url" in r.stderr, r.stderr


async def test_the_exchanges_result_settles_the_paper_position(rec_home_db, start_service,
                                                              standin):
    ticker = standin.open_tickers(SERIES)[3]
    maker = standin.client(fx.signer("other-key"))
    await fx.place(maker, ticker, side="no", price=55, count=10)  # YES ask 45c x10
    engine = await start_engine(rec_home_db, standin, start_service)
    paper = engine.client()
    await mirrored(standin.client(), paper, ticker)
    await fx.place(paper, ticker, side="yes", price=45, count=2)  # takes 2 at 45c
    cash0 = (await paper.get("/portfolio/balance")).json()["balance"]
    m = standin.sim.exchange.markets[ticker]  # the exchange decides: YES
    standin.sim.exchange.close_market(m)
    standin.sim.exchange.settle_market(m, "yes", "")

    async def settled():
        r = await paper.get("/portfolio/settlements", params={"ticker": ticker})
        return r.json()["settlements"]

    got = await di.until(settled, 15, "the paper position settled")
    assert [(s["market_result"], s["yes_count_fp"]) for s in got] == [("yes", "2.00")], got
    assert (await paper.get("/portfolio/balance")).json()["balance"] == cash0 + 200
    assert stand_in_orders_of_rec(standin) == []


async def account_seen_by_rec(paper: httpx.AsyncClient) -> dict:
    """Everything rec reads of its paper account over the Trade API."""
    async def get(path: str, key: str, **params) -> object:
        r = await paper.get(path, params=params)
        assert r.status_code == 200, (path, r.text)
        return r.json()[key] if key else r.json()

    return {"balance": await get("/portfolio/balance", "balance"),
            "positions": await get("/portfolio/positions", "market_positions",
                                   count_filter="position"),
            "orders": await get("/portfolio/orders", "orders"),
            "fills": await get("/portfolio/fills", "fills"),
            "settlements": await get("/portfolio/settlements", "settlements")}


async def engine_mirroring(home, standin: fx.SimHandle, start_service,
                           *tickers: str) -> tuple[fx.SimHandle, httpx.AsyncClient]:
    """rec-paper started, its books of ``tickers`` equal to the stand-in's."""
    engine = await start_engine(home, standin, start_service)
    paper = engine.client()
    for ticker in tickers:
        await mirrored(standin.client(), paper, ticker)
    return engine, paper


async def restart(engine: fx.SimHandle, home, start_service, meanwhile=lambda: None,
                  crash: bool = False) -> httpx.AsyncClient:
    """rec-paper stopped by its PID (SIGTERM; ``crash``: SIGKILL, no stop of its own),
    ``meanwhile`` done, started again: READY."""
    if crash:
        engine.process.proc.kill()
        engine.process.proc.wait(timeout=30)
    else:
        assert engine.process.terminate() == 0
    meanwhile()
    engine.process = start_service(home, "paper")
    await di.wait_notify(engine.process, "READY", "1")
    return engine.client()


async def test_rec_paper_keeps_its_account_across_a_restart(rec_home_db, start_service,
                                                           standin):
    ticker = standin.open_tickers(SERIES)[3]
    maker = standin.client(fx.signer("other-key"))
    await fx.place(maker, ticker, side="no", price=55, count=10)  # YES ask 45c x10
    await fx.place(maker, ticker, side="yes", price=40, count=5)  # YES bid 40c x5
    engine, paper = await engine_mirroring(rec_home_db, standin, start_service, ticker)
    procs = await tf.start_trading(rec_home_db, standin, start_service,
                                   **paper_env(standin, int(engine.base.rsplit(":", 1)[1])))
    body = {"intent": "open", "idempotency_key": "paper-restart", "market": ticker,
            "side": "yes", "count": 4, "limit_price": "0.99", "strategy": "manual"}
    r = await tf.post_trade(rec_home_db, body, wait=10)
    assert r.status_code == 201, r.text
    await tf.until_status(rec_home_db, r.json()["trade"]["id"], "open", svc=procs["manager"])
    before = await account_seen_by_rec(paper)
    assert before["balance"] < 1_000_000 and len(before["fills"]) == 1, before
    assert [(p["ticker"], p["position_fp"]) for p in before["positions"]] == [
        (ticker, "4.00")], before["positions"]

    paper = await restart(engine, rec_home_db, start_service)
    # the same account: balance, position, orders, fills; and ids issued after the restart
    # are new ones (an order placed now is not mistaken for one from before)
    assert await account_seen_by_rec(paper) == before
    await mirrored(standin.client(), paper, ticker)
    body = {**body, "idempotency_key": "paper-restart-2", "count": 1}  # takes 1 at 45c
    r = await tf.post_trade(rec_home_db, body, wait=10)
    assert r.status_code == 201, r.text
    await tf.until_status(rec_home_db, r.json()["trade"]["id"], "open", svc=procs["manager"])
    after = await account_seen_by_rec(paper)
    assert len({o["order_id"] for o in after["orders"]}) == len(before["orders"]) + 1
    assert len({f["fill_id"] for f in after["fills"]}) == 2, after["fills"]
    await asyncio.sleep(0.5)  # account-sync has the fills (the check retries anyway)
    check = await asyncio.to_thread(rec_home_db.rec, "ledger", "check")
    assert check.returncode == 0, check.stdout + check.stderr


async def test_after_a_restart_rec_paper_settles_what_the_exchange_decided_meanwhile_and_its_resting_order_rejoins_the_queue(  # noqa: E501
        rec_home_db, start_service, standin):
    held, resting_in = standin.open_tickers(SERIES)[3:5]
    maker = standin.client(fx.signer("other-key"))
    taker = standin.client(fx.signer("taker-key"))
    await fx.place(maker, held, side="no", price=55, count=10)  # YES ask 45c x10
    await fx.place(maker, resting_in, side="yes", price=40, count=5)  # YES bid 40c x5
    engine, paper = await engine_mirroring(rec_home_db, standin, start_service, held,
                                           resting_in)
    await fx.place(paper, held, side="yes", price=45, count=2)  # takes 2 at 45c
    mine = await fx.place(paper, resting_in, side="yes", price=40, count=3)  # 5 ahead
    cash0 = (await paper.get("/portfolio/balance")).json()["balance"]


    def decide_meanwhile() -> None:  # the exchange decides YES while rec-paper is down
        m = standin.sim.exchange.markets[held]
        standin.sim.exchange.close_market(m)
        standin.sim.exchange.settle_market(m, "yes", "")

    # killed: what the engine acknowledged was on disk before its answer went out
    paper = await restart(engine, rec_home_db, start_service, decide_meanwhile, crash=True)

    got = (await paper.get("/portfolio/settlements", params={"ticker": held})).json()
    assert [(s["market_result"], s["yes_count_fp"]) for s in got["settlements"]] == [
        ("yes", "2.00")], got
    assert (await paper.get("/portfolio/balance")).json()["balance"] == cash0 + 200
    order = (await paper.get(f"/portfolio/orders/{mine['order_id']}")).json()["order"]
    assert (order["status"], order["remaining_count_fp"]) == ("resting", "3.00"), order

    # back in the queue behind what the book displays at its price after the restart: a
    # print of the 5 displayed fills nothing, the next print (the level refilled) fills it
    async def rejoined() -> bool:  # the live 5 mirrored beside rec's 3
        return (await book(paper, resting_in))["yes_dollars"] == [["0.4000", "8.00"]]

    await di.until(rejoined, 15, "the live book mirrored again")
    await fills_behind_five(paper, maker, taker, resting_in, mine["order_id"])
