"""rec-web: readiness, the bundle's aggregate health and the status page, over real processes."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from app.runtime.units import parse


@pytest.fixture
def web(rec_home_db, start_service):
    assert rec_home_db.rec("db", "migrate").returncode == 0
    svc = start_service(rec_home_db, "web")
    svc.notify.wait_for("READY", "1")
    return f"http://127.0.0.1:{rec_home_db.env['REC_WEB_PORT']}"


def test_aggregate_health_is_green_with_database_and_simulator(rec_home_db, start_service, web):
    sim = start_service(rec_home_db, "exchange-sim")
    sim.notify.wait_for("READY", "1")
    r = httpx.get(f"{web}/api/health", timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["checks"] == {"database": {"ok": True}, "exchange": {"ok": True}}
    assert body["units"] is None and body["units_note"] == "not running under systemd"
    page = httpx.get(f"{web}/", timeout=10)
    assert page.status_code == 200
    assert 'id="overall">all healthy<' in page.text


def test_aggregate_health_names_the_missing_exchange(web):
    r = httpx.get(f"{web}/api/health", timeout=10)
    assert r.status_code == 503
    body = r.json()
    assert body["failed"] == ["exchange"]
    assert "ConnectError" in body["checks"]["exchange"]["error"]
    # rec-web itself is still ready: the exchange is not its own dependency
    assert httpx.get(f"{web}/readyz").status_code == 200
    page = httpx.get(f"{web}/", timeout=10)
    assert page.status_code == 503 and "unhealthy: exchange" in page.text


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
    assert "units: not running under systemd" in r.stdout
    assert "ok  database" in r.stdout
    assert "BAD exchange" in r.stdout


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium")
    assert exe, "Debian's chromium is missing: scripts/dev_prereqs installs it"
    return subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
        capture_output=True, text=True, timeout=60)


def test_status_page_works_in_a_real_browser(rec_home_db, start_service, web, tmp_path):
    sim = start_service(rec_home_db, "exchange-sim")
    sim.notify.wait_for("READY", "1")
    r = chromium(tmp_path, "--dump-dom", f"{web}/")
    assert r.returncode == 0, r.stderr[-2000:]
    assert '<p class="status" id="overall">all healthy</p>' in r.stdout
    assert "<td>database</td><td>ok</td>" in r.stdout
    assert "<td>exchange</td><td>ok</td>" in r.stdout
    shot = tmp_path / "status.png"  # kept in the test dir to look at
    r = chromium(tmp_path, "--window-size=900,600", f"--screenshot={shot}", f"{web}/")
    assert r.returncode == 0, r.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
