"""The systemd protocol of `rec run`, observed from a test-owned NOTIFY_SOCKET."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import time

import httpx
import pytest

from app.services import REGISTRY
from testkit import pg as pgserver
from testkit.net import free_port
from tests.conftest import start_exchange_sim


def test_status_names_each_phase_then_ready(rec_home, start_service):
    svc = start_service(rec_home, "tests.fake_services:SleepyPhases")
    ready = svc.notify.wait_for("READY", "1")
    statuses = svc.notify.statuses()
    assert "starting: warm cache" in statuses
    assert "starting: initial sync: positions" in statuses
    # READY comes after both phases were announced
    phase_times = [m.at for m in svc.notify.with_key("STATUS")
                   if m.fields["STATUS"].startswith("starting:")]
    assert max(phase_times) <= ready.at
    assert svc.terminate() == 0


def test_sigterm_sends_stopping_and_exits_zero(rec_home, start_service):
    svc = start_service(rec_home, "tests.fake_services:SleepyPhases")
    svc.notify.wait_for("READY", "1")
    assert svc.terminate() == 0
    stopping = svc.notify.wait_for("STOPPING", "1", timeout=2)
    assert stopping.at >= svc.notify.wait_for("READY").at
    assert "received SIGTERM: stopping" in svc.output


def test_stop_that_overruns_its_timeout_exits_nonzero_in_time(rec_home, start_service):
    rec_home.env["REC_STOP_TIMEOUT_SEC"] = "1"
    svc = start_service(rec_home, "tests.fake_services:SlowStop")
    svc.notify.wait_for("READY", "1")
    t0 = time.monotonic()
    assert svc.terminate() == 1
    assert time.monotonic() - t0 < 5
    assert "<3>" in svc.output and "stop did not finish within 1.0s" in svc.output


def test_watchdog_pings_at_half_the_interval(rec_home, start_service):
    svc = start_service(rec_home, "tests.fake_services:SleepyPhases", watchdog_usec=400_000)
    svc.notify.wait_for("READY", "1")
    time.sleep(2.2)
    pings = [m.at for m in svc.notify.with_key("WATCHDOG")]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert len(pings) >= 9  # 2.2 s at one ping per 0.2 s, plus startup
    assert max(gaps) < 0.4  # never as long as the whole watchdog interval
    assert sum(gaps) / len(gaps) == pytest.approx(0.2, abs=0.05)
    svc.terminate()


def test_blocked_event_loop_stops_the_pings(rec_home, start_service):
    svc = start_service(rec_home, "tests.fake_services:BlocksLoop", watchdog_usec=400_000,
                        extra_env={"REC_TEST_BLOCK_AFTER": "1", "REC_TEST_BLOCK_SEC": "2"})
    svc.notify.wait_for("READY", "1")
    deadline = time.monotonic() + 10
    while "loop unblocked" not in svc.output and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    pings = [m.at for m in svc.notify.with_key("WATCHDOG")]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    # systemd would see no ping for ~2 s > WatchdogSec (0.4 s) and kill the service
    assert max(gaps) >= 1.8
    svc.terminate()


def test_phase_past_its_deadline_names_the_phase_at_err_and_exits_nonzero(rec_home,
                                                                          start_service):
    rec_home.env["REC_PHASE_TIMEOUT_SEC"] = "1"
    svc = start_service(rec_home, "tests.fake_services:HangingPhase")
    code = svc.wait(timeout=15)
    assert code == 1
    err_lines = [ln for ln in svc.output.splitlines() if ln.startswith("<3>")]
    assert any("'initial sync: positions' did not finish within 1.0s" in ln for ln in err_lines)
    assert not svc.notify.with_key("READY")


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("REC_WEB_PORT", "70000", "REC_WEB_PORT=70000"),
        ("REC_ACCOUNT_MODE", "live", "REC_ACCOUNT_MODE=live"),
        ("REC_DB_SSLMODE", "maybe", "REC_DB_SSLMODE=maybe"),
        ("REC_PHASE_TIMEOUT_SEC", "soon", "REC_PHASE_TIMEOUT_SEC=soon"),
        ("REC_KALSHI_BASE_URL", "notaurl", "REC_KALSHI_BASE_URL=notaurl"),
        ("REC_KALSHI_BASE_URL", "https://demo-api.kalshi.co",
         "path must end with /trade-api/v2"),
        ("REC_KALSHI_WS_URL", "http://127.0.0.1/trade-api/ws/v2", "not a ws/wss URL"),
    ],
)
def test_config_error_exits_78_naming_the_key(rec_home, start_service, key, value, named):
    rec_home.env[key] = value
    svc = start_service(rec_home, "web")
    assert svc.wait(timeout=15) == 78
    lines = svc.output.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("<3>rec-web: config error: ")
    assert named in lines[0] and "(from environment)" in lines[0]
    assert not svc.notify.with_key("READY")


def test_a_service_without_a_credential_it_declares_exits_78(rec_home, start_service):
    # web's registry entry declares db_password; rec_home has no credential files
    svc = start_service(rec_home, "web")
    assert svc.wait(timeout=15) == 78
    lines = svc.output.strip().splitlines()
    assert len(lines) == 1, lines
    assert "config error: credential db_password: missing" in lines[0]


def test_demo_mode_needs_no_kalshi_credential_where_no_service_uses_it(rec_home, start_service):
    rec_home.env["REC_ACCOUNT_MODE"] = "demo"
    svc = start_service(rec_home, "tests.fake_services:SleepyPhases")
    svc.notify.wait_for("READY", "1")
    assert svc.terminate() == 0


def test_config_error_raised_in_start_exits_78(rec_home, start_service):
    svc = start_service(rec_home, "tests.fake_services:ConfigErrorInStart")
    assert svc.wait(timeout=15) == 78
    assert "config error: REC_X: not usable" in svc.output
    assert not svc.notify.with_key("READY")


def test_web_ready_only_after_database_is_reachable(rec_home, start_service, tmp_path):
    port = free_port()
    rec_home.env.update(REC_DB_PORT=str(port), REC_DB_NAME="rec", REC_DB_USER="rec",
                        REC_DB_SSLMODE="disable", REC_DB_CONNECT_TIMEOUT_SEC="60",
                        REC_PHASE_TIMEOUT_SEC="60")
    rec_home.credential("db_password", "late-secret")
    svc = start_service(rec_home, "web")
    deadline = time.monotonic() + 30
    while "not reachable yet" not in svc.output and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "not reachable yet" in svc.output
    assert not svc.notify.with_key("READY"), "READY before the database exists"
    assert svc.notify.statuses()[-1] == "starting: connect to database"
    server = pgserver.start(port=port)
    try:
        server.create_app_db("rec", "rec", "late-secret")
        db_up = time.monotonic()
        ready = svc.notify.wait_for("READY", "1", timeout=30)
        assert ready.at >= db_up
        web = f"http://127.0.0.1:{rec_home.env['REC_WEB_PORT']}"
        assert httpx.get(f"{web}/healthz").status_code == 200
        r = httpx.get(f"{web}/readyz")
        assert r.status_code == 200 and r.json()["checks"]["database"]["ok"] is True
        assert "late-secret" not in svc.output
    finally:
        svc.terminate()
        pgserver.remove(server)


def test_readyz_names_the_failed_check_when_database_stops(rec_home_db, start_service):
    svc = start_service(rec_home_db, "web")
    svc.notify.wait_for("READY", "1")
    web = f"http://127.0.0.1:{rec_home_db.env['REC_WEB_PORT']}"
    assert httpx.get(f"{web}/readyz").status_code == 200
    server = rec_home_db.db.server
    import psycopg

    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        server.pause()  # the postmaster accepts no new connections ...
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s", (rec_home_db.db.name,))  # ... and old ones die
    try:
        deadline = time.monotonic() + 20  # the checks run in the background, every 2 s
        while (r := httpx.get(f"{web}/readyz", timeout=10)).status_code == 200:
            assert time.monotonic() < deadline, "readyz stayed 200 with the database away"
            time.sleep(0.1)
    finally:
        server.resume()
    assert r.status_code == 503
    assert r.json()["failed"] == ["database"]
    assert httpx.get(f"{web}/healthz").status_code == 200
    assert svc.terminate() == 0


def test_web_port_in_use_fails_startup_clearly(rec_home_db, start_service):
    with socket.socket() as s:
        s.bind(("127.0.0.1", int(rec_home_db.env["REC_WEB_PORT"])))
        s.listen()
        svc = start_service(rec_home_db, "web")
        assert svc.wait(timeout=30) == 1
    assert "cannot serve on 127.0.0.1" in svc.output
    assert not svc.notify.with_key("READY")


def test_service_whose_work_ends_unasked_exits_nonzero(rec_home, start_service):
    svc = start_service(rec_home, "tests.fake_services:EndsByItself")
    assert svc.wait(timeout=15) == 1
    assert "<3>" in svc.output and "stopped working without being asked to" in svc.output
    assert svc.notify.with_key("READY") and svc.notify.with_key("STOPPING")


def test_unknown_rec_variable_is_warned_about_with_a_suggestion(rec_home, start_service):
    rec_home.env["REC_WEB_PROT"] = "3001"
    svc = start_service(rec_home, "tests.fake_services:SleepyPhases")
    svc.notify.wait_for("READY", "1")
    assert ("<4>" in svc.output and "REC_WEB_PROT is not a rec setting and is ignored "
            "(did you mean REC_WEB_PORT?)" in svc.output)
    assert svc.terminate() == 0


@pytest.mark.parametrize("spec", REGISTRY, ids=lambda s: s.name)
def test_every_registered_service_is_ready_pings_and_stops(rec_home_db, start_service, spec):
    assert rec_home_db.rec("db", "migrate").returncode == 0
    if spec.exchange and "kalshi_key_id" in spec.credentials:
        start_exchange_sim(rec_home_db, start_service)  # a service that needs the exchange
    if "sim" not in spec.modes:
        # rec-paper: the simulator just started stands in for the live exchange it mirrors,
        # and the engine takes a port of its own (the simulator's is taken)
        live = f"127.0.0.1:{rec_home_db.env['REC_EXCHANGE_SIM_PORT']}"
        rec_home_db.env.update(
            REC_ACCOUNT_MODE="paper", REC_PAPER_SOURCE="prod",
            REC_KALSHI_BASE_URL=f"http://{live}/trade-api/v2",
            REC_KALSHI_WS_URL=f"ws://{live}/trade-api/ws/v2",
            REC_EXCHANGE_SIM_PORT=str(free_port()))
    svc = start_service(rec_home_db, spec.name, watchdog_usec=400_000,
                        freeze_on_ready=True)
    ready = svc.notify.wait_for("READY", "1")
    if spec.port:
        # READY means the socket is bound: with the service frozen the instant READY arrived,
        # the kernel still accepts a connection on a bound, listening socket, and refuses
        # one if the bind had not happened yet
        port = rec_home_db.env[f"REC_{spec.port.upper()}"]
        socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()
    os.kill(svc.proc.pid, signal.SIGCONT)
    svc.notify.wait_until(lambda msgs: len([m for m in msgs if "WATCHDOG" in m.fields
                                            and m.at > ready.at]) >= 4, timeout=10)
    assert svc.terminate() == 0
    assert svc.notify.with_key("STOPPING")
    assert f"READY: rec-{spec.name} ready in" in svc.output
