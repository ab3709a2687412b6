"""rec-web's dashboard over real processes: the login, the JSON API and every page in real
headless Chromium (Debian's /usr/bin/chromium driven by Playwright), with the data written
into a real PostgreSQL the way the data services write it, NOTIFY included.

Screenshots of every page (desktop and phone width) are kept in
``.local/test-artifacts/web/`` (REC_TEST_ARTIFACTS overrides)."""

from __future__ import annotations

import json
import os
import signal
import time
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest

from app.db import feed_log
from app.web.views import NAV
from testkit.net import free_port
from testkit.web import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SERIES,
    T_HIGH,
    T_LOW,
    T_MID,
    Feeds,
    seed,
    until,
    wait_js,
)
from tests.conftest import (
    APP_PASSWORD,
    REPO,
    WEB_PASSWORD,
    WEB_USER,
    module_home,
    running,
)

ARTIFACTS = Path(os.environ.get("REC_TEST_ARTIFACTS", REPO / ".local/test-artifacts/web"))
T_STALE = "KXBTC-26NOV2614-B91000"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, pg):
    """A migrated database with data, the simulator and rec-web, as real processes."""
    with module_home(tmp_path_factory, pg, "dash", REC_MARKET_FEED_STALE_AFTER_SEC="30",
                     REC_TRADE_MANAGER_PORT=str(free_port()),  # none there: the page says so
                     REC_SIM_MAINTENANCE_WINDOW="",  # the sim always trades
                     # no rec-price-feed/rec-coordinator here: their health waits all along
                     REC_WEB_FIRST_VALUE_GRACE_SEC="3600") as (home, dsn):
        seed(dsn)
        seed_history(dsn)
        seed_model(dsn)
        with running(home, "exchange-sim", "web") as procs:
            yield {"url": f"http://127.0.0.1:{home.env['REC_WEB_PORT']}", "dsn": dsn,
                   "home": home, "web": procs[1]}


def seed_history(dsn: str) -> None:
    """A minute of ticker history per market, as rec-market-feed stores it (the chart)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = dict(conn.execute(
            "INSERT INTO feed_market_ids (ticker) VALUES (%s), (%s), (%s) RETURNING ticker, id",
            (T_LOW, T_MID, T_HIGH)).fetchall())
        now = int(time.time() * 1000)
        log = b"".join(
            feed_log.tick(ids[t], now - g * 1000, (b - g * Decimal("0.0005"),
                                                   b + Decimal("0.02") - g * Decimal("0.0005"),
                                                   None, None, b + Decimal("0.01"), None, None))
            for t, b in ((T_LOW, Decimal("0.80")), (T_MID, Decimal("0.50")),
                         (T_HIGH, Decimal("0.20"))) for g in range(60, 0, -1))
        conn.execute("INSERT INTO feed_log_hot (data) VALUES (%s)", (log,))


CALIBRATION = {
    "points": 4000, "predictions": 80000, "fingerprint_share": 0.83, "brier": 0.081,
    "brier_lognormal": 0.093, "brier_baseline_0_5": 0.25,
    "reliability": [{"bin": f"{j / 10:.1f}-{(j + 1) / 10:.1f}", "n": 8000,
                     "mean_p": j / 10 + 0.05, "observed": j / 10 + 0.04} for j in range(10)],
    "reliability_lognormal": [{"bin": f"{j / 10:.1f}-{(j + 1) / 10:.1f}", "n": 8000,
                               "mean_p": j / 10 + 0.05, "observed": j / 10 + 0.07}
                              for j in range(10)],
}


def seed_model(dsn: str) -> None:
    """A model as `rec model build` stores it, with its reliability plot."""
    from app.pricing.plot import reliability_png

    png = reliability_png([CALIBRATION["reliability"], CALIBRATION["reliability_lognormal"]])
    sql(dsn, "INSERT INTO prob_models (index_name, train_samples, params, tables, calibration, "
             "reliability_png) VALUES ('BRTI', 1200000, '{}', '{}', %s, %s)",
        (json.dumps(CALIBRATION), png))


def login(url: str) -> tuple[httpx.Client, str]:
    c = httpx.Client(base_url=url, timeout=10)
    r = c.post("/login", data={"user": WEB_USER, "password": WEB_PASSWORD},
               headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    return c, r.json()["csrf"]


def sql(dsn: str, statement: str, params=()) -> list:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


# ---- API -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/account", "/api/markets", "/api/events",
                                  "/api/services", "/api/settings", "/fragments/account",
                                  "/openapi.json", "/api/model/1/reliability.png"])
def test_api_without_a_session_is_401(stack, path):
    r = httpx.get(stack["url"] + path, timeout=10)
    assert r.status_code == 401 and r.json()["code"] == "login_required"


@pytest.mark.parametrize("path", ["/", "/monitor", "/markets", "/trades", "/manual", "/model",
                                  "/backtests", "/services", "/settings", "/docs"])
def test_pages_without_a_session_redirect_to_the_login(stack, path):
    r = httpx.get(stack["url"] + path + "?a=1", timeout=10)
    assert r.status_code == 303
    assert r.headers["location"] == f"/login?next={path}%3Fa%3D1"


def test_health_endpoints_without_a_session(stack):
    assert httpx.get(stack["url"] + "/healthz").status_code == 200
    assert httpx.get(stack["url"] + "/readyz").status_code in (200, 503)
    # the aggregate: the host itself may read it (rec status, the play's health proof);
    # through a proxy (which sets X-Forwarded-For) it needs a login
    assert httpx.get(stack["url"] + "/api/health").status_code in (200, 503)
    r = httpx.get(stack["url"] + "/api/health", headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 401


def test_account_api_matches_the_database(stack):
    c, _ = login(stack["url"])
    body = c.get("/api/account").json()["data"]
    assert body["balance_cents"] == 1234567 and body["portfolio_value_cents"] == 4500
    pos = {p["ticker"]: p for p in body["positions"]}
    assert set(pos) == {T_MID, T_HIGH}
    assert pos[T_MID]["side"] == "yes" and pos[T_MID]["count"] == 10
    assert pos[T_HIGH]["side"] == "no" and pos[T_HIGH]["count"] == 5
    # one P&L definition (the trades' too): Kalshi's realized_pnl minus the fees paid
    assert body["realised_pnl"] == pytest.approx(1.25 - 0.12)
    assert body["fees_paid"] == pytest.approx(0.12)
    # YES valued at the best yes bid, NO at 1 - the yes ask; the book (newer than the
    # latest tick here) has yes 0.50 on top and no 0.48, so the yes ask is 0.52
    assert pos[T_MID]["yes_bid"] == 0.5 and pos[T_MID]["value"] == pytest.approx(5.0)
    assert pos[T_MID]["unrealised"] == pytest.approx(5.0 - 4.80)


def test_csrf_is_required_for_state_changing_requests(stack):
    c, csrf = login(stack["url"])
    body = {"market": T_MID, "side": "yes", "count": 1, "limit_price": 0.5}
    r = c.post("/api/trades/open", json=body)
    assert r.status_code == 403 and r.json()["code"] == "csrf"
    r = c.post("/api/trades/open", json=body, headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403 and r.json()["code"] == "csrf"
    r = c.post("/manual/open", data={**body, "csrf": "nope"})
    assert r.status_code == 403
    r = c.post("/api/trades/open", json=body, headers={"X-CSRF-Token": csrf,
                                                       "Origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["code"] == "origin"
    r = c.post("/logout")  # logging out is state-changing too
    assert r.status_code == 403


@pytest.mark.parametrize(("body", "field"), [
    ({"market": "KX", "side": "maybe", "count": 1, "limit_price": 0.5}, "side"),
    ({"market": "KX", "side": "yes", "count": 0, "limit_price": 0.5}, "count"),
    ({"market": "KX", "side": "yes", "count": 1, "limit_price": 1.5}, "limit_price"),
    ({"market": "bad ticker!", "side": "yes", "count": 1, "limit_price": 0.5}, "market"),
    ({"side": "yes", "count": 1, "limit_price": 0.5}, "market"),
])
def test_bad_input_is_a_422_naming_the_field(stack, body, field):
    c, csrf = login(stack["url"])
    r = c.post("/api/trades/open", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422
    assert r.json()["field"] == field and r.json()["message"].startswith(f"{field}: ")


def test_bad_form_input_names_the_field_on_the_page(stack):
    c, csrf = login(stack["url"])
    r = c.post("/manual/open", data={"csrf": csrf, "market": T_MID, "side": "yes",
                                     "count": "-3", "limit_price": "1.7"})
    assert r.status_code == 422
    assert 'data-field="count"' in r.text and 'data-field="limit_price"' in r.text
    r = c.get("/trades?since=yesterday")
    assert r.status_code == 422 and "since/until" in r.text
    r = c.get("/api/trades", params={"since": "yesterday"})
    assert r.status_code == 422 and r.json()["field"] == "since"


def test_manual_forms_ask_to_confirm_with_a_fresh_key(stack):
    c, csrf = login(stack["url"])
    r = c.post("/manual/open", data={"csrf": csrf, "market": T_MID, "side": "yes",
                                     "count": "3", "limit_price": "45c"})
    assert r.status_code == 200 and "Buy <b>3</b> YES of <b>BTC above $91,249.99 at " \
        in r.text and f'<small class="ticker">{T_MID}</small>' in r.text
    r = c.post("/manual/close", data={"csrf": csrf, "trade_id": "7", "limit_price": "0.4"})
    assert r.status_code == 200 and "Close trade #7 at no less than 40¢" in r.text
    assert 'name="idempotency_key" value="web-' in r.text


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil"])
def test_login_never_redirects_off_site(stack, target):
    r = httpx.post(stack["url"] + "/login", data={"user": WEB_USER, "password": WEB_PASSWORD,
                                                  "next": target})
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_logout_ends_the_session(stack):
    c, csrf = login(stack["url"])
    assert c.get("/api/session").status_code == 200
    token = c.cookies["rec_session"]
    r = c.post("/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 303
    r = httpx.get(stack["url"] + "/api/session", cookies={"rec_session": token})
    assert r.status_code == 401  # the old token is gone on the server, not just the cookie


def test_session_expires(stack):
    from app.web import auth

    sessions = auth.Sessions(ttl=60, clock=lambda: now[0])
    now = [1000.0]
    s = sessions.create("admin")
    assert sessions.get(s.token) is s
    now[0] += 61
    assert sessions.get(s.token) is None


def test_login_failures_are_rate_limited_and_logged(rec_home_db, start_service):
    rec_home_db.env.update(REC_WEB_LOGIN_MAX_FAILURES="3", REC_WEB_LOGIN_WINDOW_SEC="3")
    assert rec_home_db.rec("db", "migrate").returncode == 0
    svc = start_service(rec_home_db, "web")
    svc.notify.wait_for("READY", "1")
    url = f"http://127.0.0.1:{rec_home_db.env['REC_WEB_PORT']}"
    bad = {"user": WEB_USER, "password": "wrong password"}
    codes = [httpx.post(f"{url}/login", data=bad).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    r = httpx.post(f"{url}/login", data={"user": WEB_USER, "password": WEB_PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # right one: still no
    assert "failed login for user 'admin' from 127.0.0.1 (3 in the last 3s)" in svc.output
    assert "too many failed logins" in svc.output
    assert "wrong password" not in svc.output and WEB_PASSWORD not in svc.output
    r = until(lambda: (x := httpx.post(f"{url}/login", data={
        "user": WEB_USER, "password": WEB_PASSWORD})).status_code == 303 and x, timeout=6,
        what="the window to pass")
    assert r.headers["location"] == "/" and "rec_session" in r.cookies


def test_readyz_fails_naming_the_feed_when_a_market_is_stale(stack):
    url, dsn = stack["url"], stack["dsn"]
    until(lambda: httpx.get(url + "/readyz").status_code == 200, what="readyz 200")
    sql(dsn, "INSERT INTO markets (ticker, event_ticker, series_ticker, status, followed) "
             "VALUES (%s, 'KXBTC-26NOV2614', 'KXBTC', 'active', true) ON CONFLICT DO NOTHING",
        (T_STALE,))
    sql(dsn, "INSERT INTO feed_freshness (ticker, last_message_at, source, state) "
             "VALUES (%s, now() - interval '10 minutes', 'ws', 'live') ON CONFLICT (ticker) "
             "DO UPDATE SET last_message_at = EXCLUDED.last_message_at", (T_STALE,))
    try:
        r = until(lambda: (x := httpx.get(url + "/readyz")).status_code == 503 and x,
                  what="readyz 503")
        assert r.json()["failed"] == ["feed"]
        assert T_STALE in r.json()["checks"]["feed"]["error"]
        c, _ = login(url)
        m = {x["ticker"]: x for x in c.get("/api/markets").json()["data"]}
        assert m[T_STALE]["stale"] is True and m[T_MID]["stale"] is False
    finally:
        sql(dsn, "UPDATE feed_freshness SET state = 'closed' WHERE ticker = %s", (T_STALE,))
    until(lambda: httpx.get(url + "/readyz").status_code == 200, what="readyz 200 again")


def test_readyz_passes_with_a_note_while_the_exchange_pauses_trading(rec_home_db,
                                                                      start_service):
    """Kalshi's weekly maintenance: no market data is expected, so old data is no failure."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from tests.conftest import start_exchange_sim

    now = dt.datetime.now(ZoneInfo("America/New_York"))
    minute = now.hour * 60 + now.minute
    start, end = max(0, minute - 60), min(24 * 60, minute + 60)
    day = now.strftime("%a").lower()
    rec_home_db.env["REC_SIM_MAINTENANCE_WINDOW"] = (
        f"{day} {start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}")
    assert rec_home_db.rec("db", "migrate").returncode == 0
    start_exchange_sim(rec_home_db, start_service)
    sql(rec_home_db.db.dsn, "INSERT INTO feed_freshness (ticker, last_message_at, source, state) "
                            "VALUES ('KXBTCD-X', now() - interval '1 hour', 'ws', 'live')")
    svc = start_service(rec_home_db, "web")
    svc.notify.wait_for("READY", "1")
    url = f"http://127.0.0.1:{rec_home_db.env['REC_WEB_PORT']}"
    r = until(lambda: (x := httpx.get(url + "/readyz")).json()["checks"]["feed"].get("note")
              and x, what="the feed check's note")
    assert r.status_code == 200
    assert "1 of 1 followed markets without data: exchange paused trading until" in \
        r.json()["checks"]["feed"]["note"]


