"""rec-web as a service: database pool, then HTTP bound, then READY."""

from __future__ import annotations

import httpx

from app.db.pool import open_pool, ping
from app.kalshi.urls import from_settings
from app.runtime.http import HttpServer
from app.runtime.service import Phase, Service
from app.web.app import create_app
from app.web.health import exchange_check


class WebService(Service):
    name = "web"

    async def start(self, phase: Phase) -> None:
        s = self.settings
        self.pool = await phase("connect to database", open_pool(s, "rec-web"))
        self.client = httpx.AsyncClient(timeout=3.0)
        database = {"database": lambda: ping(self.pool)}
        exchange = {"exchange": exchange_check(from_settings(s).rest_base, self.client)}
        app = create_app(ready_checks=database, bundle_checks={**database, **exchange})
        self.http = HttpServer(app, s.bind_host, s.web_port)
        await phase(f"bind http {s.bind_host}:{s.web_port}", self.http.start())

    async def run(self) -> None:
        await self.http.wait()

    async def stop(self) -> None:
        if getattr(self, "http", None):
            await self.http.stop()
        if getattr(self, "client", None):
            await self.client.aclose()
        if getattr(self, "pool", None):
            await self.pool.close()
