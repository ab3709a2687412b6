"""Services that misbehave on purpose, run through the real runner by `rec run module:Class`."""

from __future__ import annotations

import asyncio
import os
import time

from app.config import ConfigError
from app.runtime.service import Phase, Service


class SleepyPhases(Service):
    """Two quick phases, then serves until stopped."""

    name = "sleepy"

    async def start(self, phase: Phase) -> None:
        await phase("warm cache", asyncio.sleep(0.1))
        await phase("initial sync: positions", asyncio.sleep(0.1))


class HangingPhase(Service):
    """Its initial sync never finishes: the phase deadline must turn that into an exit."""

    name = "hanging"

    async def start(self, phase: Phase) -> None:
        await phase("initial sync: positions", asyncio.Event().wait())


class BlocksLoop(Service):
    """READY, then blocks its event loop for REC_TEST_BLOCK_SEC after REC_TEST_BLOCK_AFTER."""

    name = "blocker"

    async def run(self) -> None:
        await asyncio.sleep(float(os.environ.get("REC_TEST_BLOCK_AFTER", "1")))
        self.log.warning("blocking the event loop on purpose")
        time.sleep(float(os.environ.get("REC_TEST_BLOCK_SEC", "3")))  # noqa: ASYNC251
        self.log.info("loop unblocked")
        await asyncio.Event().wait()


class SlowStop(Service):
    """Takes longer to stop than the stop timeout allows."""

    name = "slowstop"

    async def stop(self) -> None:
        await asyncio.sleep(60)


class WritesConfig(Service):
    """Does what the old system did: rewrites its config at run time (to prove we catch it)."""

    name = "writes-config"

    async def run(self) -> None:
        path = self.settings.config_dir / "config.local.json"
        path.write_text('{"log_level": "info"}\n')
        await asyncio.Event().wait()


class EndsByItself(Service):
    """Its work ends without a stop request (a dead server loop, say)."""

    name = "ends"

    async def run(self) -> None:
        await asyncio.sleep(0.2)


class ConfigErrorInStart(Service):
    """Finds its configuration unusable only while starting (a bad value a check reveals)."""

    name = "config-in-start"

    async def start(self, phase: Phase) -> None:
        await phase("check settings", asyncio.sleep(0))
        raise ConfigError("REC_X: not usable")