def closed_trade_with_fills(dsn: str) -> int:
    """A YES trade on T_LOW bought at 50¢ and sold at 45¢ (fees 5¢ each way), as the
    manager, the executor and rec-account-sync store it: trade, orders, fills, position."""
    (trade,), = sql(dsn, """
        INSERT INTO trades (ticker, side, status, quantity, entry_price, exit_price, entry_cost,
                            exit_proceeds, fees, fees_cents, pnl_cents, strategy, closed_at)
        VALUES (%s, 'yes', 'closed', 2, 0.50, 0.45, 1.00, 0.90, 0.10, 10, -20, 'manual', now())
        RETURNING id""", (T_LOW,))
    for leg, action, price, book, yes in (("open", "buy", 0.50, "bid", 0.50),
                                          ("close1", "sell", 0.45, "ask", 0.45)):
        sql(dsn, "INSERT INTO trade_orders (client_order_id, trade_id, leg, ticker, side, "
                 "action, count, price, time_in_force, strategy, exchange_order_id) VALUES "
                 "(%s, %s, %s, %s, 'yes', %s, 2, %s, 'fill_or_kill', 'manual', %s)",
            (f"t{trade}-{leg}", trade, leg, T_LOW, action, price, f"x{trade}-{leg}"))
        sql(dsn, "INSERT INTO account_fills (trade_id, order_id, ticker, outcome_side, "
                 "book_side, count, yes_price, no_price, fee, is_taker, created_time, source) "
                 "VALUES (%s, %s, %s, %s, %s, 2, %s, %s, 0.05, true, now(), 'ws')",
            (f"fill-{trade}-{leg}", f"x{trade}-{leg}", T_LOW, "yes" if book == "bid" else "no",
             book, yes, round(1 - yes, 2)))
    sql(dsn, "INSERT INTO account_positions (ticker, position, market_exposure, realized_pnl, "
             "fees_paid) VALUES (%s, 0, 0, -0.10, 0.10)", (T_LOW,))
    return trade


