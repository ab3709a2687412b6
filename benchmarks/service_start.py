#!/usr/bin/env python3
"""Start -> READY time of `rec run web` (real PostgreSQL, real process, NOTIFY_SOCKET).

Prints, over N runs: process spawn -> READY=1 (includes Python start and imports),
the service's own reported time to ready, and SIGTERM -> exit. Usage:
    .venv/bin/python -m benchmarks.service_start [--runs N] [--service web]
"""

from __future__ import annotations

import argparse
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--service", default="web")
    args = ap.parse_args()
    server = pgserver.start()
    home = Path(tempfile.mkdtemp(prefix="rec-bench-"))
    try:
        server.create_app_db("rec", "rec", "bench-pw")
        env = service_env(home, server.port, None, free_port(), REC_LOG_LEVEL="warning")
        subprocess.run([sys.executable, "-m", "app.cli", "db", "migrate"], env=env, check=True,
                       capture_output=True)
        to_ready, reported, to_exit = [], [], []
        for i in range(args.runs):
            env["REC_WEB_PORT"] = str(free_port())
            env["REC_EXCHANGE_SIM_PORT"] = str(free_port())
            notify = NotifySocket.open()
            env["NOTIFY_SOCKET"] = str(notify.path)
            t0 = time.monotonic()
            proc = subprocess.Popen([sys.executable, "-m", "app.cli", "run", args.service],
                                    env=env, stdout=subprocess.DEVNULL)
            ready = notify.wait_for("READY", "1", timeout=60)
            to_ready.append(ready.at - t0)
            reported.append(float(ready.fields["STATUS"].split()[-1].rstrip("s")))
            t1 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            to_exit.append(time.monotonic() - t1)
            notify.close()
            print(f"run {i + 1}: spawn->READY {to_ready[-1] * 1000:.0f} ms", flush=True)

        def row(name, xs):
            xs = sorted(x * 1000 for x in xs)
            print(f"{name:<34} median {statistics.median(xs):7.1f} ms   "
                  f"min {xs[0]:7.1f}   max {xs[-1]:7.1f}")

        print(f"\nrec-{args.service}, {args.runs} runs, PostgreSQL on loopback:")
        row("spawn -> READY=1 (incl. imports)", to_ready)
        row("runner start -> READY (reported)", reported)
        row("SIGTERM -> exit", to_exit)
    finally:
        pgserver.remove(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
