"""rec-web: readiness, the bundle's aggregate health and the status page, over real processes."""

from __future__ import annotations

import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app.runtime.units import parse


@pytest.fixture
def web(rec_home_db, start_service):
    rec_home_db.env["REC_SIM_MAINTENANCE_WINDOW"] = ""  # a simulator started here trades
    assert rec_home_db.rec("db", "migrate").returncode == 0
    svc = start_service(rec_home_db, "web")
    svc.notify.wait_for("READY", "1")
    return f"http://127.0.0.1:{rec_home_db.env['REC_WEB_PORT']}"


def health_when(url: str, condition, timeout: float = 15.0) -> httpx.Response:
    """GET until ``condition(response)`` holds (the checks run in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(url, timeout=10)
        if condition(r) or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def test_aggregate_health_is_green_with_database_and_simulator(rec_home_db, start_service, web):
    sim = start_service(rec_home_db, "exchange-sim")
    sim.notify.wait_for("READY", "1")
    r = health_when(f"{web}/api/health", lambda r: r.status_code == 200)
    assert r.status_code == 200, r.text
    body = r.json()
    checks = body["checks"]
    assert {n: checks.pop(n) for n in ("database", "exchange", "feed", "account")} == {
        "database": {"ok": True}, "exchange": {"ok": True}, "feed": {"ok": True},
        "account": {"ok": True}}
    # no rec-price-feed, rec-coordinator or rec-trade-manager here: their tables are
    # awaited (within the grace)
    assert checks == {"ledger": {"ok": True, "note": "waiting for the first reconciliation"},
                      "index": {"ok": True, "note": "waiting for the first index values: "
                                "BRTI: no value stored yet, ETHUSD_RTI: no value stored yet"},
                      "strikes": {"ok": True, "note": "waiting for the first strike tables: "
                                  "KXBTCD: not priced yet, KXETHD: not priced yet"}}
    assert 0 <= body["age_sec"] < 10
    assert body["units"] is None and body["units_note"] == "not running under systemd"


def test_aggregate_health_names_the_missing_exchange(web):
    r = httpx.get(f"{web}/api/health", timeout=10)
    assert r.status_code == 503
    body = r.json()
    assert body["failed"] == ["exchange"]
    assert "ConnectError" in body["checks"]["exchange"]["error"]
    # rec-web itself is still ready: the exchange is not its own dependency
    assert httpx.get(f"{web}/readyz").status_code == 200


def test_parse_units_from_systemctl_show():
    text = ("Id=rec-web.service\nType=notify\nActiveState=active\nSubState=running\n"
            "NRestarts=2\nResult=success\n\nId=rec-migrate.service\nType=oneshot\n"
            "ActiveState=inactive\nSubState=dead\nNRestarts=0\nResult=success\n\n"
            "Id=rec-exchange-sim.service\nType=notify\n"
            "ActiveState=failed\nSubState=failed\nNRestarts=5\nResult=exit-code\n\n"
            "Id=rec-gone.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\n")
    units = {u.name: u for u in parse(text)}
    assert units["rec-web.service"].ok and units["rec-web.service"].restarts == 2
    assert units["rec-migrate.service"].ok  # a oneshot that finished cleanly
    assert not units["rec-exchange-sim.service"].ok
    assert not units["rec-gone.service"].ok  # expected but not installed


def test_rec_status_reports_each_check(rec_home_db, web):
    r = rec_home_db.rec("status")
    assert r.returncode == 1  # no exchange running
    assert "--- units: not running under systemd" in r.stdout
    assert "ok  database" in r.stdout
    assert "BAD exchange" in r.stdout and "cannot connect: Connection refused" in r.stdout
    assert re.search(r"^BAD rec-web /api/health +failing: exchange$", r.stdout, re.M)


def test_rec_status_still_reports_database_and_exchange_when_rec_web_is_down(
        rec_home_db, start_service):
    sim = start_service(rec_home_db, "exchange-sim")
    sim.notify.wait_for("READY", "1")
    r = rec_home_db.rec("status")
    assert r.returncode == 1, r.stdout
    assert "ok  database" in r.stdout
    assert "ok  exchange" in r.stdout and "answered 200" in r.stdout
    assert "BAD rec-web /api/health" in r.stdout and "cannot connect" in r.stdout


def test_status_details_of_a_failed_unit():
    from app.runtime.units import parse

    text = ("Id=rec-web.service\nType=notify\nActiveState=failed\nSubState=failed\n"
            "NRestarts=0\nResult=exit-code\nExecMainStatus=78\n"
            "StateChangeTimestampMonotonic=5000000\n")
    (unit,) = parse(text)
    assert not unit.ok and unit.exit_status == "78"
    assert unit.since_sec(65.0) == 60.0


def test_thirty_concurrent_health_requests_all_answer_from_the_last_check(rec_home_db,
                                                                           start_service, web):
    sim = start_service(rec_home_db, "exchange-sim")
    sim.notify.wait_for("READY", "1")
    health_when(f"{web}/api/health", lambda r: r.status_code == 200)
    with httpx.Client(timeout=10) as client, ThreadPoolExecutor(30) as pool:
        codes = list(pool.map(lambda _: client.get(f"{web}/api/health").status_code, range(30)))
    assert codes == [200] * 30  # no probe per request: no false 503 from the sim's rate limit


def test_no_slash_redirect_that_echoes_the_host_header(web):
    r = httpx.get(f"{web}/api/health/", headers={"Host": "evil.example"}, timeout=10,
                  follow_redirects=False)
    assert r.status_code == 404 and "location" not in r.headers


def test_health_answers_fast_while_the_database_hangs_and_logs_recovery(
        pg, rec_home, start_service):
    """A database that stops answering (every server process frozen): /readyz and
    /api/health still answer in well under 100 ms, from the last results, naming the
    database; when it answers again, the recovery is one log line."""
    from testkit import pg as pgserver

    server = pgserver.start()
    try:
        server.create_app_db("rec", "rec", "hang-secret")
        rec_home.env.update(REC_DB_HOST="127.0.0.1", REC_DB_PORT=str(server.port),
                            REC_DB_NAME="rec", REC_DB_USER="rec", REC_DB_SSLMODE="disable")
        rec_home.credential("db_password", "hang-secret")
        svc = start_service(rec_home, "web")
        svc.notify.wait_for("READY", "1")
        url = f"http://127.0.0.1:{rec_home.env['REC_WEB_PORT']}"
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        server.freeze()
        try:
            r = health_when(f"{url}/readyz", lambda r: r.status_code == 503, timeout=20)
            assert r.status_code == 503 and r.json()["failed"] == ["database"]
            # the feed and account checks read the same database: not run meanwhile
            assert r.json()["checks"]["feed"] == {"ok": True,
                                                  "note": "not checked: database failing"}
            assert "no answer within" in r.json()["checks"]["database"]["error"]
            with httpx.Client(timeout=5) as client:
                times = []
                for path in ("/readyz", "/api/health") * 10:
                    t0 = time.perf_counter()
                    client.get(f"{url}{path}")
                    times.append(time.perf_counter() - t0)
            assert max(times) < 0.1, times
            assert "health: database is failing" in svc.output
        finally:
            server.thaw()
        r = health_when(f"{url}/readyz", lambda r: r.status_code == 200, timeout=30)
        assert r.status_code == 200, r.text
        assert "health: database recovered after" in svc.output
    finally:
        pgserver.remove(server)


def test_invalid_requests_are_refused_and_logged_with_the_client_address(rec_home_db, web):
    port = int(rec_home_db.env["REC_WEB_PORT"])
    # 1. garbage instead of HTTP
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        assert s.recv(200).startswith(b"HTTP/1.1 400")
        client = s.getsockname()
    # 2. 80 KiB of headers
    big = {"X-Big": "a" * 80 * 1024}
    r = httpx.get(f"{web}/healthz", headers=big, timeout=10)
    assert r.status_code == 431 and r.json()["code"] == "request_header_fields_too_large"
    # 3. a 2 MiB body
    r = httpx.post(f"{web}/healthz", content=b"x" * (2 * 1024 * 1024), timeout=10)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    log = (rec_home_db.root / "web.log").read_text()
    assert f"invalid HTTP request from 127.0.0.1:{client[1]}" in log
    assert "Invalid HTTP request received." not in log
    assert "over 1048576 bytes: answered 413" in log
    assert "over 65536 bytes: answered 431" in log


def test_the_strike_table_warm_up_hint_names_the_setting_rec_coordinator_reads():
    """Issue 22: the hint named REC_MARKET_FEED_SERIES; rec-coordinator prices the series of
    coordinator_series."""
    from app import config
    from app.web.views import templates

    page = templates.get_template("panels/strikes.html").render(p={"data": {}, "series": []})
    hint = page.split('id="no-strikes">')[1].split("</p>")[0]
    assert config.env_name("coordinator_series") in hint
    assert "MARKET_FEED_SERIES" not in hint


def test_page_times_are_new_york_times_and_no_heading_says_utc():
    """Every time a trader reads is on New York's clock, as the names and the countdowns are
    (the fills, trades and audit said UTC beside an ET close time). Daylight saving counts."""
    import datetime as dt
    from pathlib import Path

    from app.web.formats import ts

    assert ts(dt.datetime(2026, 7, 1, 16, 0, tzinfo=dt.UTC)) == "2026-07-01 12:00:00"  # EDT
    assert ts("2026-12-07T16:00:00+00:00") == "2026-12-07 11:00:00"  # EST
    assert ts(None) == "—"
    templates = Path(__file__).parent.parent / "app" / "web" / "templates"
    saying_utc = [p.name for p in templates.rglob("*.html") if "UTC" in p.read_text()]
    assert saying_utc == []
