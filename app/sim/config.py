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
        """From app.config.Settings (its sim_* fields)."""
        s = settings
        return cls(
            keys_dir=Path(s.sim_keys_dir),  # type: ignore[attr-defined]
            seed=s.sim_seed,  # type: ignore[attr-defined]
            speed=s.sim_speed,  # type: ignore[attr-defined]
            faults_enabled=s.sim_faults_enabled,  # type: ignore[attr-defined]
            rate_tier=s.sim_rate_tier,  # type: ignore[attr-defined]
            start_balance_cents=s.sim_start_balance_cents,  # type: ignore[attr-defined]
        )
