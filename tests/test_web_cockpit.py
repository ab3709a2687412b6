"""The trader's cockpit (issue 22, what was left): the trading settings edited on the Settings
page through rec-trade-manager with its audit trail, human market names, the index chart, the
ticket beside the market, and an accessibility pass, each driven in real headless Chromium
against real processes (the simulator, rec-trade-manager, rec-web) and a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from testkit.net import free_port
from testkit.web import (
    AXE_FAILS,
    SERIES,
    T_LOW,
    T_MID,
    axe_violations,
    seed,
    wait_js,
)
from tests import test_web_dashboard
from tests.conftest import module_home, register_sim_key, running
from tests.test_web_dashboard import (
    DESKTOP,
    PAGES,
    PHONE,
    login,
    open_session,
    seed_history,
    shot,
    sql,
)

browser = test_web_dashboard.browser  # the same headless Chromium fixture


@pytest.fixture(scope="module")
def cockpit(tmp_path_factory, pg):
    """The dashboard's data, the simulator, rec-trade-manager and rec-web."""
    with module_home(tmp_path_factory, pg, "cockpit", REC_TRADE_MANAGER_PORT=str(free_port()),
                     REC_SIM_MAINTENANCE_WINDOW="",
                     REC_WEB_FIRST_VALUE_GRACE_SEC="3600") as (home, dsn):
        seed(dsn)
        seed_history(dsn)
        register_sim_key(home)
        with running(home, "exchange-sim", "trade-manager", "web") as procs:
            yield {"url": f"http://127.0.0.1:{home.env['REC_WEB_PORT']}", "dsn": dsn,
                   "home": home, "web": procs[-1]}


def setting(dsn: str, key: str):
    return sql(dsn, "SELECT value FROM trading_settings WHERE key = %s", (key,))[0][0]


# ---- 1. editable trading settings --------------------------------------------------------

def test_browser_trading_settings_are_edited_with_ranges_a_confirmation_and_an_audit(
        cockpit, browser):
    """Issue 22 "Missing" 8: risk limits, exit rules, auto entry and sizes edited on the
    Settings page: a value out of its range (rec-trade-manager's table) is refused naming the
    range, a change is confirmed as old -> new, goes through rec-trade-manager, and the audit
    trail (who, when, old -> new) is on the page; the environment is under "Advanced"."""
    url, dsn = cockpit["url"], cockpit["dsn"]
    ctx, page = open_session(browser, url)
    try:
        page.goto(url + "/settings")
        for group in ("risk", "exit", "auto", "sizes"):
            assert page.locator(f"#group-{group} label.setting").count() >= 2, group
        assert not page.is_visible("#settings tbody tr")  # the environment: collapsed
        page.click("#advanced summary")
        assert page.is_visible('#settings tr[data-key="market_feed_stale_after_sec"]')
        assert page.text_content("#audit-none")

        trade = "#settings-form input[name=max_contracts_per_trade]"
        assert page.input_value(trade) == "25"
        page.fill(trade, "200000")  # past the table's 100,000
        page.click("#review-settings")
        err = page.text_content('#settings-errors li[data-field="max_contracts_per_trade"]')
        assert "a whole number from 1 to 100000 contracts" in err, err
        assert setting(dsn, "max_contracts_per_trade") == 25  # nothing was sent
        assert page.input_value(trade) == "200000"  # what was typed stays to be corrected

        page.fill(trade, "30")
        page.fill("#settings-form input[name=exit_probability_threshold]", "0.3")
        page.uncheck("#settings-form input[name=auto_stop]")
        page.fill("#settings-form input[name=auto_entry_position_size]", "2")
        page.click("#review-settings")
        changes = page.locator("#confirm-changes li")
        assert sorted(changes.evaluate_all("l => l.map(e => e.dataset.key)")) == [
            "auto_entry_position_size", "auto_stop", "exit_probability_threshold",
            "max_contracts_per_trade"]
        assert page.text_content('#confirm-changes li[data-key="max_contracts_per_trade"]') \
            == "max_contracts_per_trade: 25 → 30"
        assert setting(dsn, "max_contracts_per_trade") == 25  # not before the confirmation
        shot(page, "settings-confirm")
        page.click("#confirm-settings")
        page.wait_for_selector("#settings-saved")
        assert setting(dsn, "max_contracts_per_trade") == 30
        assert setting(dsn, "exit_probability_threshold") == 0.3
        assert setting(dsn, "auto_stop") is False
        row = '#audit tr[data-key="max_contracts_per_trade"]'
        assert page.text_content(f"{row} .who") == "web:admin"
        assert page.text_content(f"{row} .change") == "25 → 30"
        assert page.text_content('#audit tr[data-key="auto_stop"] .change') == "true → false"
        assert page.input_value(trade) == "30" and \
            not page.is_checked("#settings-form input[name=auto_stop]")
        shot(page, "settings-saved")

        # a change made elsewhere between the review and the confirmation is not undone
        page.fill(trade, "40")
        page.click("#review-settings")
        c, csrf = login(url)
        assert c.put("/api/trading-settings", json={"max_contracts_per_trade": 35},
                     headers={"X-CSRF-Token": csrf}).status_code == 200
        page.click("#confirm-settings")
        err = page.text_content('#settings-errors li[data-field="max_contracts_per_trade"]')
        assert "changed meanwhile to 35" in err, err
        assert setting(dsn, "max_contracts_per_trade") == 35
        assert page.input_value(trade) == "35"  # the form shows it as it is now
    finally:
        c, csrf = login(url)
        c.put("/api/trading-settings", json={"max_contracts_per_trade": 25,
                                             "exit_probability_threshold": 0.4,
                                             "auto_stop": True, "auto_entry_position_size": 1},
              headers={"X-CSRF-Token": csrf})
        ctx.close()


