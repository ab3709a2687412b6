"""rec-exchange-sim: the simulator as a rec service (READY once the port is bound)."""

from __future__ import annotations

from app.config import ConfigError
from app.record.schema import BadFile
from app.runtime.http import HttpService
from app.runtime.service import Phase
from app.sim.app import create_app
from app.sim.config import sim_config
from app.sim.server import uvicorn_options


class ExchangeSimService(HttpService):
    async def start(self, phase: Phase) -> None:
        s = self.settings
        config = sim_config(s)
        config.keys_dir.mkdir(parents=True, exist_ok=True)
        keys = len(list(config.keys_dir.glob("*.pem")))
        self.log.info("simulator: seed %d, speed %.1fx, %d registered key(s) in %s, "
                      "rate tier %s, faults %s", config.seed, config.speed, keys,
                      config.keys_dir, config.rate_tier,
                      "ENABLED" if config.faults_enabled else "off")
        if keys == 0:
            self.log.warning("no API keys registered in %s: every signed request will get "
                             "401 until `rec sim add-key` or `rec sim gen-key` adds one",
                             config.keys_dir)
        if config.replay_file:
            self.log.info("simulator: replaying %s, order latency %d ms%s", config.replay_file,
                          config.replay_latency_ms,
                          ", flat out" if config.replay_flat_out else "")
        try:
            app = create_app(config)
        except BadFile as exc:  # sim_replay_file names no recording this rec reads
            raise ConfigError(f"sim_replay_file: {exc}") from None
        # REC_SIM_BIND_HOST: other app hosts may use this simulator (one exchange for all)
        await self.serve_http(phase, app, s.exchange_sim_port, "http+ws",
                              host=s.sim_bind_host or None, **uvicorn_options(config))
