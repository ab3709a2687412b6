"""The simulator in a process of its own, for benchmarks (uvloop + httptools, unlimited tier).

``SimProcess(signers, liquid)`` registers the signers' public keys, starts
``python -m benchmarks.simproc PORT KEYS_DIR [--liquid]`` on a free loopback port and
stops it (its own child, by its Popen handle) in ``stop()``.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from app.kalshi.signing import Signer, private_pem, public_pem
from app.sim.cli import register_public_key
from testkit.net import free_port
from testkit.sim import START_MS

ROOT = Path(__file__).resolve().parent.parent


class SimProcess:
    def __init__(self, signers: list[Signer], liquid: bool) -> None:
        self.keys_dir = tempfile.mkdtemp(prefix="rec-bench-keys-")
        for s in signers:
            register_public_key(Path(self.keys_dir), s.key_id, public_pem(s.private_key))
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.simproc", str(self.port), self.keys_dir]
            + (["--liquid"] if liquid else []), cwd=ROOT)
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/trade-api/ws/v2"

    async def ready(self) -> None:
        async with httpx.AsyncClient() as c:
            for _ in range(300):
                try:
                    if (await c.get(self.base + "/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("simulator did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def serve(port: int, keys_dir: str, liquid: bool) -> None:
    import uvicorn

    from app.sim.app import create_app
    from app.sim.config import SimConfig
    from app.sim.server import uvicorn_options
    from app.sim.world import WorldParams

    world = WorldParams() if liquid else WorldParams(mm_levels=0, flow_rate_per_s=0)
    cfg = SimConfig(keys_dir=Path(keys_dir), seed=1, speed=0, start_ms=START_MS,
                    faults_enabled=True, rate_tier="unlimited", world=world,
                    start_balance_cents=10**12)
    uvicorn.run(create_app(cfg), host="127.0.0.1", port=port, log_level="warning",
                loop="uvloop", **uvicorn_options(cfg))  # httptools, with the head cap


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("keys_dir")
    ap.add_argument("--liquid", action="store_true")
    a = ap.parse_args()
    serve(a.port, a.keys_dir, a.liquid)


def service_env(home: Path, pg_port: int, signer: Signer | None, sim_port: int,
                **extra: str) -> dict[str, str]:
    """The environment of a `rec run` service in a benchmark: credential files (database
    password "bench-pw", rec-web's login "bench-login-pw", the signer's key if any), config
    dirs under ``home``, the test PostgreSQL and the simulator's port; ``extra`` REC_*
    settings on top."""
    import os

    from app.web.auth import hash_password

    creds = home / "creds"
    creds.mkdir(exist_ok=True)
    (creds / "db_password").write_text("bench-pw")
    (creds / "web_password_hash").write_text(hash_password("bench-login-pw"))
    if signer is not None:
        (creds / "kalshi_key_id").write_text(signer.key_id)
        (creds / "kalshi_private_key").write_bytes(private_pem(signer.private_key))
    (home / "etc").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REC_")}
    env.update(PYTHONPATH=str(ROOT), REC_CONFIG_DIR=str(home / "etc"),
               REC_CREDENTIALS_PATH=str(creds), REC_STATE_DIR=str(home),
               REC_DB_PORT=str(pg_port), REC_DB_SSLMODE="disable",
               REC_EXCHANGE_SIM_PORT=str(sim_port), **extra)
    return env
