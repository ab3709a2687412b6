"""Prometheus metrics (app/runtime/metrics.py): each service, a real process, writes its
textfile from its event loop; the numbers move where they are born; `rec metrics` and
rec-web's /metrics/<service> serve the files."""

from __future__ import annotations

import itertools
import stat
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.runtime import restarts
from tests import data_in_fixtures as di
from tests import test_sim_fixtures as fx
from tests import trading_fixtures as tf
from tests.pricing_support import migrate, point_at_sim, wait_notify
from tests.test_trading import open_body
from tests.test_trading_faults import ORDERS, lost_answer
from tests.test_web_dashboard import login

sim = fx.sim
FAST = {"REC_METRICS_INTERVAL_SEC": "0.2"}


def metrics_file(home, name: str) -> Path:
    return Path(home.env["REC_STATE_DIR"]) / "metrics" / f"rec_{name}.prom"


def samples(home, name: str) -> dict[tuple[str, tuple], float]:
    """The file ``name`` wrote: {(sample name, sorted labels): value}; {} while there is none."""
    path = metrics_file(home, name)
    if not path.exists():
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(path.read_text())
            for s in family.samples}


def value(home, name: str, sample: str, **labels: str) -> float | None:
    want = tuple(sorted({"service": name, **labels}.items()))
    return samples(home, name).get((sample, want))


def wait_value(home, name: str, sample: str, ok, within: float = 20, svc=None, **labels):
    deadline = time.monotonic() + within
    while True:
        got = value(home, name, sample, **labels)
        if got is not None and ok(got):
            return got
        if time.monotonic() > deadline:
            tail = f"\n{svc.output[-3000:]}" if svc is not None else ""
            raise AssertionError(f"{sample}{labels or ''} of {name}: {got!r}{tail}")
        time.sleep(0.05)


async def until_value(home, name: str, sample: str, ok, within: float = 20, svc=None,
                      **labels):
    """:func:`wait_value` for async tests: the simulator runs on the test's event loop."""
    def check():
        got = value(home, name, sample, **labels)
        return got is not None and ok(got) and (got,)

    return (await di.until(check, within, f"{sample}{labels or ''} of {name}", svc))[0]


def test_a_service_writes_its_file_rewrites_it_and_leaves_rec_up_0_on_stop(rec_home,
                                                                             start_service):
    svc = start_service(rec_home, "tests.fake_services:SleepyPhases", extra_env=FAST)
    svc.notify.wait_for("READY", "1")
    first = wait_value(rec_home, "sleepy", "rec_last_write_timestamp_seconds", bool, svc=svc)
    assert value(rec_home, "sleepy", "rec_up") == 1
    started = value(rec_home, "sleepy", "rec_start_time_seconds")
    assert started is not None and abs(started - time.time()) < 60
    assert value(rec_home, "sleepy", "rec_restarts_total") == 0
    # every sample carries the service label (the file name gives the node exporter none)
    assert all(dict(labels).get("service") == "sleepy" for _, labels in samples(rec_home,
                                                                               "sleepy"))
    # rewritten while it runs, readable by the node exporter
    wait_value(rec_home, "sleepy", "rec_last_write_timestamp_seconds", lambda t: t > first)
    assert stat.S_IMODE(metrics_file(rec_home, "sleepy").stat().st_mode) == 0o644
    assert svc.terminate() == 0
    assert value(rec_home, "sleepy", "rec_up") == 0


def test_failed_runs_counted_by_unit_failed_are_rec_restarts_total(rec_home, start_service):
    state = Path(rec_home.env["REC_STATE_DIR"])
    for _ in range(2):
        restarts.record_failure(state, "sleepy")
    restarts.reset(state, "sleepy")  # READY resets the run of failures, not the total
    svc = start_service(rec_home, "tests.fake_services:SleepyPhases", extra_env=FAST)
    svc.notify.wait_for("READY", "1")
    assert wait_value(rec_home, "sleepy", "rec_restarts_total", bool, svc=svc) == 2
    svc.terminate()


def test_a_blocked_event_loop_stops_the_writes(rec_home, start_service):
    svc = start_service(rec_home, "tests.fake_services:BlocksLoop",
                        extra_env={**FAST, "REC_TEST_BLOCK_AFTER": "1",
                                   "REC_TEST_BLOCK_SEC": "2"})
    svc.notify.wait_for("READY", "1")
    writes: set[float] = set()
    deadline = time.monotonic() + 15
    while "loop unblocked" not in svc.output and time.monotonic() < deadline:
        if (t := value(rec_home, "blocker", "rec_last_write_timestamp_seconds")) is not None:
            writes.add(t)
        time.sleep(0.02)
    wait_value(rec_home, "blocker", "rec_last_write_timestamp_seconds",
               lambda t: t > max(writes))
    writes.add(value(rec_home, "blocker", "rec_last_write_timestamp_seconds"))
    times = sorted(writes)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) < 0.5  # every 0.2 s while the loop runs
    assert max(gaps) >= 1.8  # none while it is blocked for 2 s
    svc.terminate()