# ---- 2. human market names ---------------------------------------------------------------

ET = ZoneInfo("America/New_York")
T_RANGE = "KXBTC-26NOV2614-B91000"
ETH_EVENT = "KXETHD-26NOV2614"
T_ETH = f"{ETH_EVENT}-T3049.99"


def et_words(close: dt.datetime) -> str:
    """"6 PM ET" (and the day when it is not today in New York), written out here."""
    et = close.astimezone(ET)
    words = f"{(et.hour % 12) or 12} {'AM' if et.hour < 12 else 'PM'} ET"
    if et.date() != dt.datetime.now(ET).date():
        words += " " + et.strftime("%a %b ") + str(et.day)
    return words


@pytest.fixture(scope="module")
def named_markets(cockpit):
    """A range market of BTC and a threshold market of ETH beside the seeded BTC event, all
    closing on the hour (two hours from now), and a trade closed at 01:00 UTC today: the
    evening before in New York."""
    dsn = cockpit["dsn"]
    sql(dsn, "UPDATE markets SET close_time = date_trunc('hour', now()) + interval '2 hours'")
    sql(dsn, """
        INSERT INTO markets (ticker, event_ticker, series_ticker, title, status, strike_type,
                             floor_strike, cap_strike, close_time, followed)
        VALUES (%s, 'KXBTC-26NOV2614', 'KXBTC', 'Bitcoin range', 'active', 'between', 90750,
                91249.99, date_trunc('hour', now()) + interval '2 hours', true),
               (%s, %s, 'KXETHD', 'Ethereum above', 'active', 'greater', 3049.99, NULL,
                date_trunc('hour', now()) + interval '3 hours', true)""",
        (T_RANGE, T_ETH, ETH_EVENT))
    sql(dsn, "INSERT INTO feed_freshness (ticker, last_message_at, source, state) VALUES "
             "(%s, now(), 'ws', 'live'), (%s, now(), 'ws', 'live')", (T_RANGE, T_ETH))
    (trade,), = sql(dsn, """
        INSERT INTO trades (ticker, side, status, quantity, entry_price, exit_price, entry_cost,
                            exit_proceeds, fees, fees_cents, pnl_cents, strategy, entry_method,
                            close_method, opened_at, closed_at)
        VALUES (%s, 'yes', 'closed', 2, 0.40, 0.55, 0.80, 1.10, 0.04, 4, 26, 'manual',
                'manual', 'manual', date_trunc('day', now() AT TIME ZONE 'UTC')
                AT TIME ZONE 'UTC', date_trunc('day', now() AT TIME ZONE 'UTC')
                AT TIME ZONE 'UTC' + interval '1 hour') RETURNING id""", (T_LOW,))
    close, closed = sql(dsn, "SELECT close_time, closed_at FROM markets, trades "
                             "WHERE markets.ticker = %s AND trades.id = %s", (T_LOW, trade))[0]
    return {"close": close, "trade": trade, "closed_at": closed}


