"""rec-paper: the paper trading engine (account mode paper, docs/paper.md).

The simulator's REST and WebSocket API (app/sim), served where rec-exchange-sim would listen
(``exchange_sim_port``), on a :class:`~app.paper.mirror.MirrorWorld`: the open markets of
the followed series, events and tickers of ``paper_source``'s exchange, their books and
prints mirrored from its WebSocket. rec's trading services send their orders here and read
fills, positions and balance from here; market data services read the exchange itself.
The configured Kalshi key (a read-only key is enough: nothing is ever sent to the exchange
but reads) is registered with the engine, so the services sign their requests as usual.
"""

from __future__ import annotations

import asyncio

from app import exchange_client
from app.config import csv_list
from app.kalshi.errors import KalshiError
from app.kalshi.rest import KalshiRest
from app.kalshi.signing import public_pem
from app.kalshi.ws import KalshiWS
from app.paper.mirror import MirrorWorld, follow, recorded
from app.runtime.http import HttpService
from app.runtime.service import Phase, close
from app.services.market_feed import open_markets
from app.sim.app import create_app
from app.sim.cli import register_public_key
from app.sim.config import sim_config
from app.sim.server import uvicorn_options

DISCOVER_EVERY_S = 60.0  # new events of the followed series are mirrored this often


class PaperService(HttpService):
    ws: KalshiWS | None = None
    rest: KalshiRest | None = None

    async def start(self, phase: Phase) -> None:
        s = self.settings
        config = sim_config(s)
        signer = exchange_client.signer(s)
        register_public_key(config.keys_dir, signer.key_id, public_pem(signer.private_key),
                            replace=True)
        self.rest = exchange_client.rest_client(s, data=True, timeout=10)
        await phase("read the exchange's rate limits", self.rest.start())
        found = await phase("discover the markets to mirror", self._markets())
        self.world = MirrorWorld(found)
        source = exchange_client.endpoints(s, data=True)
        self.log.info("paper: mirroring %d open markets of %s (%s); starting balance $%.2f",
                      len(found), s.paper_source, source.rest_base,
                      s.sim_start_balance_cents / 100)
        self.ws = exchange_client.ws_client(s, data=True, keep_books=False)  # the mirror keeps them
        await self.ws.start()
        await phase("connect to the exchange's websocket", self.ws.wait_connected())
        self.spawn(follow(self.world, self.ws), "paper-mirror")
        self.spawn(self._rediscover(), "paper-discover")
        await self.serve_http(phase, create_app(config, self.world), s.exchange_sim_port,
                              "http+ws", **uvicorn_options(config))

    async def _markets(self) -> list:
        s = self.settings
        assert self.rest is not None
        found = await open_markets(self.rest, csv_list(s.market_feed_series),
                                   csv_list(s.market_feed_events),
                                   csv_list(s.market_feed_tickers))
        return [recorded(m) for m in found.values()]

    async def _rediscover(self) -> None:
        while True:
            await asyncio.sleep(DISCOVER_EVERY_S)
            try:
                added = self.world.add_markets(await self._markets())
            except (KalshiError, OSError) as exc:  # the exchange's REST: next time
                self.log.warning("paper: market discovery failed: %s", exc)
                continue
            if added and self.ws is not None:
                self.log.info("paper: mirroring %d new markets", len(added))
                for sub in self.ws.subscriptions:
                    if sub.channel != "market_lifecycle_v2":
                        await self.ws.add_markets(sub, added)

    async def stop(self) -> None:
        await super().stop()
        await close(self.ws, self.rest)
