"""rec-web's dashboard data and browser helpers, shared by tests/test_web_dashboard.py and
benchmarks/web_bench.py: one hourly BTC event of three strikes (`SEED`, written into a migrated
database the way the data services write it), Debian's Chromium and its flags, and `wait_js`,
which polls the page because its CSP refuses the eval behind Playwright's wait_for_function,
and `Feeds`, rec-market-feed's and rec-price-feed's heartbeat writes (the stale banner's
input)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import psycopg

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-gpu", "--disable-quic"]
SERIES = "KXBTCD"
EVENT = "KXBTCD-26NOV2614"
T_LOW, T_MID, T_HIGH = f"{EVENT}-T90999.99", f"{EVENT}-T91249.99", f"{EVENT}-T91499.99"


def until(fn, timeout: float = 10.0, what: str = "condition"):
    """`fn()` once it is truthy, polled every 50 ms; fails the caller after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


SEED = """
INSERT INTO markets (ticker, event_ticker, series_ticker, title, status, floor_strike,
                     close_time, followed)
VALUES (%(low)s, %(event)s, %(series)s, 'BTC above 91,000', 'active', 90999.99,
        now() + interval '40 minutes', true),
       (%(mid)s, %(event)s, %(series)s, 'BTC above 91,250', 'active', 91249.99,
        now() + interval '40 minutes', true),
       (%(high)s, %(event)s, %(series)s, 'BTC above 91,500', 'active', 91499.99,
        now() + interval '40 minutes', true);
INSERT INTO feed_quotes (ticker, ts, source, yes_bid, yes_ask, last_price, volume)
SELECT t, now() - interval '1 second', 'ws', b - 0.0005, b + 0.0195, b + 0.01, 1001
FROM (VALUES (%(low)s, 0.80), (%(mid)s, 0.50), (%(high)s, 0.20)) AS m(t, b);
INSERT INTO feed_freshness (ticker, last_message_at, source, state)
VALUES (%(low)s, now(), 'ws', 'live'), (%(mid)s, now(), 'ws', 'live'),
       (%(high)s, now(), 'ws', 'live');
INSERT INTO feed_book_levels (ticker, side, price, quantity, updated_at)
VALUES (%(mid)s, 'yes', 0.50, 120, now()), (%(mid)s, 'yes', 0.49, 300, now()),
       (%(mid)s, 'no', 0.48, 200, now()), (%(mid)s, 'no', 0.47, 50, now());
INSERT INTO account_balance (balance_cents, portfolio_value_cents) VALUES (1234567, 4500);
INSERT INTO account_positions (ticker, position, market_exposure, realized_pnl, fees_paid)
VALUES (%(mid)s, 10, 4.80, 1.25, 0.07), (%(high)s, -5, 3.90, 0, 0.05);
INSERT INTO account_fills (trade_id, order_id, ticker, outcome_side, book_side, count,
                           yes_price, no_price, fee, is_taker, created_time, source)
VALUES ('f1', 'o1', %(mid)s, 'yes', 'bid', 10, 0.48, 0.52, 0.07, true,
        now() - interval '5 minutes', 'ws');
INSERT INTO index_prices (index_name, ts, price, momentum)
SELECT 'BRTI', date_trunc('second', now()) - (g || ' seconds')::interval,
       91200 + 40 * sin(g / 60.0), 5 * cos(g / 90.0)
FROM generate_series(1, 600, 5) AS g;
INSERT INTO strike_table (market_ticker, series_ticker, event_ticker, computed_at, close_time,
    index_name, index_ts, strike, index_price, momentum, buffer, buffer_pct, probability,
    prob_source, sample_size, yes_ask, no_ask, yes_diff_cents, no_diff_cents, volume,
    active_side, time_to_close_sec, window_sec, window_progress)
SELECT t, %(series)s, %(event)s, now(), now() + interval '40 minutes', 'BRTI',
       date_trunc('second', now()), s, 91200, 3.5, 91200 - s, (91200 - s) / 912.0, p,
       'fingerprint', 5000, ya, 1 - ya + 0.02, 100 * p - 100 * ya,
       100 * (1 - p) - 100 * (1 - ya + 0.02), 1500, CASE WHEN p >= 0.5 THEN 'yes' ELSE 'no' END,
       2400, 60, 0
FROM (VALUES (%(low)s, 90999.99, 0.83, 0.81), (%(mid)s, 91249.99, 0.46, 0.51),
             (%(high)s, 91499.99, 0.12, 0.21)) AS x(t, s, p, ya);
INSERT INTO watchlist (market_ticker, side, series_ticker, probability, ask, diff_cents, volume,
                       computed_at)
VALUES (%(low)s, 'yes', %(series)s, 0.83, 0.81, 2, 1500, now());
"""


def seed(dsn: str) -> None:
    """:data:`SEED` written into the migrated database at ``dsn``."""
    with psycopg.connect(dsn, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        conn.execute(SEED, {"low": T_LOW, "mid": T_MID, "high": T_HIGH, "event": EVENT,
                            "series": SERIES})


def wait_js(page, expression: str, timeout: float = 10.0) -> None:
    """Until ``expression`` holds in the page, polled from here: Playwright's
    wait_for_function compiles its predicate with eval, which the pages' CSP refuses."""
    until(lambda: page.evaluate(expression), timeout, what=expression)


class Feeds:
    """rec-market-feed's report and rec-price-feed's index seconds, written every 0.5 s as
    those services do while they run; ``feed`` / ``index`` off: that one goes quiet."""

    def __init__(self, dsn: str) -> None:
        self.dsn, self.feed, self.index = dsn, True, True
        self.last_feed = 0.0  # time.monotonic() of the last report written
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stopped.is_set():
                if self.feed:
                    conn.execute("INSERT INTO feed_status (name, mode, since) VALUES "
                                 "('market-feed', 'ws', now()) ON CONFLICT (name) DO UPDATE "
                                 "SET updated_at = now()")
                    self.last_feed = time.monotonic()
                if self.index:
                    conn.execute("INSERT INTO index_prices (index_name, ts, price) SELECT i, "
                                 "date_trunc('second', now()), 91200 FROM unnest(%s::text[]) "
                                 "AS i ON CONFLICT DO NOTHING", (["BRTI", "ETHUSD_RTI"],))
                self.stopped.wait(0.5)

    def __enter__(self) -> Feeds:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()


AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
AXE_FAILS = ("serious", "critical")


def axe_violations(page, impacts: tuple[str, ...] = AXE_FAILS) -> list[dict]:
    """axe-core's violations of ``impacts`` on the page as it is now: ``{"id", "impact",
    "help", "nodes": [the first targets]}``. The vendored axe-core is evaluated through the
    browser's devtools protocol, which the page's Content-Security-Policy does not govern (a
    script tag would be refused)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    found = page.evaluate("""async () => (await axe.run(document, {
        resultTypes: ['violations'] })).violations.map(v => ({ id: v.id, impact: v.impact,
        help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ')) }))""")
    return [v for v in found if v["impact"] in impacts]