def test_browser_markets_have_human_names_grouped_by_event_with_a_countdown_and_search(
        cockpit, named_markets, browser):
    """Issue 22 "Missing" 3: "BTC above $90,999.99 at 6 PM ET" from the market's own fields,
    grouped by event (BTC apart from ETH, range apart from threshold), the close in New York
    time with a live countdown, and a search that filters as the trader types; the name leads
    wherever a market is shown (Markets, Trade monitor, the ticket, Trades), the ticker
    after it; the daily P&L by day in New York."""
    url = cockpit["url"]
    when = et_words(named_markets["close"])
    low = f"BTC above $90,999.99 at {when}"
    ctx, page = open_session(browser, url)
    try:
        page.goto(url + "/markets")
        groups = page.locator("#markets tbody.event")
        assert groups.evaluate_all("g => g.map(x => x.dataset.asset)") == ["BTC", "BTC", "ETH"]
        heads = page.locator("#markets tbody.event .event-name").all_text_contents()
        assert heads[:2] == [f"BTC at {when}: above a strike", f"BTC at {when}: in a range"] \
            or heads[:2] == [f"BTC at {when}: in a range", f"BTC at {when}: above a strike"]
        row = f'#markets tr[data-ticker="{T_LOW}"]'
        assert page.text_content(f"{row} .mname") == low
        assert page.text_content(f"{row} small.ticker") == T_LOW
        assert page.text_content(f'#markets tr[data-ticker="{T_RANGE}"] .mname') == \
            f"BTC between $90,750 and $91,249.99 at {when}"
        eth_when = et_words(named_markets["close"] + dt.timedelta(hours=1))
        assert page.text_content(f'#markets tr[data-ticker="{T_ETH}"] .mname') == \
            f"ETH above $3,049.99 at {eth_when}"
        # the countdown runs: "6 PM ET · closes in 1:59:58", a second later another
        clock = page.locator(f"{row} .countdown")
        first = clock.text_content()
        assert first.startswith(f"{when} · closes in "), first
        # the page's own timer moves it
        wait_js(page, f"document.querySelector('{row} .countdown').textContent !== '{first}'")
        # search as the trader types
        visible = "[...document.querySelectorAll('#markets tr[data-ticker]')]" \
                  ".filter(r => r.getClientRects().length).map(r => r.dataset.ticker)"
        page.type("#market-search", "eth")
        assert page.evaluate(visible) == [T_ETH]
        page.fill("#market-search", "")
        page.type("#market-search", "between 90,750")
        assert page.evaluate(visible) == [T_RANGE]
        page.fill("#market-search", "doge")
        page.dispatch_event("#market-search", "input")
        assert page.evaluate(visible) == [] and page.is_visible("#no-match")
        page.fill("#market-search", "")
        page.dispatch_event("#market-search", "input")
        assert len(page.evaluate(visible)) == 5
        shot(page, "markets-named")

        # the name leads everywhere a market is shown; its price chart's times are in ET
        page.click(f"{row} a")
        assert page.text_content("h2 .mname") == low
        wait_js(page, "(document.querySelector('#market-chart').getAttribute('aria-label') "
                      "|| '').includes(' ET yes bid')")
        page.goto(url + "/monitor")
        cell = f'table.strikes tr[data-ticker="{T_LOW}"] td.market'
        assert page.text_content(f"{cell} .mname") == low
        assert page.text_content(f"{cell} small.ticker") == T_LOW
        assert page.locator("#strikes-title, .card h3").first.text_content().startswith(
            f"BTC at {when}: above a strike")
        page.goto(url + f"/manual?market={T_LOW}&side=yes&limit_price=0.81")
        assert page.text_content("#market-card h2 .mname") == low
        page.click("#review-open")
        assert f"Buy 1 YES of {low} {T_LOW}" in " ".join(
            page.text_content("#confirm-text").split())
        page.goto(url + "/trades")
        trow = f'#trades tr[data-trade="{named_markets["trade"]}"]'
        assert page.text_content(f"{trow} .mname") == low
        # the daily P&L by the day in New York: 01:00 UTC is the evening before there
        et_day = named_markets["closed_at"].astimezone(ET).date().isoformat()
        utc_day = named_markets["closed_at"].astimezone(dt.UTC).date().isoformat()
        assert et_day != utc_day
        assert page.locator(f'#daily-pnl tr[data-day="{et_day}"]').count() == 1
        assert page.locator(f'#daily-pnl tr[data-day="{utc_day}"]').count() == 0
        shot(page, "trades-named")
    finally:
        ctx.close()


# ---- 4. the ticket beside the market -------------------------------------------------------

