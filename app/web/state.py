"""What rec-web's routes share: the pool, the settings, sessions, the live hub, the client of
rec-trade-manager and the health monitor (one object, ``app.state.web``; the routes get its
parts through :mod:`app.web.deps`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from psycopg_pool import AsyncConnectionPool

from app.config import Settings
from app.web import auth
from app.web.health import HealthMonitor
from app.web.live import Hub


@dataclass
class WebState:
    monitor: HealthMonitor
    settings: Settings | None = None
    pool: AsyncConnectionPool | None = None
    hub: Hub = field(default_factory=Hub)
    sessions: auth.Sessions | None = None
    limiter: auth.LoginLimiter | None = None
    passwords: auth.PasswordChecks = field(default_factory=auth.PasswordChecks)
    client: httpx.AsyncClient | None = None  # to rec-trade-manager
    expected_units: list[str] = field(default_factory=list)
    descriptions: dict[str, str] = field(default_factory=dict)
    # the metrics files a service or the backup job may write (the registry's: rec-web's
    # service hands them over, app.web does not reach up to the registry)
    metric_names: list[str] = field(default_factory=list)
    ready_checks: list[str] = field(default_factory=lambda: ["database"])  # for /readyz

    @property
    def manager_url(self) -> str:
        return f"http://{self.settings.target_host}:{self.settings.trade_manager_port}"

    @property
    def stale_after(self) -> float:
        return float(self.settings.market_feed_stale_after_sec)