def test_overview_and_trades_agree_on_pnl_and_fills_are_in_trader_words(stack):
    """Issue 22: Overview said -$0.09 realised and Trades -$0.19 for one trade (one counted
    the fees); the fills said "no / ask" for selling YES."""
    url, dsn = stack["url"], stack["dsn"]
    trade = closed_trade_with_fills(dsn)
    try:
        c, _ = login(url)
        overview = c.get("/").text
        # the seed's positions: realised 1.25, fees 0.12; this trade: -0.10 and 0.10
        assert '<dd id="realised" class="pos">$0.93 <small id="fees">fees $0.22</small>' \
            in overview, overview
        trades = c.get("/trades", params={"market": T_LOW}).text
        row = trades.split(f'<tr data-trade="{trade}">')[1].split("</tr>")[0]
        assert '<td class="n pnl neg">-$0.20</td><td class="n fees">$0.10</td>' in row
        fills = {f["trade_id"]: f for f in c.get("/api/fills").json()["data"]}
        assert (fills[f"fill-{trade}-open"]["action"], fills[f"fill-{trade}-open"]["price"]) \
            == ("Buy Yes", 0.5)
        assert (fills[f"fill-{trade}-close1"]["action"],
                fills[f"fill-{trade}-close1"]["price"]) == ("Sell Yes", 0.45)
        assert fills["f1"]["action"] == "Buy Yes"  # not rec's order: the exposure it builds
        assert '<td class="action">Sell Yes</td><td class="n">2</td><td class="n">45¢</td>' \
            in overview
        assert "ask" not in overview.split('id="fills"')[1]
    finally:
        sql(dsn, "DELETE FROM account_positions WHERE ticker = %s", (T_LOW,))
        sql(dsn, "DELETE FROM account_fills WHERE trade_id LIKE %s", (f"fill-{trade}-%",))
        sql(dsn, "DELETE FROM trade_orders WHERE trade_id = %s", (trade,))
        sql(dsn, "DELETE FROM trade_events WHERE trade_id = %s", (trade,))
        sql(dsn, "DELETE FROM trades WHERE id = %s", (trade,))


def test_the_ticket_states_the_order_type_and_refuses_past_the_risk_limit(stack):
    """Issue 22: the form took 100,000 contracts while the limit was 25, and the order type
    (fill-or-kill at the limit) was nowhere."""
    c, csrf = login(stack["url"])
    page = c.get("/manual", params={"market": T_MID, "side": "yes", "limit_price": "0.51",
                                    "count": "2"}).text
    assert 'name="count" type="number" min="1" max="25"' in page
    assert "fill-or-kill at your limit" in page.split('id="order-type">')[1].split("</dd>")[0]
    assert "at most <b>25</b> contracts per trade" in page
    assert "you pay at most $1.06 (the fee $0.04 included)" in page  # 2 x 51c + 7% x 2 x .51 x .49
    r = c.post("/manual/open", data={"csrf": csrf, "market": T_MID, "side": "yes",
                                     "count": "26", "limit_price": "0.51"})
    assert r.status_code == 422 and 'data-field="count"' in r.text
    assert "count: at most 25 contracts per trade (risk limit max_contracts_per_trade" in r.text
    r = c.post("/manual/open", data={"csrf": csrf, "market": T_MID, "side": "yes",
                                     "count": "26", "limit_price": "0.51", "confirm": "yes",
                                     "idempotency_key": "web-0123456789abcdef"})
    assert r.status_code == 422 and "answered" not in r.text  # nothing was sent


def test_the_ticket_warns_when_an_exit_rule_would_close_the_trade_at_once(stack):
    """Issue 22: auto-stop on with an exit threshold of 0.40 closed a YES bought at P 35 %
    one second later, with no word before."""
    c, csrf = login(stack["url"])
    # T_HIGH: P(yes) 12 % in the strike table, under the default threshold 0.40
    r = c.post("/manual/open", data={"csrf": csrf, "market": T_HIGH, "side": "yes",
                                     "count": "1", "limit_price": "0.21"})
    assert r.status_code == 200 and 'id="confirm-open"' in r.text
    warning = r.text.split('id="exit-warning">')[1].split("</p>")[0]
    assert "auto-stop would close this trade at once (probability: P(YES) 12.0% is below " \
           "the exit threshold 40%)" in warning, warning
    # T_MID: P(yes) 46 %, momentum +3.5 (no rule against a YES): no warning
    r = c.post("/manual/open", data={"csrf": csrf, "market": T_MID, "side": "yes",
                                     "count": "1", "limit_price": "0.51"})
    assert r.status_code == 200 and 'id="exit-warning"' not in r.text
    # a NO there: the momentum rule (+3.5 >= 0.36) would close it at once
    r = c.post("/manual/open", data={"csrf": csrf, "market": T_MID, "side": "no",
                                     "count": "1", "limit_price": "0.51"})
    assert "(momentum_spike: momentum 3.5 is past the exit threshold 0.36 against NO)" \
        in r.text


def test_the_strike_table_says_why_its_asks_are_withheld(stack):
    """Issue 22: with rec-market-feed stopped the asks vanished with no word why, though
    rec-coordinator had said it on its (priced) series' status."""
    url, dsn = stack["url"], stack["dsn"]
    why = "asks withheld: rec-market-feed is ws, last reported 14s ago"
    sql(dsn, "INSERT INTO series_status (series_ticker, ok, error, index_name) VALUES "
             "(%s, true, %s, 'BRTI')", (SERIES, why))
    try:
        c, _ = login(url)
        r = c.get("/fragments/strikes").text
        assert f'<p class="error" data-series-status="{SERIES}">{SERIES}: {why}</p>' in r
    finally:
        sql(dsn, "DELETE FROM series_status WHERE series_ticker = %s", (SERIES,))


def test_browser_shows_resting_orders_and_partial_fills_with_a_cancel(stack, browser):
    """Issue 22 "Missing" 5: rec's resting orders with what filled, and a cancel button (the
    manager's answer is the end-to-end test's; here it is not running: the page says so)."""
    url, dsn = stack["url"], stack["dsn"]
    (trade,), = sql(dsn, "INSERT INTO trades (ticker, side, status, quantity, requested_count, "
                         "limit_price, strategy) VALUES (%s, 'yes', 'submitted', 2, 5, 0.40, "
                         "'manual') RETURNING id", (T_MID,))
    sql(dsn, "INSERT INTO trade_orders (client_order_id, trade_id, leg, ticker, side, action, "
             "count, price, time_in_force, strategy, state, exchange_order_id, fill_count, "
             "remaining_count, acked_at) VALUES (%s, %s, 'open', %s, 'yes', 'buy', 5, 0.40, "
             "'good_till_canceled', 'manual', 'accepted', %s, 2, 3, now())",
        (f"t{trade}-open", trade, T_MID, f"x{trade}-open"))
    ctx, page = open_session(browser, url)
    try:
        page.goto(url + "/manual")
        order = f'#resting-orders tr[data-trade="{trade}"]'
        assert page.text_content(f"{order} .filled") == "2 of 5"
        assert page.text_content(f"{order} .remaining") == "3"
        assert "Buy Yes" in page.text_content(order)
        assert "good till canceled" in page.text_content(order)
        assert page.text_content(f'#open-trades tr[data-trade="{trade}"] .partial') == \
            "of 5: partly filled"
        shot(page, "manual-resting-partial")
        page.click(f"{order} button.cancel-order")
        assert "What has filled stays bought" in page.text_content("#confirm-text")
        page.click("#confirm-cancel")
        assert "rec-trade-manager did not answer" in page.text_content("#result")
    finally:
        sql(dsn, "DELETE FROM trade_orders WHERE trade_id = %s", (trade,))
        sql(dsn, "DELETE FROM trade_events WHERE trade_id = %s", (trade,))
        sql(dsn, "DELETE FROM trades WHERE id = %s", (trade,))
        ctx.close()