def test_metrics_disabled_writes_no_file(rec_home, start_service):
    svc = start_service(rec_home, "tests.fake_services:SleepyPhases",
                        extra_env={**FAST, "REC_METRICS_ENABLED": "false"})
    svc.notify.wait_for("READY", "1")
    time.sleep(0.6)
    assert not metrics_file(rec_home, "sleepy").exists()
    assert svc.terminate() == 0


async def test_market_feed_counts_messages_received_and_stored_after_the_simulator_sends(
        rec_home_db, start_service, sim):
    svc = await di.started(start_service, rec_home_db, sim, **FAST)
    home = rec_home_db
    received = await until_value(home, "market-feed", "rec_messages_received_total", bool,
                                 svc=svc, feed="market")
    stored = await until_value(home, "market-feed", "rec_messages_stored_total", bool,
                               feed="market")
    for _ in range(3):
        sim.sim.world.advance(20)
    await until_value(home, "market-feed", "rec_messages_received_total",
                      lambda v: v > received, svc=svc, feed="market")
    await until_value(home, "market-feed", "rec_messages_stored_total", lambda v: v > stored,
                      svc=svc, feed="market")
    staleness = value(home, "market-feed", "rec_feed_staleness_seconds", feed="market")
    assert staleness is not None and 0 <= staleness < 30
    assert value(home, "market-feed", "rec_queue_depth", queue="market-ws") is not None
    assert value(home, "market-feed", "rec_queue_age_seconds", queue="market-ws") is not None
    # the database pool: its size, and every wait for a connection in the histogram
    assert value(home, "market-feed", "rec_db_pool_size") >= 1
    assert value(home, "market-feed", "rec_db_pool_available") is not None
    assert value(home, "market-feed", "rec_db_pool_wait_seconds_count") > 0
    # only what this service measures: no trading or ledger series in the feed's file
    names = {n for n, _ in samples(home, "market-feed")}
    assert not {n for n in names if n.startswith(("rec_orders", "rec_ledger", "rec_intents"))}
    assert svc.terminate() == 0


async def test_price_feed_counts_index_values_and_reports_each_indexs_staleness(
        rec_home_db, start_service, sim):
    home = rec_home_db
    point_at_sim(home, sim, **FAST)
    await migrate(home)
    svc = start_service(home, "price-feed")
    await wait_notify(svc, "READY", "1")
    await sim.control("advance", seconds=5)
    received = await until_value(home, "price-feed", "rec_messages_received_total", bool,
                                 svc=svc, feed="price")
    await until_value(home, "price-feed", "rec_messages_stored_total", bool, feed="price")
    await sim.control("advance", seconds=5)
    await until_value(home, "price-feed", "rec_messages_received_total",
                      lambda v: v >= received + 10, svc=svc, feed="price")  # 5 s x 2 indices
    for index in ("BRTI", "ETHUSD_RTI"):
        assert 0 <= value(home, "price-feed", "rec_index_staleness_seconds", index=index) < 30
    assert value(home, "price-feed", "rec_feed_staleness_seconds", feed="price") < 30
    assert value(home, "price-feed", "rec_queue_depth", queue="price-ws") is not None
    assert svc.terminate() == 0


async def test_an_intent_moves_the_trading_counters_and_the_ledger_check_is_reported(
        rec_home_db, start_service, sim):
    procs = await tf.start_trading(rec_home_db, sim, start_service, **FAST)
    home = rec_home_db
    sent0 = await until_value(home, "trade-executor", "rec_orders_sent_total", lambda v: True,
                              svc=procs["executor"])
    assert value(home, "trade-executor", "rec_orders_in_doubt") == 0
    assert value(home, "trade-executor", "rec_orders_in_doubt_oldest_age_seconds") == 0
    ticker = sim.open_tickers("KXBTCD")[5]
    r = await tf.post_trade(home, open_body(ticker, "m-open-1"), wait=10)
    assert r.status_code == 201, r.text
    await until_value(home, "trade-manager", "rec_intents_total", lambda v: v == 1,
                      svc=procs["manager"], kind="open")
    await until_value(home, "trade-executor", "rec_orders_sent_total",
                      lambda v: v == sent0 + 1, svc=procs["executor"])
    await until_value(home, "trade-executor", "rec_orders_accepted_total", lambda v: v >= 1)
    assert value(home, "trade-executor", "rec_order_round_trip_seconds_count") >= 1
    # a market the exchange closed while rec still reads it open: refused, by its code
    closed = sim.open_tickers("KXBTCD")[6]
    sim.sim.exchange.close_market(sim.sim.exchange.markets[closed])
    r = await tf.post_trade(home, open_body(closed, "m-open-2"))
    assert r.status_code == 201, r.text
    await until_value(home, "trade-executor", "rec_orders_rejected_total", lambda v: v == 1,
                      svc=procs["executor"], reason="market_closed")
    # the manager's comparison of the books with the exchange: when, and what it found
    await until_value(home, "trade-manager", "rec_ledger_last_check_timestamp_seconds", bool,
                      within=30, svc=procs["manager"])
    assert value(home, "trade-manager", "rec_ledger_differences") == 0
    for svc in procs.values():
        assert svc.terminate() == 0


