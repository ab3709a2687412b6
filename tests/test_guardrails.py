"""The guardrail scripts: portability lint and the no-config-writes proof."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts/portability_lint"), str(root)],
                          capture_output=True, text=True)


def test_repository_passes_portability_lint():
    r = run_lint(REPO)
    assert r.returncode == 0, r.stdout


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        ("path = '/Users/alice/rec/data'", "home-path"),
        ("cd /home/trader/rec", "home-path"),
        ("PATH=/opt/homebrew/bin:$PATH", "homebrew"),
        ("websockets.connect(url, extra_headers=h)", "extra-headers"),
        ("pkill -f main_app", "broad-kill"),
        ("pkill -ef rec", "broad-kill"),
        ("pkill --full rec", "broad-kill"),
        ("pkill -9 -f rec", "broad-kill"),
        ("cd /root/rec", "home-path"),
        ("killall python3", "broad-kill"),
        ("host = '192.168.1.20'", "private-ip"),
        ("host = '10.0.0.7'", "private-ip"),
        ("host = '172.20.3.4'", "private-ip"),
        ("supervisord -c backend/supervisord.conf", "supervisord"),
        ("exec /opt/rec/venv/bin/python -m app", "venv-python"),
    ],
)
def test_lint_catches_each_bad_pattern(tmp_path, content, rule):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "bad.sh").write_text(f"#!/bin/sh\n{content}\n")
    r = run_lint(tmp_path)
    assert r.returncode == 1
    assert f"bad.sh:2: [{rule}]" in r.stdout


def test_lint_allows_public_and_loopback_addresses_and_unit_venv_paths(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "ok.py").write_text("a = '127.0.0.1'\nb = '172.32.0.1'\nc = '8.8.10.1'\n")
    (tmp_path / "systemd").mkdir()
    (tmp_path / "systemd/rec-x.service.j2").write_text("ExecStart=/opt/rec/venv/bin/python\n")
    r = run_lint(tmp_path)
    assert r.returncode == 0, r.stdout


def test_running_services_writes_no_config_file(rec_home_db):
    (rec_home_db.config_dir / "config.local.json").write_text('{"log_level": "debug"}\n')
    assert rec_home_db.rec("db", "migrate").returncode == 0
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts/verify_no_config_writes"), "--seconds", "1",
         "web", "tests.fake_services:SleepyPhases"],
        env=rec_home_db.env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "web: READY" in r.stdout
    assert "no config file changed" in r.stdout


def test_verify_no_config_writes_catches_a_write(rec_home_db):
    (rec_home_db.config_dir / "config.local.json").write_text("{}\n")
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts/verify_no_config_writes"), "--seconds", "0.5",
         "tests.fake_services:WritesConfig"],
        env=rec_home_db.env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "config.local.json changed" in r.stdout


def test_lint_marker_allows_only_the_named_rule(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "t.py").write_text(
        "refused = '10.0.0.5'  # portability: allow private-ip\n"
        "also = '/Users/x/y'  # portability: allow private-ip\n")
    r = run_lint(tmp_path)
    assert r.returncode == 1
    assert "t.py:2: [home-path]" in r.stdout and "t.py:1:" not in r.stdout
