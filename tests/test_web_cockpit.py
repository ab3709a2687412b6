"""The trader's cockpit (issue 22, what was left): the trading settings edited on the Settings
page through rec-trade-manager with its audit trail, human market names, the index chart, the
ticket beside the market, and an accessibility pass, each driven in real headless Chromium
against real processes (the simulator, rec-trade-manager, rec-web) and a real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from testkit.net import free_port
from testkit.web import EVENT, SEED, SERIES, T_HIGH, T_LOW, T_MID
from tests import test_web_dashboard
from tests.conftest import module_home, register_sim_key, running
from tests.test_web_dashboard import (
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
        with psycopg.connect(dsn, autocommit=True,
                             cursor_factory=psycopg.ClientCursor) as conn:
            conn.execute(SEED, {"low": T_LOW, "mid": T_MID, "high": T_HIGH, "event": EVENT,
                                "series": SERIES})
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
    finally:
        c, csrf = login(url)
        c.put("/api/trading-settings", json={"max_contracts_per_trade": 25,
                                             "exit_probability_threshold": 0.4,
                                             "auto_stop": True, "auto_entry_position_size": 1},
              headers={"X-CSRF-Token": csrf})
        ctx.close()
