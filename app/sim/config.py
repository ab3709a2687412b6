"""Simulator settings, built from rec's Settings (`sim_config`) or given directly (tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.sim.world import WorldParams

if TYPE_CHECKING:
    from app.config import Settings


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
    ws_max_queue: int = 200_000  # messages queued for a slow WS client before error 25
    # orders canceled or executed longer ago than this move to /historical/orders (Kalshi:
    # about two weeks)
    order_history_ms: int = 14 * 86_400_000
    # fills made longer ago than this move to /historical/fills (Kalshi: the same two weeks)
    fill_history_ms: int = 14 * 86_400_000
    # noise taker trades per market per minute (None: WorldParams' own rate); the setting
    # sim_activity defaults to a busy real BTC hour
    activity_per_min: float | None = None
    # the weekly trading pause (Kalshi: Thursdays 03:00-05:00 ET); weekday 0 = Monday,
    # None = never paused
    maintenance_weekday: int | None = 3
    maintenance_minutes_et: tuple[int, int] = (180, 300)  # start, end after midnight ET
    world: WorldParams = field(default_factory=WorldParams)
    # replay (docs/replay.md): a recording to play instead of the generated world ("" =
    # generate), the time an order takes to reach the replayed exchange, and whether to
    # play as fast as the WebSocket clients read (speed is then ignored)
    replay_file: str = ""
    replay_latency_ms: int = 0
    replay_flat_out: bool = False

    def world_params(self) -> WorldParams:
        w = self.world
        w.seed = self.seed
        w.start_ms = self.start_ms
        w.maintenance_weekday = self.maintenance_weekday
        w.maintenance_start_min, w.maintenance_end_min = self.maintenance_minutes_et
        if self.activity_per_min is not None:
            w.flow_rate_per_s = self.activity_per_min / 60
        return w


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_window(text: str) -> tuple[int | None, tuple[int, int]]:
    """"thu 03:00-05:00" -> (3, (180, 300)); "" -> no weekly pause."""
    if not text.strip():
        return None, (0, 0)
    try:
        day, span = text.split()
        a, b = span.split("-")
        start = int(a[:2]) * 60 + int(a[3:])
        end = int(b[:2]) * 60 + int(b[3:])
        weekday = DAYS.index(day)
    except ValueError:
        raise ValueError(f"maintenance window {text!r}: use e.g. 'thu 03:00-05:00'") from None
    if not 0 <= start < end <= 1440:
        raise ValueError(f"maintenance window {text!r}: the end must follow the start")
    return weekday, (start, end)


def sim_config(settings: Settings) -> SimConfig:
    """The simulator's configuration from rec's Settings (its sim_* fields)."""
    weekday, minutes = parse_window(settings.sim_maintenance_window)
    return SimConfig(
        keys_dir=Path(settings.sim_keys_dir),
        seed=settings.sim_seed,
        speed=settings.sim_speed,
        faults_enabled=settings.sim_faults_enabled,
        rate_tier=settings.sim_rate_tier,
        start_balance_cents=settings.sim_start_balance_cents,
        maintenance_weekday=weekday,
        maintenance_minutes_et=minutes,
        activity_per_min=settings.sim_activity,
        replay_file=settings.sim_replay_file,
        replay_latency_ms=settings.sim_replay_latency_ms,
        replay_flat_out=settings.sim_replay_flat_out,
    )