def test_browser_the_ticket_shows_the_market_beside_it_quotes_depth_p_and_edge(cockpit,
                                                                              browser):
    """Issue 22 "Missing" 4: beside the order ticket, the market's bid/ask/last, the top of
    its book, P(yes) and the model's edge on each side, live, with the fee, the worst case,
    the order type and the limits the ticket already states."""
    url, dsn = cockpit["url"], cockpit["dsn"]
    for label, args in (("desktop", DESKTOP), ("phone", PHONE)):
        ctx, page = open_session(browser, url, **args)
        try:
            page.goto(url + f"/manual?market={T_MID}&side=yes&limit_price=0.52&count=2")
            card = "#market-card"
            # the book (newer than the last tick) has yes 50¢ on top and no 48¢: ask 52¢
            assert page.text_content(f"{card} .q-bid") == "50¢"
            assert page.text_content(f"{card} .q-ask") == "52¢"
            assert page.text_content(f"{card} .q-no-ask") == "50¢"
            assert page.text_content(f"{card} .q-last") == "51¢"
            assert page.text_content(f"{card} .q-prob") == "46.0%"
            # P(yes) 46% against a 52¢ ask; P(no) 54% against 50¢
            assert page.text_content(f"{card} .q-edge-yes") == "-6.0¢"
            assert page.text_content(f"{card} .q-edge-no") == "+4.0¢"
            depth = page.locator(f"{card} .book-yes tbody tr")
            assert depth.all_text_contents() == ["50¢120", "49¢300"]
            assert page.locator(f"{card} .book-no tbody tr").all_text_contents() == \
                ["48¢200", "47¢50"]
            # and what the ticket stated before stays beside it
            for part in ("#order-type", "#worst-case", "#risk-limits"):
                assert page.is_visible(part), part
            # 2 at 52¢ is $1.04 and Kalshi's fee $0.04: $1.08 at worst, $2 - $1.08 at best
            assert "you pay at most $1.08" in page.text_content("#worst-case")
            assert page.text_content("#best-case").startswith("the most you can win is $0.92")
            if label == "desktop":  # beside it: side by side on a desk
                form, beside = (page.locator(x).bounding_box() for x in ("#manual", card))
                assert beside["x"] > form["x"] + form["width"] - 1, (form, beside)
                # live: the strike table moves, the card follows without a reload
                page.evaluate("window.__noReload = true")
                wait_js(page, "window.__rec && window.__rec.online === true")
                sql(dsn, "UPDATE strike_table SET probability = 0.60, computed_at = now() "
                         "WHERE market_ticker = %s", (T_MID,))
                sql(dsn, "SELECT pg_notify('strike_table', %s)", (SERIES,))
                wait_js(page, f"document.querySelector('{card} .q-edge-yes').textContent "
                              "=== '+8.0¢'")
                assert page.evaluate("window.__noReload") is True
            shot(page, f"{label}-manual-ticket")
        finally:
            sql(dsn, "UPDATE strike_table SET probability = 0.46 WHERE market_ticker = %s",
                (T_MID,))
            ctx.close()


# ---- 3. the index chart --------------------------------------------------------------------

PLOT = "window.__rec.plots[{name!r}]"


def plotted(page, name: str) -> dict:
    """What uPlot holds for ``name``: its x and price columns, the x scale, what it drew."""
    return page.evaluate(f"""(() => {{ const u = {PLOT.format(name=name)};
        return u ? {{ t: u.data[0], price: u.data[1], min: u.scales.x.min,
                     max: u.scales.x.max, drawn: u._drawn || null,
                     axes: u.axes.map(a => a.label) }} : null; }})()""")