def test_browser_open_trades_show_live_pnl_and_the_nearest_exit_rule(stack, browser):
    """Issue 22 "Missing" 6: per open trade the mark, unrealised P&L after fees (the closed
    trades' definition), P(side), time to close and the exit rule nearest to firing, live."""
    url, dsn = stack["url"], stack["dsn"]
    # 4 YES at 45¢ (cost $1.80, $0.04 fees paid); the yes bid is 50¢: 4 x 0.50 - 1.80 - 0.04
    # - Kalshi's fee for selling 4 at 50¢ (0.07 x 4 x 0.5 x 0.5 = $0.07) = $0.09
    (trade,), = sql(dsn, "INSERT INTO trades (ticker, side, status, quantity, entry_price, "
                         "entry_cost, fees, strategy) VALUES (%s, 'yes', 'open', 4, 0.45, 1.80, "
                         "0.04, 'manual') RETURNING id", (T_MID,))
    sql(dsn, "UPDATE strike_table SET probability = 0.46, momentum = 3.5, computed_at = now() "
             "WHERE market_ticker = %s", (T_MID,))
    ctx, page = open_session(browser, url)
    try:
        c, _ = login(url)
        got = {t["id"]: t for t in c.get("/api/trades/open").json()["data"]}[trade]["live"]
        assert got["mark"] == 0.5 and got["unrealised"] == pytest.approx(0.09)
        assert got["exit_fee"] == pytest.approx(0.07)
        assert got["nearest_rule"] == "probability"  # 6 of 40 points, momentum 3.86 of 0.36
        row = f'#open-trades tr[data-trade="{trade}"]'
        page.goto(url + "/")
        live(page)
        assert page.text_content(f"{row} .mark") == "50¢"
        assert page.text_content(f"{row} .unrealised").startswith("$0.09")
        assert page.text_content(f"{row} .p-side") == "46.0%"
        assert page.text_content(f"{row} .closes-in") in ("39m", "40m")
        assert page.text_content(f"{row} .nearest-rule") == "probability: 6.0pp from firing"
        shot(page, "overview-open-trade-pnl")
        # P(YES) falls under the exit threshold: the page says the rule fires, live
        sql(dsn, "UPDATE strike_table SET probability = 0.35, computed_at = now() "
                 "WHERE market_ticker = %s", (T_MID,))
        sql(dsn, "SELECT pg_notify('strike_table', %s)", (SERIES,))
        wait_js(page, f"document.querySelector('{row} .nearest-rule').textContent"
                      ".startsWith('FIRING: probability')")
    finally:
        sql(dsn, "UPDATE strike_table SET probability = 0.46 WHERE market_ticker = %s",
            (T_MID,))
        sql(dsn, "DELETE FROM trades WHERE id = %s", (trade,))
        ctx.close()


def test_browser_trade_history_in_trader_words_csv_daily_pnl_and_the_ledger(stack, browser):
    """Issue 22 "Missing" 10: why a trade opened and why it closed (the exit rule and the
    numbers rec-trade-supervisor saw), the CSV export, the daily P&L, and the ledger check's
    result on the Overview."""
    import csv
    import io

    url, dsn = stack["url"], stack["dsn"]
    (trade,), = sql(dsn, """
        INSERT INTO trades (ticker, side, status, quantity, limit_price, entry_price,
                            exit_price, entry_cost, exit_proceeds, fees, fees_cents, pnl_cents,
                            strategy, entry_method, close_method, close_rule, closed_at)
        VALUES (%s, 'yes', 'closed', 2, 0.50, 0.45, 0.30, 0.90, 0.60, 0.06, 6, -36, 'manual',
                'manual', 'auto', 'probability', now()) RETURNING id""", (T_HIGH,))
    sql(dsn, "INSERT INTO trade_events (trade_id, kind, from_status, to_status, detail) "
             "VALUES (%s, 'close requested', 'open', 'closing', %s)",
        (trade, json.dumps({"close_rule": "probability", "close_detail": {
            "probability": "0.35", "threshold": "0.40", "time_to_close_sec": "1200"}})))
    sql(dsn, "INSERT INTO ledger_checks (ok, difference_count, differences) VALUES "
             "(false, 2, %s)", (json.dumps([{"kind": "fill_missing"},
                                             {"kind": "position_differs"}]),))
    ctx, page = open_session(browser, url)
    try:
        page.goto(url + f"/trades?market={T_HIGH}")
        row = f'#trades tr[data-trade="{trade}"]'
        assert page.text_content(f"{row} .opened") == \
            "Buy 2 Yes by hand at 45¢ average (limit 50¢)"
        assert page.text_content(f"{row} .closed") == (
            "Sell 2 Yes at 30¢ average: exit rule probability fired (P(YES) 35.0% is below "
            "the exit threshold 40%)")
        # the daily summary: today's closed trades, as the database sums them
        et = "AT TIME ZONE 'America/New_York'"  # the day in New York (ET), Kalshi's
        today, n, pnl = sql(dsn, f"SELECT (now() {et})::date::text, count(*), sum(pnl_cents) "
                                 f"FROM trades WHERE (closed_at {et})::date = (now() {et})::date "
                                 "AND pnl_cents IS NOT NULL")[0]
        day = page.locator(f'#daily-pnl tr[data-day="{today}"] td')
        assert day.nth(1).text_content() == str(n)
        from app.web.formats import money_cents
        assert day.nth(4).text_content() == money_cents(pnl)
        shot(page, "trades-history")
        # the export: the same filter, the same words
        href = page.get_attribute("#trades-csv", "href")
        assert href == f"/api/trades.csv?market={T_HIGH}"
        c, _ = login(url)
        r = c.get(href)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        got = {int(x["id"]): x for x in csv.DictReader(io.StringIO(r.text))}
        assert got[trade]["pnl_dollars"] == "-0.36" and got[trade]["fees"] == "0.06"
        assert got[trade]["closed"].startswith("Sell 2 Yes at 30¢ average: exit rule")
        assert c.get("/api/trades.csv?since=yesterday").status_code == 422
        # the ledger's last check on the Overview
        page.goto(url + "/")
        assert page.text_content("#ledger-result").startswith(
            "DIFFERENCES: 2 differences between rec's books and the exchange's "
            "(fill_missing, position_differs)")
        sql(dsn, "INSERT INTO ledger_checks (ok, difference_count, adopted) VALUES "
                 "(true, 0, 1)")
        page.goto(url + "/")
        assert page.text_content("#ledger-result").startswith("OK: rec's trades, fills and "
                                                              "positions agree")
        shot(page, "overview-ledger")
    finally:
        sql(dsn, "DELETE FROM ledger_checks")
        sql(dsn, "DELETE FROM trade_events WHERE trade_id = %s", (trade,))
        sql(dsn, "DELETE FROM trades WHERE id = %s", (trade,))
        ctx.close()


def test_the_trade_answer_follows_the_trade_to_its_final_state(stack):
    """Issue 22: a 1c fill-or-kill entry said "submitted" and vanished as canceled. The
    answer on the Manual trading page is a live panel of that trade (NOTIFY trades)."""
    url, dsn = stack["url"], stack["dsn"]
    (trade,), = sql(dsn, "INSERT INTO trades (ticker, side, status, quantity, limit_price) "
                         "VALUES (%s, 'yes', 'submitted', 1, 0.01) RETURNING id", (T_LOW,))
    try:
        c, _ = login(url)
        r = c.get("/fragments/trade_result", params={"id": trade}).text
        assert f'trade #{trade}: <b class="status-submitted" id="result-status">submitted' in r
        assert "followed live" in r
        sql(dsn, "UPDATE trades SET status = 'canceled', reason = 'fill-or-kill order not "
                 "filled at 1c' WHERE id = %s", (trade,))
        r = c.get("/fragments/trade_result", params={"id": trade}).text
        assert 'id="result-status">canceled</b> — <span id="result-reason">fill-or-kill ' \
               'order not filled at 1c</span>' in r and 'id="result-final"' in r
        assert c.get("/fragments/trade_result", params={"id": "x"}).status_code == 200
    finally:
        sql(dsn, "DELETE FROM trades WHERE id = %s", (trade,))


def test_a_refused_login_keeps_the_user_and_says_where_the_password_is(stack):
    r = httpx.post(stack["url"] + "/login", data={"user": "trader7", "password": "nope"})
    assert r.status_code == 401
    assert 'name="user" autocomplete="username" required maxlength="256" value="trader7"' \
        in r.text
    hint = r.text.split('id="login-hint">')[1].split("</p>")[0]
    assert "web_password" in hint and "scripts/up" in hint


def test_openapi_and_docs_list_the_api(stack):
    c, _ = login(stack["url"])
    paths = set(c.get("/openapi.json").json()["paths"])
    assert {"/api/account", "/api/markets", "/api/strike-table", "/api/trades",
            "/api/trades/open", "/api/services", "/api/settings", "/api/events"} <= paths
    r = c.get("/docs")
    assert r.status_code == 200 and "POST /api/trades/open" in r.text
    assert "cdn" not in r.text.lower()


