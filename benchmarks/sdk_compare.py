"""rec's KalshiRest against Kalshi's official Python SDK, on this machine, in one run.

    .venv/bin/python -m benchmarks.sdk_compare [--n 3000] [--rounds 3] [--venv DIR] [--profile]

Installs ``kalshi_python_sync`` (the official synchronous SDK) into a throwaway venv
(removed afterwards unless ``--venv`` names one to reuse), starts the simulator in a process
of its own (uvloop + httptools, unlimited rate tier) and runs, alternately, ``--rounds``
times: N sequential signed ``GET /portfolio/balance`` through the SDK (in the venv's
python) and through rec's ``KalshiRest.get_balance`` (async, this process, the default
asyncio loop as services run it). Prints requests/s and p50/p99 latency of each and the
ratio. ``--profile`` prints where rec's time goes (cProfile, top functions).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.kalshi import signing
from app.kalshi.rest import KalshiRest
from benchmarks.simproc import SimProcess

SDK = "kalshi_python_sync==3.2.0"
PREFIX = "/trade-api/v2"

SDK_SCRIPT = r"""
import json, statistics, sys, time
from kalshi_python_sync import Configuration, KalshiClient
base, key_id, pem_path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = Configuration(host=base)
cfg.api_key_id = key_id
cfg.private_key_pem = open(pem_path).read()
client = KalshiClient(cfg)
for _ in range(200):
    client.get_balance()
lat = []
t0 = time.perf_counter()
for _ in range(n):
    a = time.perf_counter()
    client.get_balance()
    lat.append(time.perf_counter() - a)
dt = time.perf_counter() - t0
lat.sort()
print(json.dumps({"rps": n / dt, "p50_ms": 1000 * lat[len(lat) // 2],
                  "p99_ms": 1000 * lat[int(len(lat) * 0.99)]}))
"""


def make_venv(where: Path) -> Path:
    py = where / "bin" / "python"
    if not py.exists():
        print(f"installing {SDK} into a throwaway venv {where} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", SDK], check=True)
    return py


def run_sdk(py: Path, base: str, signer: signing.Signer, pem: Path, n: int) -> dict:
    out = subprocess.run([str(py), "-c", SDK_SCRIPT, base + PREFIX, signer.key_id, str(pem),
                          str(n)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


async def run_rec(base: str, signer: signing.Signer, n: int,
                  profile: cProfile.Profile | None = None) -> dict:
    async with KalshiRest(base + PREFIX, signer) as rest:
        for _ in range(200):
            await rest.get_balance()
        lat = []
        if profile:
            profile.enable()
        t0 = time.perf_counter()
        for _ in range(n):
            a = time.perf_counter()
            await rest.get_balance()
            lat.append(time.perf_counter() - a)
        dt = time.perf_counter() - t0
        if profile:
            profile.disable()
    lat.sort()
    return {"rps": n / dt, "p50_ms": 1000 * lat[len(lat) // 2],
            "p99_ms": 1000 * lat[int(len(lat) * 0.99)]}


def show(name: str, r: dict) -> str:
    return (f"{name:<28} {r['rps']:>7,.0f} req/s   p50 {r['p50_ms']:.3f} ms   "
            f"p99 {r['p99_ms']:.3f} ms")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--venv", type=Path, default=None, help="reuse (or create) this venv")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rec-sdk-bench-"))
    venv = args.venv or tmp / "venv"
    signer = signing.Signer("bench-sdk", signing.generate_private_key())
    pem = tmp / "key.pem"
    pem.write_bytes(signing.private_pem(signer.private_key))
    srv = SimProcess([signer], liquid=False)
    try:
        py = make_venv(venv)
        await srv.ready()
        sdk, rec = [], []
        for _ in range(args.rounds):
            sdk.append(run_sdk(py, srv.base, signer, pem, args.n))
            rec.append(await run_rec(srv.base, signer, args.n))
        med = {k: {m: statistics.median(r[m] for r in rs) for m in ("rps", "p50_ms", "p99_ms")}
               for k, rs in (("sdk", sdk), ("rec", rec))}
        print(f"sequential signed GET /portfolio/balance, {args.n} x {args.rounds} rounds "
              "(medians):")
        print(show("official kalshi_python_sync", med["sdk"]))
        print(show("rec KalshiRest (async)", med["rec"]))
        print(f"rec / SDK throughput: {med['rec']['rps'] / med['sdk']['rps']:.2f}x, "
              f"p50 {med['rec']['p50_ms'] / med['sdk']['p50_ms']:.2f}x")
        if args.profile:
            prof = cProfile.Profile()
            await run_rec(srv.base, signer, args.n, prof)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
