"""Run one test file of the suite as a benchmark: its size set by REC_* variables, its
figure lines (those starting with ``prefix``) printed, with the wall time and the load
average before and after. Used by trading_day.py and chaos.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(test_file: str, env: dict[str, str], prefix: str, keep: list[str] | None = None) -> int:
    """Run ``test_file``; print its ``prefix`` lines (and append them to ``keep``)."""
    load0 = os.getloadavg()
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           "-p", "no:logging", test_file], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True)
    wall = time.monotonic() - t0
    figures = [ln for ln in proc.stdout.splitlines() if ln.startswith(prefix)]
    if keep is not None:
        keep += figures
    print("\n".join(figures) or proc.stdout[-6000:])
    print(f"{'passed' if proc.returncode == 0 else 'FAILED'} in {wall:.0f} s "
          f"(load average before {load0[0]:.2f}, after {os.getloadavg()[0]:.2f})")
    return proc.returncode
