"""rec-web as a service: database pool, live-update listener, first health round, then HTTP
bound, then READY."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from app.config import ConfigError
from app.db.pool import conninfo, open_pool, ping
from app.exchange_client import endpoints
from app.ledger.health import ledger_check
from app.pricing.health import index_check, strike_table_check
from app.runtime.http import HttpService
from app.runtime.service import Phase
from app.services import REGISTRY, enabled, expected_units, metric_files
from app.web import auth, data
from app.web.app import create_app, forwarding
from app.web.health import ExchangeState, HealthMonitor, exchange_check
from app.web.live import Hub, Listener
from app.web.state import WebState


class WebService(HttpService):
    pool = None
    client: httpx.AsyncClient | None = None
    monitor: HealthMonitor | None = None
    listener: Listener | None = None
    hub: Hub | None = None

    async def start(self, phase: Phase) -> None:
        s = self.settings
        if s.web_password_hash is not None:
            try:
                auth.parse_hash(s.web_password_hash.get_secret_value())
            except auth.BadHash as exc:
                raise ConfigError(str(exc)) from None
        self.pool = await phase("connect to database", open_pool(s, "rec-web"))
        self.client = httpx.AsyncClient(timeout=3.0)
        self.hub = Hub()
        self.listener = Listener(conninfo(s, "rec-web-listen"), self.hub)
        await phase("listen for live updates", self.listener.start(s.db_connect_timeout_sec))
        stale_after = float(s.market_feed_stale_after_sec)
        account_after = 2 * float(s.account_sync_reconcile_interval_sec)
        exchange = ExchangeState()
        checks = {"database": lambda: ping(self.pool),
                  "feed": feed_check(self.pool, stale_after, exchange),
                  "account": account_check(self.pool, account_after),
                  "exchange": exchange_check(endpoints(s).rest_base, self.client, exchange)}
        checks |= pricing_checks(self.pool, s, enabled_names(s))
        checks |= ledger_checks(self.pool, s, enabled_names(s))
        units = expected_units(s.account_mode.value)
        self.monitor = HealthMonitor(checks, units,
                                     depends={n: "database" for n in checks
                                              if n not in ("database", "exchange")})
        self.monitor.on_change = lambda: self.hub.publish("units", "")
        await phase("first health check", self.monitor.start())
        state = WebState(self.monitor, settings=s, pool=self.pool, hub=self.hub,
                         sessions=auth.Sessions(s.web_session_ttl_sec),
                         limiter=auth.LoginLimiter(s.web_login_max_failures,
                                                   s.web_login_window_sec),
                         client=self.client, expected_units=units,
                         metric_names=metric_files(),
                         descriptions={"rec-migrate.service": "database migrations (oneshot)"}
                         | {d.unit: d.description
                            for d in enabled(s.account_mode.value, REGISTRY)},
                         ready_checks=[n for n in checks if n not in ("exchange", "ledger")])
        await self.serve_http(phase, create_app(state), s.web_port, **forwarding(s))

    async def stop(self) -> None:
        if self.hub is not None:
            self.hub.close()  # end the event streams first: the server waits for them
        await super().stop()
        if self.listener is not None:
            await self.listener.stop()
        if self.monitor is not None:
            await self.monitor.stop()
        if self.client is not None:
            await self.client.aclose()
        if self.pool is not None:
            await self.pool.close()


def enabled_names(s) -> set[str]:
    return {d.name for d in enabled(s.account_mode.value, REGISTRY)}


def first_value_grace(s) -> Callable[[], bool]:
    """True for ``web_first_value_grace_sec`` from now (rec-web's start): a table with no row
    yet is only "waiting" meanwhile."""
    started = time.monotonic()
    return lambda: time.monotonic() - started < s.web_first_value_grace_sec


def ledger_checks(pool, s, services: set[str]) -> dict:
    """rec-trade-manager's last reconciliation (when this host runs it), for /api/health."""
    if "trade-manager" not in services:
        return {}
    return {"ledger": ledger_check(pool, s.ledger_reconcile_interval_sec,
                                   first_value_grace(s))}


def pricing_checks(pool, s, services: set[str]) -> dict:
    """The settlement index (when this host runs rec-price-feed) and the strike tables (when
    it runs rec-coordinator), for /readyz and /api/health. A table with no row yet is only
    "waiting" for ``web_first_value_grace_sec`` after rec-web starts."""
    waiting = first_value_grace(s)
    checks = {}
    if "price-feed" in services:
        # the price feed marks an index stale after price_feed_stale_after_sec; the slack
        # covers the health monitor's own period
        checks["index"] = index_check(pool, s.coordinator_series,
                                      s.price_feed_stale_after_sec + 5, waiting)
    if "coordinator" in services:
        checks["strikes"] = strike_table_check(
            pool, s.coordinator_series, max(10.0, 10 * s.coordinator_interval_sec), waiting)
    return checks


def feed_check(pool, stale_after: float, exchange: ExchangeState | None = None):
    """Fails when a followed live market's last message is older than ``stale_after``
    (no followed market, or no feed in this build: nothing to be stale). While the exchange
    pauses trading (Kalshi's weekly maintenance) no data is expected: passes with a note."""
    async def check() -> str | None:
        try:
            live, stale = await data.stale_markets(pool, stale_after)
        except data.Missing:
            return None
        if stale and exchange is not None and (why := exchange.paused()):
            return f"{len(stale)} of {live} followed markets without data: {why}"
        if stale:
            more = f" and {len(stale) - 3} more" if len(stale) > 3 else ""
            raise RuntimeError(f"{len(stale)} of {live} followed markets stale "
                               f"(no message for over {stale_after:g}s): "
                               f"{', '.join(stale[:3])}{more}")
        return None

    return check


def account_check(pool, stale_after: float):
    """Fails when the account sync has not completed for ``stale_after`` seconds (no sync yet,
    or no account sync in this build: nothing to be late)."""
    async def check() -> None:
        try:
            age = await data.account_age(pool)
        except data.Missing:
            return
        if age is not None and age > stale_after:
            raise RuntimeError(f"account sync last completed {age:.0f}s ago "
                               f"(more than {stale_after:g}s)")
        return

    return check