def test_settings_are_shown_with_sources_and_secrets_redacted(stack):
    c, _ = login(stack["url"])
    values = {v["key"]: v for v in c.get("/api/settings").json()["settings"]}
    assert values["market_feed_stale_after_sec"]["source"] == "environment"
    assert values["db_password"]["value"] == "<redacted>"
    assert values["web_password_hash"]["value"] == "<redacted>"
    page = c.get("/settings").text
    assert APP_PASSWORD not in page and "scrypt$" not in page


def test_services_without_systemd_say_unknown_and_why(stack):
    c, _ = login(stack["url"])
    body = c.get("/api/services").json()
    assert body["available"] is False and body["reason"] == "not running under systemd"
    assert {u["unit"] for u in body["units"]} >= {"rec-web.service", "rec-migrate.service"}
    assert all(u["active"] == "unknown" for u in body["units"])


def test_events_stream_carries_a_notify(stack):
    c, _ = login(stack["url"])
    with c.stream("GET", "/api/events", timeout=10) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        until(lambda: next(lines).startswith("event: hello"), what="hello")
        sql(stack["dsn"], "SELECT pg_notify('strike_table', 'KXBTCD')")
        got = until(lambda: (ln := next(lines)).startswith("data:") and "strike_table" in ln
                    and ln, what="the notification")
        assert json.loads(got[5:])["payload"] == "KXBTCD"


# ---- the browser -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    pw = sync_api.sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield b
    b.close()
    pw.stop()


