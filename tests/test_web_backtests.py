"""The dashboard's Backtests page (docs/replay.md, "--report"): the reports `rec backtest FILE
--report` writes under ``<state_dir>/backtests/`` listed newest first, each one's page and
charts served read-only by rec-web (a real process) and seen in real headless Chromium;
nothing outside a report's own files is ever served, however the path is spelled."""

from __future__ import annotations

import http.client
import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from app.backtest import page as report_page
from app.backtest import reports
from app.backtest.cli import report_dir
from app.backtest.report import Trade, build
from app.cli import build_parser
from testkit.web import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import REPO, WEB_PASSWORD, WEB_USER

SECRET = "db-password-never-served"
ARTIFACTS = Path(os.environ.get("REC_TEST_ARTIFACTS", REPO / ".local/test-artifacts/web"))
TRADES = [Trade(1, "A", "auto", "exit_probability", 30, Decimal("0.0700"), 3_000),
          Trade(2, "B", "auto", "settlement", -50, Decimal("0.0200"), 1_000)]


def write_report(root: Path, when: datetime, trades: list[Trade], title: str) -> str:
    """A report as `rec backtest FILE --report` writes it (page.write into a new directory
    under the reports' home); returns its name."""
    out = reports.new_dir(root, when)
    report_page.write(build(trades, [], []), out, title, now=when)
    return out.name


@pytest.fixture
def web(rec_home_db, start_service):
    """rec-web over a state dir with two reports, a directory that is no report, a link out
    of the reports' directory and a report whose manifest names a link to a secret."""
    state = Path(rec_home_db.env["REC_STATE_DIR"])
    (state / "secret.txt").write_text(SECRET)
    root = state / "backtests"
    older = write_report(root, datetime(2026, 12, 6, 9, 0, tzinfo=UTC), TRADES[:1],
                         "rec backtest: monday.parquet")
    newer = write_report(root, datetime(2026, 12, 7, 9, 0, tzinfo=UTC), TRADES,
                         "rec backtest: tuesday.parquet")
    (root / "not-a-report").mkdir()
    (root / "out").symlink_to(state)
    sneaky = write_report(root, datetime(2026, 12, 5, 9, 0, tzinfo=UTC), TRADES, "sneaky")
    (root / sneaky / "leak.png").symlink_to(state / "secret.txt")
    manifest = json.loads((root / sneaky / reports.MANIFEST).read_text())
    manifest["charts"].append("leak.png")
    (root / sneaky / reports.MANIFEST).write_text(json.dumps(manifest))
    proc = start_service(rec_home_db, "web")
    proc.notify.wait_for("READY", "1")
    url = f"http://127.0.0.1:{rec_home_db.env['REC_WEB_PORT']}"
    return {"url": url, "older": older, "newer": newer, "sneaky": sneaky}


def logged_in(url: str) -> httpx.Client:
    c = httpx.Client(base_url=url, timeout=10)
    r = c.post("/login", data={"user": WEB_USER, "password": WEB_PASSWORD},
               headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    return c


def raw_get(url: str, path: str, cookie: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as spelled (no client normalising its dots or escapes)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.putheader("Cookie", cookie)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_report_without_a_dir_goes_under_the_state_dir_and_never_shares_one(tmp_path):
    args = build_parser().parse_args(["backtest", "day.parquet", "--report"])
    assert args.report == ""  # --report alone: the default home
    settings = type("S", (), {"state_dir": tmp_path})()
    first, second = report_dir("", settings), report_dir("", settings)
    assert first.parent == second.parent == tmp_path / "backtests"
    assert first != second and first.is_dir() and second.is_dir()
    assert report_dir(str(tmp_path / "mine"), settings) == tmp_path / "mine"


def test_report_files_outside_a_report_are_never_served(web):
    c = logged_in(web["url"])
    cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
    name, sneaky = web["newer"], web["sneaky"]
    assert c.get(f"/backtests/{name}/equity.png").content[:8] == b"\x89PNG\r\n\x1a\n"
    for path in (f"/backtests/{name}/../../secret.txt", "/backtests/../secret.txt",
                 f"/backtests/{name}/..%2F..%2Fsecret.txt", "/backtests/..%2Fsecret.txt",
                 "/backtests/%2E%2E/secret.txt", f"/backtests/{name}/%2E%2E",
                 "/backtests/out/secret.txt", "/backtests/out", "/backtests/not-a-report",
                 f"/backtests/{sneaky}/leak.png", f"/backtests/{name}/report.json",
                 f"/backtests/{name}/.", "/backtests/.", "/backtests/%2Fetc%2Fpasswd"):
        status, body = raw_get(web["url"], path, cookie)
        assert status == 404, (path, status, body[:200])
        assert SECRET.encode() not in body and b"root:" not in body, path
    # without a session: the login, no report
    r = httpx.get(web["url"] + f"/backtests/{name}/equity.png", timeout=10)
    assert r.status_code in (303, 401) and not r.content.startswith(b"\x89PNG")


def test_browser_backtests_are_linked_from_the_navigation_newest_first(web):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(10_000)
            page.goto(web["url"] + "/")
            page.fill("input[name=user]", WEB_USER)
            page.fill("input[name=password]", WEB_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(web["url"] + "/")
            # from here: no error, no failed load (the browser's own favicon.ico is before)
            errors: list[str] = []
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("response", lambda r: r.status >= 400 and errors.append(r.url))
            page.click("#nav a[href='/backtests']")
            page.wait_for_url(web["url"] + "/backtests")
            rows = page.locator("#backtests tbody tr")
            titles = [rows.nth(i).locator("a").inner_text() for i in range(rows.count())]
            assert titles == ["rec backtest: tuesday.parquet", "rec backtest: monday.parquet",
                              "sneaky"]  # newest first; the directory without one is left out
            assert "P&L after fees" in rows.nth(0).inner_text()
            rows.nth(0).locator("a").click()
            page.wait_for_url(web["url"] + f"/backtests/{web['newer']}")
            summary = page.locator("pre.summary").inner_text()
            assert summary.startswith("trades 2 (2 with P&L), P&L after fees -$0.20"), summary
            charts = page.evaluate("[...document.querySelectorAll('#backtest img')]"
                                      ".map(i => [i.getAttribute('src'), i.naturalWidth])")
            assert [src.rsplit("/", 1)[1] for src, _ in charts] == [
                "equity.png", "drawdown.png", "rules.png"]
            assert all(width > 0 for _, width in charts), charts  # drawn, not broken
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "desktop-backtest.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