def test_browser_index_chart_picks_index_and_range_zooms_and_draws_strikes_and_window(
        cockpit, browser):
    """Issue 22 "Missing" 7: pick the index and the time range (15 m / 1 h / 6 h / 24 h), the
    plotted data follows; drag to zoom, double-click to reset; dollars and ET on the axes; the
    strikes of the open series and the settlement window before the close drawn on it."""
    url, dsn = cockpit["url"], cockpit["dsn"]
    # BRTI 50 min back (every 10 s, older than the seeded 10 minutes); ETH for the last 5 min
    sql(dsn, "INSERT INTO index_prices (index_name, ts, price) SELECT 'BRTI', "
             "date_trunc('second', now()) - (g || ' seconds')::interval, 91150 "
             "FROM generate_series(610, 3000, 10) AS g ON CONFLICT DO NOTHING")
    sql(dsn, "INSERT INTO index_prices (index_name, ts, price) SELECT 'ETHUSD_RTI', "
             "date_trunc('second', now()) - (g || ' seconds')::interval, 3012.5 "
             "FROM generate_series(1, 300, 5) AS g ON CONFLICT DO NOTHING")
    (close,), = sql(dsn, "SELECT extract(epoch FROM max(close_time))::float8 FROM strike_table")
    ctx, page = open_session(browser, url)
    try:
        page.goto(url + "/monitor")
        page.wait_for_selector('#index-chart figure[data-index="BRTI"] canvas')
        wait_js(page, f"{PLOT.format(name='BRTI')} && {PLOT.format(name='BRTI')}._drawn")
        hour = plotted(page, "BRTI")
        assert hour["axes"] == ["time (ET)", "BRTI ($)", "momentum %"]
        # the strikes of the open series, each drawn across the chart
        assert sorted(hour["drawn"]["strikes"]) == [90999.99, 91249.99, 91499.99]
        # the close is 40 minutes ahead: the x axis runs on to it, its window shaded
        assert hour["t"][-1] == close and hour["price"][-1] is None
        assert hour["drawn"]["window"] == [close - 60, close]
        assert min(hour["t"]) < close - 3000 - 2400 + 60  # data from 50 minutes ago

        page.click('#chart-range button[data-minutes="15"]')
        wait_js(page, f"{PLOT.format(name='BRTI')}.data[0][0] > {hour['t'][0] + 1800}")
        quarter = plotted(page, "BRTI")
        assert len(quarter["t"]) < len(hour["t"])
        assert max(quarter["t"]) < close and quarter["drawn"]["window"] is None  # beyond reach
        assert page.get_attribute('#chart-range button[data-minutes="15"]',
                                  "aria-pressed") == "true"
        page.click('#chart-range button[data-minutes="1440"]')
        wait_js(page, f"{PLOT.format(name='BRTI')}.data[0].length !== {len(quarter['t'])}")

        # zoom: drag across the middle of the chart; double-click resets
        page.click('#chart-range button[data-minutes="60"]')
        wait_js(page, f"{PLOT.format(name='BRTI')}.data[0].length === {len(hour['t'])}")
        full = plotted(page, "BRTI")
        box = page.locator('#index-chart figure[data-index="BRTI"] .u-over').bounding_box()
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + box["width"] * 0.3, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
        page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=5)
        page.mouse.up()
        zoomed = plotted(page, "BRTI")
        assert full["min"] < zoomed["min"] < zoomed["max"] < full["max"], (full, zoomed)
        shot(page, "monitor-chart-zoomed")
        page.dblclick('#index-chart figure[data-index="BRTI"] .u-over')
        wait_js(page, f"{PLOT.format(name='BRTI')}.scales.x.min === {full['min']}")

        # the other index: its own prices, and no strikes (none of its series is priced)
        page.select_option("#chart-index", "ETHUSD_RTI")
        wait_js(page, f"{PLOT.format(name='ETHUSD_RTI')} && "
                      f"{PLOT.format(name='ETHUSD_RTI')}._drawn")
        eth = plotted(page, "ETHUSD_RTI")
        assert set(eth["price"]) == {3012.5} and eth["drawn"]["strikes"] == []
        assert page.locator("#index-chart figure").count() == 1
        shot(page, "monitor-chart-eth")
    finally:
        sql(dsn, "DELETE FROM index_prices WHERE index_name = 'ETHUSD_RTI' OR price = 91150")
        ctx.close()


# ---- 5. accessibility: axe-core on every page ----------------------------------------------

def test_browser_axe_finds_nothing_serious_on_any_page(cockpit, browser):
    """Issue 22: an accessibility pass with axe-core (testkit/vendor/axe-core) on every page,
    desktop and phone: no serious or critical violation."""
    url = cockpit["url"]
    found, lesser = {}, {}
    for label, args in (("desktop", DESKTOP), ("phone", PHONE)):
        ctx = browser.new_context(**args)  # the login page first, then every page behind it
        try:
            page = ctx.new_page()
            page.goto(url + "/login")
            if bad := axe_violations(page):
                found[f"{label} /login"] = bad
        finally:
            ctx.close()
        ctx, page = open_session(browser, url, **args)
        try:
            for path in [*PAGES, "/settings?advanced"]:
                page.goto(url + path)
                if path.startswith("/monitor"):
                    page.wait_for_selector("#index-chart figure canvas")
                if path.endswith("?advanced"):
                    page.click("#advanced summary")
                every = axe_violations(page, ("critical", "serious", "moderate", "minor"))
                if bad := [v for v in every if v["impact"] in AXE_FAILS]:
                    found[f"{label} {path}"] = bad
                for v in every:
                    lesser[v["id"]] = lesser.get(v["id"], 0) + 1
        finally:
            ctx.close()
    print(f"axe-core: violations by rule (pages): {lesser}")
    assert found == {}, json.dumps(found, indent=1)