def open_session(browser, url: str, **context):
    ctx = browser.new_context(**context)
    page = ctx.new_page()
    page.set_default_timeout(10_000)
    page.goto(url + "/")
    assert "/login" in page.url
    page.fill("input[name=user]", WEB_USER)
    page.fill("input[name=password]", WEB_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")
    return ctx, page


def shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def live(page) -> None:
    wait_js(page, "window.__rec && window.__rec.online === true")


def test_browser_login_shows_balance_and_positions_from_the_database(stack, browser):
    ctx, page = open_session(browser, stack["url"])
    try:
        assert page.text_content("#balance") == "$12,345.67"
        assert page.text_content("#portfolio") == "$45.00"
        rows = page.locator("#positions tbody tr")
        assert rows.count() == 2
        assert page.text_content(f'#positions tr[data-ticker="{T_MID}"] .count') == "10"
        assert page.text_content(f'#positions tr[data-ticker="{T_HIGH}"] .count') == "5"
        live(page)
        # the account changes: the page follows without a reload
        marker = page.evaluate("window.__marker = 1")
        sql(stack["dsn"], "UPDATE account_balance SET balance_cents = 1200000")
        wait_js(page, "document.querySelector('#balance').textContent === "
                               "'$12,000.00'")
        assert page.evaluate("window.__marker") == 1 if marker is None else True
        shot(page, "overview")
    finally:
        sql(stack["dsn"], "UPDATE account_balance SET balance_cents = 1234567")
        ctx.close()


def test_browser_ticker_and_strike_table_updates_arrive_without_a_reload(stack, browser):
    url, dsn = stack["url"], stack["dsn"]
    ctx, page = open_session(browser, url)
    try:
        page.goto(url + f"/markets?ticker={T_MID}")
        live(page)
        page.evaluate("window.__noReload = true")
        bid = page.locator(f'#markets tr[data-ticker="{T_MID}"] .bid')
        before = bid.text_content()
        sql(dsn, "UPDATE feed_quotes SET ts = now(), yes_bid = 0.37, yes_ask = 0.39, "
                 "last_price = 0.38, volume = 5000 WHERE ticker = %s", (T_MID,))
        sql(dsn, "UPDATE feed_freshness SET last_message_at = now() WHERE ticker = %s", (T_MID,))
        sql(dsn, "SELECT pg_notify('rec_market_feed', %s)", (json.dumps({"tickers": [T_MID]}),))
        wait_js(page,
            f"document.querySelector('#markets tr[data-ticker=\"{T_MID}\"] .bid')"
            ".textContent === '37¢'")
        assert before != "37¢" and page.evaluate("window.__noReload") is True
        page.wait_for_selector("#market-chart canvas")
        shot(page, "markets")

        page.goto(url + "/monitor")
        live(page)
        page.evaluate("window.__noReload = true")
        row = f'table.strikes tr[data-ticker="{T_MID}"]'
        assert page.text_content(f"{row} .yes-ask") == "51¢"
        sql(dsn, "UPDATE strike_table SET yes_ask = 0.44, probability = 0.52, "
                 "computed_at = now() WHERE market_ticker = %s", (T_MID,))
        t0 = time.time()
        sql(dsn, "SELECT pg_notify('strike_table', %s)", (SERIES,))
        wait_js(page, f"document.querySelector('{row} .yes-ask').textContent "
                               "=== '44¢'")
        assert time.time() - t0 < 5 and page.evaluate("window.__noReload") is True
        assert page.text_content(f"{row} .prob") == "52.0%"
        page.wait_for_selector("#index-chart canvas")
        shot(page, "monitor")
    finally:
        ctx.close()


def test_browser_flags_a_stale_feed(stack, browser):
    url, dsn = stack["url"], stack["dsn"]
    sql(dsn, "UPDATE feed_freshness SET last_message_at = now() - interval '5 minutes' "
             "WHERE ticker = %s", (T_HIGH,))
    ctx, page = open_session(browser, url)
    try:
        page.goto(url + "/markets")
        row = page.locator(f'#markets tr[data-ticker="{T_HIGH}"]')
        assert "stale" in row.get_attribute("class")
        assert row.locator(".badge").text_content() == "STALE"
        fresh = page.locator(f'#markets tr[data-ticker="{T_MID}"]')
        assert "stale" not in fresh.get_attribute("class")
        shot(page, "markets-stale")
    finally:
        sql(dsn, "UPDATE feed_freshness SET last_message_at = now() WHERE ticker = %s",
            (T_HIGH,))
        ctx.close()


def test_browser_index_chart_shows_every_index_with_a_text_alternative(stack, browser):
    """Issue 22: the chart took the last index by name (ETH), BTC was never drawn."""
    url, dsn = stack["url"], stack["dsn"]
    sql(dsn, "INSERT INTO index_prices (index_name, ts, price, momentum) SELECT 'ETHUSD_RTI', "
             "date_trunc('second', now()) - (g || ' seconds')::interval, 3012.5, NULL "
             "FROM generate_series(1, 300, 5) AS g")
    ctx, page = open_session(browser, url)
    try:
        page.goto(url + "/monitor")
        # either index is picked in turn (BTC first): the chart is of the one picked
        page.wait_for_selector('#index-chart figure[data-index="BRTI"] canvas')
        btc = page.get_attribute('#index-chart figure[data-index="BRTI"]', "aria-label")
        assert btc.startswith("index chart, BRTI: $91,") and "momentum " in btc, btc
        assert "momentum: no data yet" not in btc
        # momentum is drawn on its own axis where there is some (BRTI), not where none (ETH)
        assert page.locator('#index-chart figure[data-index="BRTI"] .u-legend') \
            .text_content().count("momentum") == 1
        page.select_option("#chart-index", "ETHUSD_RTI")
        page.wait_for_selector('#index-chart figure[data-index="ETHUSD_RTI"] canvas')
        eth = page.get_attribute('#index-chart figure[data-index="ETHUSD_RTI"]', "aria-label")
        assert eth.startswith("index chart, ETHUSD_RTI: $3,012.50") and \
            "momentum: no data yet" in eth, eth
        assert "momentum" not in page.locator(
            '#index-chart figure[data-index="ETHUSD_RTI"] .u-legend').text_content()
        shot(page, "monitor-indices")
    finally:
        sql(dsn, "DELETE FROM index_prices WHERE index_name = 'ETHUSD_RTI'")
        ctx.close()


def test_browser_keyboard_focus_survives_a_live_redraw(stack, browser):
    """Issue 22: every redraw threw the focus back to the page body, so Tab never got past
    the strike table."""
    url, dsn = stack["url"], stack["dsn"]
    ctx, page = open_session(browser, url)
    try:
        page.goto(url + "/monitor")
        live(page)
        link = f'table.strikes tr[data-ticker="{T_LOW}"] td.buy a.btn'
        page.focus(link)
        sql(dsn, "UPDATE strike_table SET probability = 0.84, computed_at = now() "
                 "WHERE market_ticker = %s", (T_LOW,))
        sql(dsn, "SELECT pg_notify('strike_table', %s)", (SERIES,))
        wait_js(page, f"document.querySelector('table.strikes tr[data-ticker=\"{T_LOW}\"] "
                      ".prob').textContent === '84.0%'")
        focused = page.evaluate("[document.activeElement.tagName, "
                                "document.activeElement.getAttribute('href')]")
        assert focused[0] == "A" and f"market={T_LOW}&side=yes" in focused[1], focused
        page.keyboard.press("Tab")  # and Tab goes on from there
        assert page.evaluate("document.activeElement !== document.body")
    finally:
        sql(dsn, "UPDATE strike_table SET probability = 0.83 WHERE market_ticker = %s", (T_LOW,))
        ctx.close()


def test_browser_a_redraw_on_its_way_never_resets_a_form_the_trader_changed(stack, browser):
    """The auto form went back to its old values when a redraw fetched before the trader
    unchecked a box arrived after it, and the form was sent so (the manual-trade test met it
    twice in CI): a panel whose form was changed keeps the trader's values."""
    url, dsn = stack["url"], stack["dsn"]
    ctx, page = open_session(browser, url)
    held: list = []
    try:
        page.goto(url + "/monitor")
        live(page)
        box = "#auto-form input[name=auto_stop]"
        assert page.is_checked(box)
        page.route("**/fragments/auto*", lambda route: held.append(route))
        sql(dsn, "SELECT pg_notify('trading_settings', 'test')")
        for _ in range(100):  # Playwright hands the request over while it is waiting
            if held:
                break
            page.wait_for_timeout(100)
        assert held, "the auto panel's redraw never started"
        page.uncheck(box)  # while the redraw is on its way
        held[0].continue_()
        page.wait_for_timeout(1000)  # the answer arrives and is (not) drawn
        assert not page.is_checked(box)
    finally:
        ctx.close()


STALE = "document.querySelector('#stale')"


def banner(page) -> str | None:
    return page.evaluate(f"{STALE}.hidden ? null : {STALE}.textContent")


def test_browser_says_data_stale_when_the_feed_the_index_or_rec_web_goes_quiet(stack,
                                                                              browser):
    """Issue 22: with rec-market-feed stopped the asks vanished with no word why and the
    pill stayed "live"; with rec-web frozen for 60 s the pill stayed "live" too."""
    url, dsn = stack["url"], stack["dsn"]
    ctx, page = open_session(browser, url)
    try:
        with Feeds(dsn) as feeds:
            for path in ("/settings", "/monitor"):  # a page without live panels too
                page.goto(url + path)
                wait_js(page, f"window.__rec.online && window.__rec.beat && {STALE}.hidden")
                feeds.feed = False
                t0 = time.monotonic()
                until(lambda: (banner(page) or "").startswith("DATA STALE: market feed "),
                      timeout=20, what="the market feed's stale banner")
                print(f"{path}: feed quiet -> banner {time.monotonic() - t0:.1f} s "
                      f"(load {os.getloadavg()[0]:.2f})")
                assert "rec-coordinator withholds the asks after 10 s" in banner(page)
                feeds.feed = True
                wait_js(page, f"{STALE}.hidden")
            feeds.index = False
            until(lambda: "index BRTI" in (banner(page) or ""), timeout=20,
                  what="the index's stale banner")
            assert "P(yes) is not recomputed" in banner(page)
            feeds.index = True
            wait_js(page, f"{STALE}.hidden && window.__rec.online")
            shot(page, "monitor-fresh")
            # rec-web itself frozen: its stream says nothing, the page says so
            os.kill(stack["web"].proc.pid, signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                until(lambda: (banner(page) or "").startswith(
                    "DATA STALE: rec-web live stream "), timeout=20, what="the stream banner")
                print(f"rec-web frozen -> banner {time.monotonic() - t0:.1f} s")
                assert "nothing on this page is updating" in banner(page)
                assert page.evaluate("window.__rec.online") is False
                assert page.text_content("#live").startswith("offline: no word from rec-web")
                assert page.get_attribute("#stale", "aria-live") == "polite"
                shot(page, "monitor-stale")
            finally:
                os.kill(stack["web"].proc.pid, signal.SIGCONT)
            wait_js(page, f"{STALE}.hidden && window.__rec.online", timeout=20)
    finally:
        ctx.close()


def test_browser_markets_go_stale_with_the_banner_when_the_feed_goes_quiet(stack, browser):
    """Issue 22: with rec-market-feed stopped the Markets page marked its rows STALE only
    after market_feed_stale_after_sec (107-121 s); now with the banner's judgement."""
    url, dsn = stack["url"], stack["dsn"]
    row = f'#markets tr[data-ticker="{T_MID}"]'
    ctx, page = open_session(browser, url)
    try:
        with Feeds(dsn) as feeds:
            sql(dsn, "UPDATE feed_freshness SET last_message_at = now() WHERE ticker = %s",
                (T_MID,))
            page.goto(url + "/markets")
            wait_js(page, f"window.__rec.beat && {STALE}.hidden")
            assert page.text_content(f"{row} .badge") == "live"
            feeds.feed = False
            # the market's own last message is seconds old (the limit is 30 s here)
            sql(dsn, "UPDATE feed_freshness SET last_message_at = now() WHERE ticker = %s",
                (T_MID,))
            until(lambda: (banner(page) or "").startswith("DATA STALE: market feed "),
                  timeout=20, what="the market feed's stale banner")
            wait_js(page, f"document.querySelector('{row} .badge').textContent === 'STALE'")
            assert "stale" in page.get_attribute(row, "class")
            c, _ = login(url)
            body = c.get("/api/markets").json()
            assert body["feed_stale"] is True
            m = {x["ticker"]: x for x in body["data"]}
            assert m[T_MID]["stale"] is True and m[T_MID]["age_sec"] < 30
            page.reload()  # drawn by the server: the same judgement
            assert page.text_content(f"{row} .badge") == "STALE", page.evaluate(
                "[document.querySelector('#markets').dataset.feedStale, "
                "JSON.stringify(window.__rec.beat), JSON.stringify(window.__rec.stale)]")
            shot(page, "markets-feed-quiet")
            feeds.feed = True
            sql(dsn, "UPDATE feed_freshness SET last_message_at = now() WHERE ticker = %s",
                (T_MID,))
            wait_js(page, f"{STALE}.hidden && document.querySelector('{row} .badge')"
                          ".textContent === 'live'", timeout=20)
    finally:
        ctx.close()


def test_the_strike_check_says_when_the_asks_are_withheld(stack):
    """Issue 22: rec-web's health said "strikes ok" while rec-market-feed was stopped and
    rec-coordinator withheld every ask; now the check's note says so."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from psycopg_pool import AsyncConnectionPool

    from app.pricing.health import strike_table_check

    async def checked() -> str | None:
        async with AsyncConnectionPool(stack["dsn"], min_size=1, max_size=1) as pool:
            return await strike_table_check(pool, f"{SERIES}:BRTI")()

    def check() -> str | None:  # in a thread of its own: the browser's loop runs in this one
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, checked()).result()

    why = "asks withheld: rec-market-feed is ws, last reported 14s ago"
    sql(stack["dsn"], "INSERT INTO series_status (series_ticker, state, ok, error, index_name) "
                      "VALUES (%s, 'priced', true, %s, 'BRTI')", (SERIES, why))
    try:
        assert check() == f"{SERIES}: {why}"
        sql(stack["dsn"], "UPDATE series_status SET error = NULL WHERE series_ticker = %s",
            (SERIES,))
        assert check() is None
    finally:
        sql(stack["dsn"], "DELETE FROM series_status WHERE series_ticker = %s", (SERIES,))


def test_browser_kill_switch_on_every_page_and_its_banner(stack, browser):
    """Issue 22: a kill switch one click from every page (with a confirmation), and a banner on
    every page while it or auto-entry is on."""
    url, dsn = stack["url"], stack["dsn"]
    ctx, page = open_session(browser, url)
    try:
        page.goto(url + "/docs")  # a page without live panels
        live(page)
        assert page.is_hidden("#kill-on") and page.is_hidden("#auto-on")
        sql(dsn, "UPDATE trading_settings SET value = 'true' WHERE key IN ('kill_switch', "
                 "'auto_entry_enabled')")
        wait_js(page, "!document.querySelector('#kill-on').hidden && "
                      "!document.querySelector('#auto-on').hidden")
        assert page.text_content("#kill-on").startswith("KILL SWITCH ON: rec-trade-manager "
                                                        "accepts no new entry")
        shot(page, "docs-kill-switch-on")
        sql(dsn, "UPDATE trading_settings SET value = 'false' WHERE key IN ('kill_switch', "
                 "'auto_entry_enabled')")
        wait_js(page, "document.querySelector('#kill-on').hidden && "
                      "document.querySelector('#auto-on').hidden")
        # one click to the confirmation, from any page; here no rec-trade-manager answers
        page.click("#kill-switch")
        page.wait_for_url(url + "/kill-switch?next=/docs")
        assert "accepts no new entry" in page.text_content("#confirm-text")
        page.check("input[name=close_open]")
        page.click("#confirm-kill")
        assert page.text_content("#kill-error").startswith("rec-trade-manager answered 50")
    finally:
        sql(dsn, "UPDATE trading_settings SET value = 'false' WHERE key IN ('kill_switch', "
                 "'auto_entry_enabled')")
        ctx.close()


def test_browser_model_page_shows_the_calibration_and_the_reliability_plot(stack, browser):
    ctx, page = open_session(browser, stack["url"])
    try:
        page.goto(stack["url"] + "/model")
        assert page.text_content("#model-version") == "1"
        assert page.locator("#reliability-table tbody tr").count() == 10
        wait_js(page, "document.querySelector('#reliability').complete && "
                               "document.querySelector('#reliability').naturalWidth > 0")
        shot(page, "model")
    finally:
        ctx.close()


def test_browser_services_page_shows_each_unit_state(stack, browser):
    ctx, page = open_session(browser, stack["url"])
    try:
        page.goto(stack["url"] + "/services")
        assert "not running under systemd" in page.text_content("#units-unknown")
        state = page.text_content('#units tr[data-unit="rec-web.service"] .state')
        assert state.strip() == "unknown"
        assert page.locator('#checks li[data-check="database"]').get_attribute("class") == "ok"
        shot(page, "services")
    finally:
        ctx.close()


PAGES = ["/", "/monitor", f"/markets?ticker={T_MID}", "/trades", "/manual",
         f"/manual?market={T_LOW}&side=yes&limit_price=0.81", "/model", "/backtests",
         "/services", "/settings", "/docs", "/kill-switch"]
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
         "has_touch": True}
# a tap target: what is not a link inside a sentence (WCAG 2.5.5's inline exception)
SMALL_TARGETS = """[...document.querySelectorAll(
    'a, button, input:not([type=hidden]), select, summary')].filter(e => {
  if (!e.getClientRects().length) return false;
  if (e.tagName === 'A' && e.closest('p, dd, small, figcaption, code, pre, ol, .hint')
      && !e.closest('nav')) return false;
  const box = (e.type === 'checkbox' ? e.closest('label') || e : e).getBoundingClientRect();
  return box.height < 44 || box.width < 44;
}).map(e => e.outerHTML.slice(0, 80))"""
# the buy buttons, the close/cancel buttons and the P&L: on the screen, never hidden
OFF_SCREEN = """[...document.querySelectorAll(
    'td.buy .btn, button.close-trade, button.cancel-order, td.unrealised, td.pnl, ' +
    '#positions td.n')].filter(e => {
  const r = e.getBoundingClientRect();
  return !e.getClientRects().length || r.width === 0 || r.left < 0 || r.right > innerWidth;
}).map(e => e.outerHTML.slice(0, 80))"""


def test_browser_on_a_phone_a_menu_big_tap_targets_and_nothing_hidden(stack, browser):
    """Issue 22 "Missing" 9: at 390x844 a menu instead of a sideways-scrolling nav, tap
    targets of at least 44 px, and the buy buttons and P&L columns on the screen (tables
    become cards), on every page."""
    url, dsn = stack["url"], stack["dsn"]
    (trade,), = sql(dsn, "INSERT INTO trades (ticker, side, status, quantity, entry_price, "
                         "entry_cost, fees, strategy) VALUES (%s, 'yes', 'open', 4, 0.45, 1.80, "
                         "0.04, 'manual') RETURNING id", (T_MID,))
    ctx, page = open_session(browser, url, **PHONE)
    try:
        seen = {"buy": 0, "pnl": 0}
        for path in PAGES:
            page.goto(url + path)
            assert not page.is_visible("#nav a"), path  # behind the menu
            page.click("#menu-toggle")
            links = page.locator("#nav a")
            assert links.count() == len(NAV)
            for i in range(links.count()):
                box = links.nth(i).bounding_box()
                assert box["height"] >= 44 and box["x"] >= 0 and \
                    box["x"] + box["width"] <= 390, (path, i, box)
            page.click("#menu-toggle")
            assert page.evaluate(SMALL_TARGETS) == [], path
            assert page.evaluate(OFF_SCREEN) == [], path
            seen["buy"] += page.locator("td.buy .btn").count()
            seen["pnl"] += page.locator("td.unrealised, td.pnl").count()
            assert page.evaluate("document.documentElement.scrollWidth") <= 391, path
        assert seen["buy"] and seen["pnl"]  # the checks above saw some
        page.goto(url + "/monitor")
        page.click("#menu-toggle")
        page.click("#nav a[href='/trades']")
        page.wait_for_url(url + "/trades")
    finally:
        sql(dsn, "DELETE FROM trades WHERE id = %s", (trade,))
        ctx.close()


def test_browser_every_page_renders_on_a_phone_and_a_desktop(stack, browser):
    """Every page at 1280x900 and 390x844: no error, nothing wider than a phone; the
    screenshots are written to ARTIFACTS (desktop-<page>.png, phone-<page>.png)."""
    pages = PAGES
    for label, ctx_args in (("desktop", DESKTOP), ("phone", PHONE)):
        ctx, page = open_session(browser, stack["url"], **ctx_args)
        errors: list[str] = []
        page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
        # a CSP violation (an inline script or style) is a console error
        page.on("console", lambda m, errors=errors: m.type == "error" and errors.append(m.text))
        try:
            for path in pages:
                r = page.goto(stack["url"] + path)
                assert r.status == 200, path
                if path.startswith("/markets"):  # the depth bars are drawn, without inline style
                    widths = page.evaluate("[...document.querySelectorAll('.depth .bar')]"
                                           ".map(b => b.style.width)")
                    assert widths and all(w.endswith("%") for w in widths), widths
                if label == "phone":  # nothing wider than the screen but scrollable tables
                    wide = page.evaluate("document.documentElement.scrollWidth")
                    assert wide <= 390 + 1, (path, wide)
                name = path.strip("/").split("?")[0].replace("/", "-") or "overview"
                if "?" in path and path.startswith("/manual"):
                    name += "-prefilled"
                shot(page, f"{label}-{name}")
            assert errors == []
        finally:
            ctx.close()


def test_browser_manual_trade_confirmation_and_the_managers_answer(stack, browser):
    """Open a trade through the form: a confirmation step, then rec-trade-manager's answer
    shown as it is (here: the manager is not running, and the page says so)."""
    ctx, page = open_session(browser, stack["url"])
    try:
        page.goto(stack["url"] + f"/manual?market={T_LOW}&side=yes&limit_price=0.81")
        page.fill("input[name=count]", "2")
        page.click("#review-open")
        text = page.text_content("#confirm-text")  # the market's name, then its ticker
        assert "Buy 2 YES of BTC above $90,999.99 at " in text and T_LOW in text, text
        shot(page, "manual-confirm")
        page.click("#confirm-open")
        text = page.text_content("#result")
        assert "rec-trade-manager" in text
        shot(page, "manual-result")
    finally:
        ctx.close()


def test_browser_opens_and_closes_a_manual_trade_against_the_simulator(
        rec_home_db, start_service, browser):
    """The whole path: the simulator, rec-market-feed (markets and quotes), rec-account-sync,
    rec-trade-manager and rec-trade-executor as real processes; the trader opens a trade
    from the Markets page through the confirmation step and closes it from the open-trades
    panel. The positions panel follows both without a reload."""
    from tests.conftest import start_exchange_sim

    home = rec_home_db
    for key in ("TRADE_MANAGER", "TRADE_EXECUTOR", "TRADE_SUPERVISOR", "AUTO_ENTRY"):
        home.env[f"REC_{key}_PORT"] = str(free_port())
    home.env.update(REC_MARKET_FEED_SERIES="KXBTCD", REC_MARKET_FEED_READY_TIMEOUT_SEC="30",
                    REC_LOG_LEVEL="info", REC_SIM_MAINTENANCE_WINDOW="")  # always trading
    assert home.rec("db", "migrate").returncode == 0
    start_exchange_sim(home, start_service)
    names = ("market-feed", "account-sync", "trade-executor", "trade-manager", "web")
    procs = {n: start_service(home, n) for n in names}
    for n, p in procs.items():
        try:
            p.notify.wait_for("READY", "1", timeout=40)
        except TimeoutError:
            raise AssertionError(f"{n} not READY:\n{p.output[-3000:]}") from None
    url = f"http://127.0.0.1:{home.env['REC_WEB_PORT']}"
    c, csrf = login(url)
    markets = until(lambda: [
        m for m in c.get("/api/markets").json()["data"]
        if m["yes_ask"] and 0.15 <= m["yes_ask"] <= 0.85 and not m["stale"]
        and m["status"] in ("active", "open")], timeout=20,
        what="a market quoted between 15 and 85 cents")
    ticker = markets[0]["ticker"]
    ask = round(min(0.95, markets[0]["yes_ask"] + 0.05), 2)  # room for the quote to move

    ctx, page = open_session(browser, url)
    try:
        page.goto(url + "/markets")
        page.click(f'#markets tr[data-ticker="{ticker}"] a')
        page.wait_for_selector("#market-chart canvas")
        page.goto(url + f"/manual?market={ticker}&side=yes&limit_price={ask}")
        page.fill("input[name=count]", "2")
        page.click("#review-open")
        text = page.text_content("#confirm-text")  # the market's name, then its ticker
        assert "Buy 2 YES of BTC " in text and ticker in text, text
        page.click("#confirm-open")
        status = page.text_content("#result-status")
        assert status in ("pending", "submitted", "open"), page.text_content("#result")
        trade_id = int(page.text_content("#result").split("trade #")[1].split(":")[0])
        # the open-trades panel follows the trade (NOTIFY trades) until it is open
        live(page)
        page.wait_for_selector(f'#open-trades tr[data-trade="{trade_id}"] button.close-trade',
                               timeout=30_000)
        shot(page, "manual-opened")
        # the positions on the Overview follow the fill without a reload
        page.goto(url + "/")
        live(page)
        page.wait_for_selector(f'#positions tr[data-ticker="{ticker}"]', timeout=15_000)
        assert page.text_content(f'#positions tr[data-ticker="{ticker}"] .count') == "2"
        # close it from the open-trades panel, through the confirmation step
        page.click(f'#open-trades tr[data-trade="{trade_id}"] button.close-trade')
        assert f"Close trade #{trade_id}" in page.text_content("#confirm-text")
        page.click("#confirm-close")
        page.wait_for_selector("#result")
        text = page.text_content("#result")
        assert "answered 200" in text or "answered 201" in text, text
        shot(page, "manual-closed")
        trade = c.get("/api/trades", params={"market": ticker}).json()["data"][0]
        assert trade["id"] == trade_id
        until(lambda: c.get("/api/trades", params={"market": ticker}).json()["data"][0]
              ["status"] == "closed", timeout=15, what="the trade to close")
        kinds = [e["kind"] for e in c.get("/api/trades", params={"market": ticker})
                 .json()["data"][0]["events"]]
        assert kinds, "no trade events"
        page.goto(url + f"/trades?market={ticker}")
        assert page.locator(f'#trades tr[data-trade="{trade_id}"] .status-closed').count() == 1
        shot(page, "trades")

        # a resting entry, cancelled from the Manual trading page through the confirmation
        r = c.put("/api/trading-settings", json={"open_time_in_force": "good_till_canceled"},
                  headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
        r = c.post("/api/trades/open", json={"market": ticker, "side": "yes", "count": 1,
                                             "limit_price": 0.02},
                   headers={"X-CSRF-Token": csrf}, timeout=40)  # rec-web waits up to 35 s
        resting = r.json()["body"]["trade"]
        assert resting["status"] == "submitted", r.text
        page.goto(url + "/manual")
        live(page)
        order = f'#resting-orders tr[data-trade="{resting["id"]}"]'
        page.wait_for_selector(f"{order} button.cancel-order", timeout=15_000)
        assert page.text_content(f"{order} .filled") == "0 of 1"
        assert page.text_content(f"{order} .remaining") == "1"
        shot(page, "manual-resting")
        page.click(f"{order} button.cancel-order")
        assert f"trade #{resting['id']}" in page.text_content("#confirm-text")
        page.click("#confirm-cancel")
        assert "answered 202" in page.text_content("#result"), page.text_content("#result")
        wait_js(page, "document.querySelector('#result-status').textContent === 'canceled'",
                timeout=20)
        page.wait_for_selector(order, state="detached")
        c.put("/api/trading-settings", json={"open_time_in_force": "fill_or_kill"},
              headers={"X-CSRF-Token": csrf})

        # auto-entry / auto-stop and the size go through the manager, which audits them
        page.goto(url + "/monitor")
        page.uncheck("#auto-form input[name=auto_stop]")
        page.fill("#auto-form input[name=auto_entry_position_size]", "3")
        with page.expect_navigation():  # the page is /monitor already: wait for the new one
            page.click("#auto-form button")
        assert not page.is_checked("#auto-form input[name=auto_stop]"), (
            page.text_content("main") or "")[:3000]
        assert page.input_value("#auto-form input[name=auto_entry_position_size]") == "3"
        audit = sql(home.db.dsn, "SELECT key, new_value::text, changed_by FROM "
                                 "trading_settings_audit ORDER BY id")
        assert ("auto_stop", "false", "web:admin") in audit
        assert ("auto_entry_position_size", "3", "web:admin") in audit
        shot(page, "monitor-settings")

        # the kill switch from any page, through its confirmation, and off again
        page.goto(url + "/trades")
        page.click("#kill-switch")
        page.click("#confirm-kill")
        page.wait_for_url(url + "/trades")
        page.wait_for_selector("#kill-on", state="visible")
        audit = sql(home.db.dsn, "SELECT key, new_value::text, changed_by FROM "
                                 "trading_settings_audit ORDER BY id")
        assert ("kill_switch", "true", "web:admin") in audit
        shot(page, "trades-kill-switch-on")
        page.click("#kill-on a")
        assert "entries are accepted again" in page.text_content("#confirm-text")
        page.click("#confirm-kill")
        page.wait_for_url(url + "/trades")
        page.wait_for_selector("#kill-on", state="hidden")
        assert ("kill_switch", "false", "web:admin") in sql(
            home.db.dsn, "SELECT key, new_value::text, changed_by FROM trading_settings_audit")
    finally:
        ctx.close()


def test_every_template_and_static_file_is_package_data():
    """The targets install the package (wheel): a template or a vendored file left out of
    package-data would be a 500 there and nowhere in these tests."""
    import glob
    import tomllib

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["app"]
    packaged = {p for pat in patterns
                for p in glob.glob(pat, root_dir=REPO / "app", recursive=True)}
    files = {str(p.relative_to(REPO / "app")) for d in ("web/templates", "web/static")
             for p in (REPO / "app" / d).rglob("*") if p.is_file()}
    assert files - packaged == set()


def test_services_page_lists_recorded_unit_failures(stack):
    """What `rec unit-failed` records (ExecStopPost=, OnFailure=) is on the Services page."""
    c, _ = login(stack["url"])
    page = c.get("/services").text
    assert 'id="failures-none"' in page or 'id="failures"' in page
    sql(stack["dsn"], "INSERT INTO unit_failures (unit, result, exit_code, exit_status, "
        "failures_in_a_row, gave_up) VALUES ('rec-web.service', 'exit-code', 'exited', '78', "
        "1, true)")
    page = c.get("/services").text
    assert 'id="failures"' in page and "rec-web.service" in page
    assert "no: systemd gave up" in page and "exited 78" in page
