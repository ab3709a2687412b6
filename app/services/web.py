"""rec-web as a service: database pool, then HTTP bound, then READY."""

from __future__ import annotations

import httpx

from app.db.pool import open_pool, ping
from app.exchange import endpoints
from app.runtime.http import HttpService
from app.runtime.service import Phase
from app.services import expected_units
from app.web.app import create_app
from app.web.health import exchange_check


class WebService(HttpService):
    pool = None
    client: httpx.AsyncClient | None = None

    async def start(self, phase: Phase) -> None:
        s = self.settings
        self.pool = await phase("connect to database", open_pool(s, "rec-web"))
        self.client = httpx.AsyncClient(timeout=3.0)
        database = {"database": lambda: ping(self.pool)}
        exchange = {"exchange": exchange_check(endpoints(s).rest_base, self.client)}
        app = create_app(ready_checks=database, bundle_checks={**database, **exchange},
                         expected_units=expected_units(s.account_mode.value))
        await self.serve_http(phase, app, s.web_port)

    async def stop(self) -> None:
        await super().stop()
        if self.client is not None:
            await self.client.aclose()
        if self.pool is not None:
            await self.pool.close()
