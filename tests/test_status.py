"""`rec status` (app.status): what it costs to ask. Its checks are covered with real
services in tests/test_web.py and tests/test_one_source.py; its time is
benchmarks/status_bench.py's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

HEAVY = ("httpx", "cryptography", "app.sim.cli", "app.pricing.cli", "app.ledger.cli")


def test_rec_status_imports_neither_httpx_nor_the_command_modules(rec_home):
    """It took 1-3 s, most of it imports: httpx (and its TLS context) for two GETs, and every
    command module (rec sim's cryptography) only to build the parser."""
    code = ("import json, sys\nfrom app.cli import main\nrc = main(['status'])\n"
            f"print(json.dumps([m for m in sys.modules if m.startswith({HEAVY!r})]))")
    r = subprocess.run([sys.executable, "-c", code], env=rec_home.env, cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert "BAD exchange" in r.stdout, r.stdout + r.stderr  # it did ask (nothing runs here)
    assert json.loads(r.stdout.splitlines()[-1]) == []


def test_the_command_modules_still_register_their_commands(rec_home):
    r = subprocess.run([sys.executable, "-m", "app.cli", "sim", "--help"], env=rec_home.env,
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "add-key" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-m", "app.cli", "--help"], env=rec_home.env,
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "ledger" in r.stdout and "status" in r.stdout
