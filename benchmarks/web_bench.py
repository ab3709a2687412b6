#!/usr/bin/env python3
"""rec-web in real headless Chromium (Playwright): time to first render of the trade monitor,
and NOTIFY -> browser update latency.

- first render: a logged-in navigation to /monitor until the strike table is in the DOM
  (server-rendered: DOMContentLoaded) and until the index chart is drawn (its data fetched
  and the uPlot canvas made), over --loads navigations;
- update latency: the strike table's row changes in PostgreSQL and ``pg_notify('strike_table')``
  is sent; the time from just before the NOTIFY until the new value is in the page (the
  browser's clock, the same machine), over --updates changes, one at a time;
- feed quiet -> DATA STALE: rec-market-feed's report (``feed_status``) and the index seconds
  are written every 0.5 s as those services do (testkit.web.Feeds); the report stops and the
  time until the top bar of /monitor says "DATA STALE: market feed" is measured (issue 22's
  goal: within 10 s), over --quiet trials, with the load average.

Real PostgreSQL (testkit), real `rec run web`, Debian's /usr/bin/chromium. Usage:
    .venv/bin/python -m benchmarks.web_bench [--loads 20] [--updates 200] [--quiet 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from benchmarks.simproc import service_env
from testkit import pg as pgserver
from testkit.net import free_port
from testkit.notify import NotifySocket
from testkit.web import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SERIES,
    T_MID,
    Feeds,
    seed,
    wait_js,
)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def line(name: str, ms: list[float]) -> str:
    return (f"{name:<44} n={len(ms):<4} p50 {pct(ms, 50):7.1f} ms  p90 {pct(ms, 90):7.1f} ms  "
            f"p99 {pct(ms, 99):7.1f} ms  max {max(ms):7.1f} ms")


BANNER = ("(() => { const b = document.querySelector('#stale'); "
          "return b.hidden ? '' : b.textContent; })()")


def stale_banner_times(page, dsn: str, trials: int) -> list[float]:
    """ms from rec-market-feed's last report to "DATA STALE: market feed" on /monitor."""
    out = []
    with Feeds(dsn) as feeds:
        page.goto(page.url.rsplit("/", 1)[0] + "/monitor")
        for _ in range(trials):
            feeds.feed = True
            wait_js(page, "window.__rec.online && window.__rec.beat && "
                          "document.querySelector('#stale').hidden", timeout=30)
            time.sleep(1.0)  # a few reports while the page is fresh
            feeds.feed = False
            t1 = time.monotonic()
            while not page.evaluate(BANNER).startswith("DATA STALE: market feed"):
                assert time.monotonic() - t1 < 60, "no stale banner within 60 s"
                time.sleep(0.05)
            out.append((time.monotonic() - feeds.last_feed) * 1000)  # from the last report
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loads", type=int, default=20)
    ap.add_argument("--updates", type=int, default=200)
    ap.add_argument("--quiet", type=int, default=5)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    server = pgserver.start()
    home = Path(tempfile.mkdtemp(prefix="rec-webbench-"))
    proc = None
    try:
        server.create_app_db("rec", "rec", "bench-pw")
        port = free_port()
        env = service_env(home, server.port, None, free_port(), REC_LOG_LEVEL="warning",
                          REC_WEB_PORT=str(port))
        subprocess.run([sys.executable, "-m", "app.cli", "db", "migrate"], env=env, check=True,
                       capture_output=True)
        dsn = server.dsn("rec", "bench-pw", "rec")
        seed(dsn)
        notify = NotifySocket.open()
        env["NOTIFY_SOCKET"] = str(notify.path)
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "run", "web"], env=env,
                                stdout=subprocess.DEVNULL)
        notify.wait_for("READY", "1", timeout=60)
        url = f"http://127.0.0.1:{port}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url + "/login")
            page.fill("input[name=user]", "admin")
            page.fill("input[name=password]", "bench-login-pw")
            page.click("button[type=submit]")
            page.wait_for_url(url + "/")
            dom, chart = [], []
            for _ in range(args.loads):
                t0 = time.perf_counter()
                page.goto(url + "/monitor", wait_until="domcontentloaded")
                page.wait_for_selector("table.strikes")
                dom.append((time.perf_counter() - t0) * 1000)
                page.wait_for_selector("#index-chart canvas")
                chart.append((time.perf_counter() - t0) * 1000)
            wait_js(page, "window.__rec && window.__rec.online === true")
            latency = []
            row = f'table.strikes tr[data-ticker="{T_MID}"] .yes-ask'
            with psycopg.connect(dsn, autocommit=True) as conn:
                for i in range(args.updates):
                    cents = 10 + i % 80
                    conn.execute("UPDATE strike_table SET yes_ask = %s WHERE market_ticker = %s",
                                 (cents / 100, T_MID))
                    page.evaluate(
                        "([sel, want]) => { window.__seen = null; const el = () => "
                        "document.querySelector(sel); const obs = new MutationObserver(() => {"
                        " if (el() && el().textContent === want && !window.__seen) {"
                        " window.__seen = Date.now(); obs.disconnect(); } });"
                        " obs.observe(document.body, {subtree: true, childList: true,"
                        " characterData: true}); }", [row, f"{cents}¢"])
                    t0 = time.time() * 1000
                    conn.execute("SELECT pg_notify('strike_table', %s)", (SERIES,))
                    wait_js(page, "window.__seen !== null")  # the page's CSP refuses eval
                    latency.append(page.evaluate("window.__seen") - t0)
            quiet = stale_banner_times(page, dsn, args.quiet)
            browser.close()
        print(f"rec-web in Chromium ({os.cpu_count()} CPUs), {args.loads} loads, "
              f"{args.updates} updates")
        print(line("trade monitor: navigation -> strike table", dom))
        print(line("trade monitor: navigation -> index chart drawn", chart))
        print(line("NOTIFY strike_table -> new value in the page", latency))
        if quiet:
            print(line("market feed quiet -> DATA STALE banner", quiet) +
                  f"  (goal <= 10000 ms: {'met' if max(quiet) <= 10_000 else 'MISSED'})")
        print("load average (1, 5, 15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
        return 0
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        pgserver.remove(server)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
