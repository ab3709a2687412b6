"""A restart backoff systemd 252 cannot do itself (it has no ``RestartSteps=``).

The units restart without limit (``StartLimitIntervalSec=0``: a dependency away for minutes
must never leave a unit failed for good), every ``RestartSec=`` seconds. So that a unit whose
database is away does not hammer it, each failed run is counted in the state directory (by
``rec unit-failed``, the units' ``ExecStopPost=``, which sees every failure: exit codes,
crashes, watchdog kills) and the next start first waits ``base * 2**(n-1)`` seconds, capped,
with the wait in ``STATUS=`` and the journal. READY resets the count; the total of failed
runs (``rec_restarts_total``, app/runtime/metrics.py) is kept beside it and never reset.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

BASE_SEC = 2.0
CAP_SEC = 30.0  # + the startup phases stays well inside TimeoutStartSec=
FORGET_AFTER_SEC = 600.0  # a failure this old no longer counts


@dataclass(frozen=True)
class Failures:
    count: int
    last: float  # epoch seconds

    def delay(self, now: float | None = None) -> float:
        now = time.time() if now is None else now
        if self.count <= 0 or now - self.last > FORGET_AFTER_SEC:
            return 0.0
        return min(CAP_SEC, BASE_SEC * 2 ** (self.count - 1))


def _path(state_dir: Path, name: str, suffix: str = ".json") -> Path:
    return state_dir / "restarts" / f"{name}{suffix}"


def total(state_dir: Path, name: str) -> int:
    """Every failed run of ``name`` counted here, READY or not since."""
    try:
        return int(_path(state_dir, name, ".total").read_text())
    except (OSError, ValueError):
        return 0


def read(state_dir: Path, name: str) -> Failures:
    try:
        data = json.loads(_path(state_dir, name).read_text())
        return Failures(int(data["count"]), float(data["last"]))
    except (OSError, ValueError, KeyError, TypeError):
        return Failures(0, 0.0)


def record_failure(state_dir: Path, name: str, now: float | None = None) -> Failures:
    now = time.time() if now is None else now
    before = read(state_dir, name)
    count = before.count + 1 if now - before.last <= FORGET_AFTER_SEC else 1
    path = _path(state_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"count": count, "last": now}))
    tmp.replace(path)
    counted = _path(state_dir, name, ".total")
    tmp.write_text(str(total(state_dir, name) + 1))
    tmp.replace(counted)
    return Failures(count, now)


def reset(state_dir: Path, name: str) -> None:
    try:
        _path(state_dir, name).unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass  # a read-only state dir must not stop a service that is otherwise fine
