"""Everything one simulator instance holds (no HTTP here: app.py serves it)."""

from __future__ import annotations

import time

from app.sim.accounts import Account
from app.sim.auth import KeyStore
from app.sim.config import SimConfig
from app.sim.faults import Faults
from app.sim.money import CENT
from app.sim.ratelimit import RateLimited, RateLimiter
from app.sim.world import World
from app.sim.ws import Hub


class Sim:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.world = World(config.world_params())
        self.exchange = self.world.exchange
        self.hub = Hub(self.exchange, config.ws_max_queue)
        self.exchange.observers.append(self.hub)
        self.keys = KeyStore(config.keys_dir)
        self.limiter = RateLimiter(config.rate_tier)
        self.faults = Faults(enabled=config.faults_enabled)
        self.started = time.monotonic()

    def account(self, key_id: str) -> Account:
        return self.exchange.account(key_id, cash=self.config.start_balance_cents * CENT)

    def rate_check(self, who: str, bucket: str, cost: int) -> None:
        """Charge `cost` tokens to `who` (key id, or client address) or raise RateLimited."""
        if not self.limiter.allow(who, bucket, cost):
            raise RateLimited()