async def test_a_leg_in_doubt_is_counted_with_its_age_until_the_exchange_settles_it(
        rec_home_db, start_service, sim):
    """The answer of an open is lost and the exchange answers 503 to everything after: the
    leg is in doubt (rec_orders_in_doubt 1, its age growing) until the exchange answers
    again and its record settles the leg (0)."""
    home = rec_home_db
    procs = await tf.start_trading(home, sim, start_service, sync=False, **FAST)
    executor = procs["executor"]
    await lost_answer(sim, home, "doubt-1")
    await sim.control("http_error", status=503, count=100_000,
                      path_prefix="/trade-api/v2/portfolio")
    await sim.control("release", path=ORDERS)
    await until_value(home, "trade-executor", "rec_orders_in_doubt", lambda v: v == 1,
                      within=30, svc=executor)
    age = await until_value(home, "trade-executor", "rec_orders_in_doubt_oldest_age_seconds",
                            lambda v: v > 0, svc=executor)
    await until_value(home, "trade-executor", "rec_orders_in_doubt_oldest_age_seconds",
                      lambda v: v >= age + 1, svc=executor)  # read when written: it grows
    await sim.control("clear")
    await until_value(home, "trade-executor", "rec_orders_in_doubt", lambda v: v == 0,
                      within=30, svc=executor)
    assert value(home, "trade-executor", "rec_orders_in_doubt_oldest_age_seconds") == 0


def test_rec_metrics_prints_the_files_or_one_services(rec_home, start_service):
    svc = start_service(rec_home, "tests.fake_services:SleepyPhases", extra_env=FAST)
    svc.notify.wait_for("READY", "1")
    wait_value(rec_home, "sleepy", "rec_up", bool, svc=svc)
    every = rec_home.rec("metrics")
    assert every.returncode == 0, every.stderr
    assert str(metrics_file(rec_home, "sleepy")) in every.stdout
    assert 'rec_up{service="sleepy"} 1.0' in every.stdout
    assert svc.terminate() == 0
    one = rec_home.rec("metrics", "web")
    assert one.returncode == 1 and "no metrics file for web" in one.stderr
    unknown = rec_home.rec("metrics", "nope")
    assert unknown.returncode == 2 and "no service 'nope'" in unknown.stderr


def test_rec_web_serves_a_services_file_behind_the_login_and_the_services_page_links_it(
        rec_home_db, start_service):
    home = rec_home_db
    home.env.update(FAST, REC_MONITORING_URL="http://127.0.0.1:9090/")
    assert home.rec("db", "migrate").returncode == 0
    svc = start_service(home, "web")
    svc.notify.wait_for("READY", "1")
    wait_value(home, "web", "rec_up", bool, svc=svc)
    url = f"http://127.0.0.1:{home.env['REC_WEB_PORT']}"
    anonymous = httpx.get(url + "/metrics/web", timeout=10)
    # a link an operator follows: to the login, and back here after it
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=/metrics/web"
    client, _ = login(url)
    try:
        r = client.get("/metrics/web")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        names = {s.name for f in text_string_to_metric_families(r.text) for s in f.samples}
        assert {"rec_up", "rec_db_pool_size", "rec_last_write_timestamp_seconds"} <= names
        head = client.head("/metrics/web")
        assert head.status_code == 200 and head.content == b""
        assert client.get("/metrics/nope").status_code == 404
        missing = client.get("/metrics/market-feed")  # a service that does not run here
        assert missing.status_code == 404 and "no metrics file" in missing.json()["message"]
        page = client.get("/services").text
        assert '<a class="metrics" href="/metrics/web">metrics</a>' in page
        assert '<a class="metrics" href="/metrics/backup">' in page
        assert '<a id="monitoring" href="http://127.0.0.1:9090/"' in page
    finally:
        client.close()
    assert svc.terminate() == 0
