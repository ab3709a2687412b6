"""What the data-in benchmarks share: a PostgreSQL of their own, the simulator in this
process (its clock moved by the benchmark), and `rec run <service>` as a real process
against both, with a NOTIFY socket. (Not a benchmark itself.)"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.db.migrate import migrate
from app.kalshi.signing import Signer, generate_private_key, public_pem
from app.runtime.http import HttpServer
from app.sim.app import create_app
from app.sim.cli import register_public_key
from app.sim.config import SimConfig
from app.sim.server import uvicorn_options
from benchmarks.simproc import service_env
from testkit import pg as pgserver
from testkit.notify import NotifySocket
from testkit.sim import START_MS

ROOT = Path(__file__).resolve().parent.parent


class Bench:
    def __init__(self, **sim_over) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="rec-bench-"))
        self.pg = pgserver.start()
        self.pg.create_app_db("rec", "rec", "bench-pw")
        self.dsn = self.pg.dsn("rec", "bench-pw", "rec")
        migrate(self.dsn, progress=lambda _: None)
        self.signer = Signer("bench-key", generate_private_key())
        keys = self.home / "keys"
        register_public_key(keys, self.signer.key_id, public_pem(self.signer.private_key))
        self.sim_config = SimConfig(keys_dir=keys, seed=1, speed=0.0, start_ms=START_MS,
                                    faults_enabled=True, rate_tier="unlimited", **sim_over)
        self.procs: list[subprocess.Popen] = []
        self.notifies: list[NotifySocket] = []

    async def start_sim(self) -> None:
        app = create_app(self.sim_config)
        self.server = HttpServer(app, "127.0.0.1", 0, **uvicorn_options(self.sim_config))
        await self.server.start()
        self.sim = app.state.sim

    def env(self, **extra: str) -> dict[str, str]:
        return service_env(self.home, self.pg.port, self.signer, self.server.port,
                           **{"REC_LOG_LEVEL": "info", **extra})

    def run(self, service: str, **extra: str) -> tuple[subprocess.Popen, NotifySocket, Path]:
        notify = NotifySocket.open()
        env = self.env(**extra)
        env["NOTIFY_SOCKET"] = str(notify.path)
        log = self.home / f"{service}-{len(self.procs)}.log"
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "run", service], env=env,
                                cwd=ROOT, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.notifies.append(notify)
        return proc, notify, log

    async def ready(self, notify: NotifySocket, log: Path, timeout: float = 120) -> float:
        t0 = time.monotonic()
        try:
            await asyncio.to_thread(notify.wait_for, "READY", "1", timeout)
        except TimeoutError:
            tail = await asyncio.to_thread(log.read_text)
            raise SystemExit(f"service not READY:\n{tail[-3000:]}") from None
        return time.monotonic() - t0

    async def close(self) -> None:
        for p in self.procs:  # only our own children, by handle
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for n in self.notifies:
            n.close()
        await self.server.stop()
        pgserver.remove(self.pg)
