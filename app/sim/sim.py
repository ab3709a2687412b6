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
    def __init__(self, config: SimConfig, world: World | None = None) -> None:
        self.config = config
        self.world = world or make_world(config)  # given: the paper engine's (app/paper)
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


def make_world(config: SimConfig) -> World:
    """The generated world, or the replay of ``config.replay_file`` when one is set."""
    if not config.replay_file:
        return World(config.world_params())
    from app.sim.replay import ReplayWorld
    from app.sim.replay_file import load

    return ReplayWorld(load(config.replay_file), config.replay_latency_ms,  # type: ignore[return-value]
                       config.replay_flat_out)
