"""Simulator settings, built from rec's Settings or given directly (tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.sim.world import WorldParams


@dataclass
class SimConfig:
    keys_dir: Path
    seed: int = 1
    speed: float = 1.0  # simulated seconds per wall second; 0 = manual (advance via /_sim)
    start_ms: int | None = None  # simulated epoch; None = now
    faults_enabled: bool = False  # also gates the /_sim control API
    rate_tier: str = "basic"
    start_balance_cents: int = 1_000_000
    max_clock_skew_ms: int = 30_000
    ws_ping_interval: float = 10.0
    world: WorldParams = field(default_factory=WorldParams)

    def world_params(self) -> WorldParams:
        w = self.world
        w.seed = self.seed
        w.start_ms = self.start_ms
        return w

    @classmethod
    def from_settings(cls, settings: object) -> SimConfig:
        """Read the sim_* fields of app.config.Settings (missing ones keep defaults)."""
        def get(name: str, default: object) -> object:
            return getattr(settings, name, default)

        state_dir = Path(str(get("state_dir", "/var/lib/rec")))
        keys_dir = get("sim_keys_dir", None) or state_dir / "sim-keys"
        return cls(
            keys_dir=Path(str(keys_dir)),
            seed=int(get("sim_seed", 1)),
            speed=float(get("sim_speed", 1.0)),
            faults_enabled=bool(get("sim_faults_enabled", False)),
            rate_tier=str(get("sim_rate_tier", "basic")),
            start_balance_cents=int(get("sim_start_balance_cents", 1_000_000)),
        )
