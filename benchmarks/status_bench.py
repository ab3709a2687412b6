#!/usr/bin/env python3
"""`rec status` as an operator runs it: a whole process, against real services (PostgreSQL on
loopback, `rec run exchange-sim` and `rec run web` as processes of their own; the units'
part says "not running under systemd" here, its one `systemctl show` is Molecule's).

Runs `rec status` and a yardstick (`true`) in turn, N times, and prints each one's median
wall and CPU time, the median of the pairwise ratio, and the load average before and after
(the machine is shared: read the ratio, and the load beside it). Usage:
    .venv/bin/python -m benchmarks.status_bench [--runs N]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.simproc import service_env
from testkit import pg as pgserver
from testkit.net import free_port
from testkit.notify import NotifySocket

STATUS = [sys.executable, "-m", "app.cli", "status"]
YARDSTICK = ["true"]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall s, CPU s of the child, exit code) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    rc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        check=False).returncode
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, rc


def start(service: str, env: dict[str, str]) -> subprocess.Popen:
    notify = NotifySocket.open()
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "run", service],
                            env={**env, "NOTIFY_SOCKET": str(notify.path)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        notify.wait_for("READY", "1", timeout=90)
    finally:
        notify.close()
    return proc


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    server = pgserver.start()
    home = Path(tempfile.mkdtemp(prefix="rec-status-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        server.create_app_db("rec", "rec", "bench-pw")
        env = service_env(home, server.port, None, free_port(), REC_LOG_LEVEL="warning",
                          REC_WEB_PORT=str(free_port()))
        subprocess.run([*STATUS[:-1], "db", "migrate"], env=env, check=True,
                       capture_output=True)
        procs = [start("exchange-sim", env), start("web", env)]
        rc = timed(STATUS, env)[2]  # warm-up (page cache), and what it says
        load_before = os.getloadavg()
        status, yardstick, ratios = [], [], []
        for _ in range(args.runs):
            status.append(timed(STATUS, env))
            yardstick.append(timed(YARDSTICK, env))
            ratios.append(status[-1][0] / max(yardstick[-1][0], 1e-6))
        load_after = os.getloadavg()

        def med(rows, i):
            return statistics.median(r[i] for r in rows)

        print(f"rec status, {args.runs} runs (exit {rc}: 0 = all ok; rec-web may still call "
              f"its first values 'waiting'), PostgreSQL + exchange-sim + web on loopback")
        print(f"  rec status   wall median {med(status, 0) * 1000:7.1f} ms  "
              f"(min {min(r[0] for r in status) * 1000:.1f}, "
              f"max {max(r[0] for r in status) * 1000:.1f})   cpu median "
              f"{med(status, 1) * 1000:7.1f} ms")
        print(f"  {' '.join(YARDSTICK):<12} wall median {med(yardstick, 0) * 1000:7.1f} ms")
        print(f"  ratio rec status / {' '.join(YARDSTICK)} (pairwise, median): "
              f"{statistics.median(ratios):.0f}x")
        print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
              f"({os.cpu_count()} cores)")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        pgserver.remove(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
