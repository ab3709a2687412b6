"""rec-paper: the paper trading engine (account mode paper, docs/paper.md).

The simulator's REST and WebSocket API (app/sim), served where rec-exchange-sim would listen
(``exchange_sim_port``), on a :class:`~app.paper.mirror.MirrorWorld`: the open markets of
the followed series, events and tickers of ``paper_source``'s exchange, their books and
prints mirrored from its WebSocket. rec's trading services send their orders here and read
fills, positions and balance from here; market data services read the exchange itself.
The configured Kalshi key (a read-only key is enough: nothing is ever sent to the exchange
but reads) is registered with the engine, so the services sign their requests as usual.

The paper account outlives a restart: it is saved in ``<state_dir>/paper/account.json``
(app/paper/account_file.py) and loaded before READY, with the markets it holds positions or
resting orders in mirrored (or settled on their result) again.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from app import exchange_client
from app.config import ConfigError, Settings, csv_list
from app.kalshi.errors import KalshiError
from app.kalshi.rest import KalshiRest
from app.kalshi.signing import public_pem
from app.kalshi.ws import KalshiWS
from app.paper import account_file
from app.paper.mirror import MirrorWorld, follow, recorded
from app.runtime.http import HttpService
from app.runtime.service import Phase, close
from app.services.market_feed import ORDERBOOKS_PER_CALL, chunks, open_markets
from app.sim.app import create_app
from app.sim.cli import register_public_key
from app.sim.config import sim_config
from app.sim.money import ONE
from app.sim.server import uvicorn_options

DISCOVER_EVERY_S = 60.0  # new events of the followed series are mirrored this often


def paper_dir(settings: Settings) -> Path:
    """rec-paper's own directory: the account file and the keys it knows."""
    return settings.state_dir / "paper"


class PaperService(HttpService):
    ws: KalshiWS | None = None
    rest: KalshiRest | None = None
    journal: account_file.Journal | None = None

    async def start(self, phase: Phase) -> None:
        s = self.settings
        config = replace(sim_config(s), keys_dir=paper_dir(s) / "keys")
        signer = exchange_client.signer(s)
        register_public_key(config.keys_dir, signer.key_id, public_pem(signer.private_key),
                            replace=True)
        path = account_file.path_in(paper_dir(s))
        try:
            saved = account_file.read(path)
        except ValueError as exc:
            raise ConfigError(f"paper account file {path}: {exc}; move it away to start the "
                              "paper account afresh") from None
        self.rest = exchange_client.rest_client(s, data=True, timeout=10)
        await phase("read the exchange's rate limits", self.rest.start())
        found = await phase("discover the markets to mirror", self._markets())
        self.world = MirrorWorld([])
        self.journal = account_file.Journal(self.world.exchange, path)
        self.world.exchange.observers.append(self.journal)
        if saved is not None:
            await phase("restore the paper account", self._restore(saved, found))
        else:
            self.world.add_markets(found)
        source = exchange_client.endpoints(s, data=True)
        self.log.info("paper: mirroring %d open markets of %s (%s)%s", len(found),
                      s.paper_source, source.rest_base, "" if saved is not None else
                      f"; a new paper account, balance ${s.sim_start_balance_cents / 100:.2f}")
        self.ws = exchange_client.ws_client(s, data=True, keep_books=False)  # the mirror keeps them
        await self.ws.start()
        await phase("connect to the exchange's websocket", self.ws.wait_connected())
        self.spawn(follow(self.world, self.ws), "paper-mirror")
        self.spawn(self._rediscover(), "paper-discover")
        app = account_file.Durable(create_app(config, self.world), self.journal)
        await self.serve_http(phase, app, s.exchange_sim_port, "http+ws",
                              **uvicorn_options(config))

    async def _restore(self, saved: dict[str, Any], found: list) -> None:
        """The saved accounts back in the engine; the markets they hold positions or resting
        orders in mirrored too (from the exchange: a market that has closed meanwhile is
        added closed, settled on its result if it has one)."""
        ex, journal = self.world.exchange, self.journal
        assert journal is not None and self.rest is not None
        resting = account_file.restore(ex, saved)
        open_now = {r.ticker for r in found}
        held = {p.ticker for a in ex.accounts.values() if not a.unlimited
                for p in a.positions.values() if p.position} | {o.ticker for o in resting}
        gone = sorted(held - open_now)
        for chunk in chunks(gone, ORDERBOOKS_PER_CALL):
            page = await self.rest.get_markets(tickers=chunk, limit=1000)
            found = found + [recorded(m) for m in page.items if m.ticker not in open_now]
        self.world.add_markets(found)
        self.world.rejoin(resting)
        missing = sorted(set(gone) - set(ex.markets))
        if missing:
            self.log.warning("paper: %d held markets are unknown to the exchange, their "
                             "positions stay as saved: %s", len(missing), ", ".join(missing))
        accounts = [a for a in ex.accounts.values() if not a.unlimited]
        self.log.info("paper: account restored from %s: %s", journal.path, "; ".join(
            f"{a.account_id}: balance ${a.balance / ONE:.2f}, "
            f"{sum(1 for p in a.positions.values() if p.position)} positions, "
            f"{len(a.resting)} resting orders, {len(a.fills)} fills" for a in accounts))
        journal.changed()  # what the restore changed (settled, canceled) is saved too

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
        # the account is on disk before anything else stops (a stop that overruns its
        # timeout is cut short), and again after the last requests were answered
        if self.journal is not None:
            self.journal.flush()
        await super().stop()
        await close(self.ws, self.rest)
        if self.journal is not None:
            self.journal.flush()
