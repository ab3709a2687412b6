"""The Ansible roles offer paper mode (docs/paper.md): an inventory's
``rec_app_account_mode: paper`` and ``rec_app_paper_source`` render the settings, the units
rendered from the registry install rec-paper in rec-exchange-sim's place, the Kalshi
credentials are required as in demo/prod (detected on the target, never re-prompted, never
logged), and the health proof covers rec-paper. Rendered here, not in Molecule."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_inventories import BIN, playbook
from tests.test_role_modules import ROLE, _load, render_every_unit

APP_ROLE = ROLE.parent / "rec_app"


def rec_env(**inventory) -> dict[str, str]:
    """rec.env as rec_app renders it for an inventory (the role's defaults, then these)."""
    variables = {**yaml.safe_load((APP_ROLE / "defaults/main.yml").read_text()),
                 "rec_app_credentials_dir": "/etc/rec/credentials", **inventory}
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(APP_ROLE / "templates"),
                             trim_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters.update(comment=lambda text: "# " + text, bool=bool)
    text = env.get_template("rec.env.j2").render(ansible_managed="Ansible managed", **variables)
    return dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith("#"))


def units_for(rec_home, env: dict[str, str]) -> tuple[dict, dict[str, str]]:
    """What rec_services reads (`rec services --json` on a host with this rec.env) and the
    unit files it renders from it."""
    rec_home.env.update({k: v for k, v in env.items()
                         if k in ("REC_ACCOUNT_MODE", "REC_PAPER_SOURCE")})
    r = rec_home.rec("services", "--json")
    assert r.returncode == 0, r.stderr
    described = json.loads(r.stdout)
    return described, render_every_unit(described)


def test_an_inventory_in_paper_mode_renders_the_paper_settings():
    env = rec_env(rec_app_account_mode="paper", rec_app_paper_source="prod")
    assert (env["REC_ACCOUNT_MODE"], env["REC_PAPER_SOURCE"]) == ("paper", "prod")
    assert "REC_PAPER_SOURCE" not in rec_env(rec_app_account_mode="demo")
    spec = yaml.safe_load((APP_ROLE / "meta/argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert "paper" in options["rec_app_account_mode"]["choices"]
    assert options["rec_app_paper_source"]["choices"] == ["demo", "prod"]


def test_paper_mode_installs_rec_paper_in_the_simulators_place(rec_home):
    described, units = units_for(rec_home, rec_env(rec_app_account_mode="paper",
                                                   rec_app_paper_source="prod"))
    assert "rec-paper.service" in units and "rec-exchange-sim.service" not in units
    assert "rec-paper.service" in described["units"]
    assert "rec-exchange-sim.service" not in described["units"]
    paper = units["rec-paper.service"]
    assert re.findall(r"^ExecStart=.* run (\S+)$", paper, re.M) == ["paper"]
    assert re.findall(r"^LoadCredential=(\w+):", paper, re.M) == [
        "kalshi_key_id", "kalshi_private_key"]
    assert "IPAddressAllow=" not in paper  # it reads the live exchange
    assert re.findall(r"^User=(.*)$", paper, re.M) == ["rec-paper"]
    # the trading units order after the engine they trade on
    executor = units["rec-trade-executor.service"]
    assert "rec-paper.service" in re.findall(r"^After=(.*)$", executor, re.M)[0].split()
    assert "rec-exchange-sim.service" not in executor
    # and sim mode still has the simulator, not rec-paper
    _, sim_units = units_for(rec_home, rec_env(rec_app_account_mode="sim"))
    assert "rec-exchange-sim.service" in sim_units and "rec-paper.service" not in sim_units


def test_the_health_proof_covers_rec_paper(rec_home):
    described, _ = units_for(rec_home, rec_env(rec_app_account_mode="paper"))
    _load(ROLE / "module_utils/rec_systemd.py", "ansible.module_utils.rec_systemd")
    health = _load(ROLE / "library/rec_health.py", "rec_health")
    enabled = [s for s in described["services"] if s["enabled"]]  # what tasks/health.yml passes
    port = next(s["port"] for s in enabled if s["name"] == "paper")
    assert f"http://127.0.0.1:{port}/healthz" in health.health_urls(enabled, "127.0.0.1")


KEY_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {name: rec_app, tasks_from: kalshi_key}
    # the role's restart handler is for a real host: stop before handlers run
    - ansible.builtin.meta: end_play
"""


@pytest.mark.skipif(not (BIN / "ansible-playbook").exists(), reason="no ansible")
def test_paper_mode_requires_the_kalshi_key_and_keeps_the_one_on_the_target(tmp_path):
    import jinja2

    tasks = yaml.safe_load((APP_ROLE / "tasks/credentials.yml").read_text())
    kalshi = next(t for t in tasks if t.get("ansible.builtin.include_tasks") == "kalshi_key.yml")
    when = jinja2.Environment().compile_expression(kalshi["when"])
    assert when(rec_app_account_mode="paper") and not when(rec_app_account_mode="sim")
    creds = tmp_path / "credentials"
    creds.mkdir()
    play = tmp_path / "play.yml"
    play.write_text(KEY_PLAY)
    group = Path("/").stat().st_gid
    extra = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
             "ansible_become": False, "rec_app_account_mode": "paper",
             "rec_app_paper_source": "prod", "rec_app_credentials_dir": str(creds),
             "rec_app_group": str(group)}
    args = ["-i", "localhost,", str(play), "-e", json.dumps(extra)]
    # none given and none on the target: the play fails saying what to set, asks nothing
    r = playbook(*args)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "account mode paper needs Kalshi credentials" in out, out[-3000:]
    assert "a read-only key of prod is enough" in out
    # on the target already: detected and kept as they are, never printed
    (creds / "kalshi_key_id").write_text("paper-key-id-on-target\n")
    (creds / "kalshi_private_key").write_text("PEM-ON-TARGET\n")
    r = playbook(*args)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert (creds / "kalshi_key_id").read_text() == "paper-key-id-on-target\n"
    assert (creds / "kalshi_private_key").read_text() == "PEM-ON-TARGET\n"
    assert "paper-key-id-on-target" not in out and "PEM-ON-TARGET" not in out
