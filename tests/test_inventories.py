"""The inventories as a user edits them (issue 15): the vault layout of the droplet inventory,
one generated database password per inventory, and the series split between app hosts.

Plays here run on localhost with a connection of `local` and touch only a temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(not (BIN / "ansible-playbook").exists(), reason="no ansible")

KEY_ID = "0f1e2d3c-demo-key-id"
PEM = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0-not-a-real-key\n"
       "-----END PRIVATE KEY-----")


def ansible_env() -> dict[str, str]:
    return {**os.environ, "ANSIBLE_ROLES_PATH": str(REPO / "ansible/roles"),
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json", "ANSIBLE_LOCALHOST_WARNING": "0"}


def playbook(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ansible-playbook"), *args], capture_output=True, text=True,
                          env=ansible_env(), cwd=cwd, timeout=180)


def test_demo_credentials_from_the_vault_reach_the_credential_files(tmp_path):
    """inventories/droplet as documented: group_vars/rec_app/vault.yml, --vault-password-file."""
    inv = tmp_path / "droplet"
    shutil.copytree(REPO / "inventories/droplet", inv)
    vault_pass = tmp_path / "vault-pass"
    vault_pass.write_text("correct horse battery staple\n")
    vault = inv / "group_vars/rec_app/vault.yml"
    vault.write_text(yaml.safe_dump({"vault_kalshi_key_id": KEY_ID,
                                     "vault_kalshi_private_key": PEM + "\n"}))
    r = subprocess.run([str(BIN / "ansible-vault"), "encrypt", "--vault-password-file",
                        str(vault_pass), str(vault)], capture_output=True, text=True,
                       env=ansible_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")
    creds = tmp_path / "credentials"
    creds.mkdir()
    play = tmp_path / "play.yml"
    play.write_text("""
- hosts: rec_app
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {name: rec_app, tasks_from: kalshi_key}
    # the role's restart handler is for a real host: stop before handlers run
    - ansible.builtin.meta: end_play
""")
    group = Path("/").stat().st_gid
    extra = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
             "ansible_become": False, "rec_app_account_mode": "demo",
             "rec_app_credentials_dir": str(creds), "rec_app_group": str(group)}
    base = ["-i", str(inv), str(play), "-e", json.dumps(extra)]
    # without the vault password the play cannot start: the vault is really loaded
    r = playbook(*base)
    assert r.returncode != 0 and "vault" in (r.stdout + r.stderr).lower()
    r = playbook(*base, "--vault-password-file", str(vault_pass))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert (creds / "kalshi_key_id").read_text() == KEY_ID + "\n"
    assert (creds / "kalshi_private_key").read_text().strip() == PEM
    for f in ("kalshi_key_id", "kalshi_private_key"):
        # root's alone: systemd hands each unit its own (LoadCredential=)
        assert stat.S_IMODE((creds / f).stat().st_mode) == 0o600
    assert KEY_ID not in r.stdout and "not-a-real-key" not in r.stdout


PASSWORD_FILE_PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.include_vars:
        file: {defaults}
    - ansible.builtin.debug:
        msg: "PASSWORD_FILE {{{{ rec_app_db_password_file }}}}"
"""


def password_file_for(tmp_path: Path, inventory: Path) -> str:
    play = tmp_path / "pw.yml"
    play.write_text(PASSWORD_FILE_PLAY.format(
        defaults=REPO / "ansible/roles/rec_app/defaults/main.yml"))
    r = playbook("-i", str(inventory), str(play), "-e",
                 json.dumps({"ansible_connection": "local", "role_path": str(tmp_path)}))
    assert r.returncode == 0, r.stdout[-2000:]
    line = next(s for s in r.stdout.split('"') if s.startswith("PASSWORD_FILE "))
    return line.split(" ", 1)[1]


def test_two_inventories_in_folders_of_the_same_name_get_their_own_password(tmp_path):
    paths = []
    for parent in ("client-a", "client-b"):
        inv = tmp_path / parent / "droplet"
        inv.mkdir(parents=True)
        (inv / "hosts.yml").write_text("all:\n  hosts:\n    h1:\n")
        paths.append(password_file_for(tmp_path, inv))
    a, b = paths
    assert a != b
    assert Path(a).parent.name.startswith("droplet-") and Path(b).parent.name.startswith("droplet-")
    assert Path(a).name == "db_password"
    # stable: the same inventory always gets the same file
    assert password_file_for(tmp_path, tmp_path / "client-a" / "droplet") == a


SERIES_PLAY = """
- hosts: rec_app
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {name: rec_app, tasks_from: series}
"""


def series_check(tmp_path: Path, hosts: dict[str, list[str]], followed: list[str]):
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": {"rec_app": {
        "hosts": {h: {"rec_app_market_series": s} for h, s in hosts.items()},
        "vars": {"rec_app_market_series_followed": followed,
                 "ansible_connection": "local"}}}}}))
    play = tmp_path / "series.yml"
    play.write_text(SERIES_PLAY)
    return playbook("-i", str(inv), str(play))


@pytest.mark.parametrize(("hosts", "followed", "problem"), [
    ({"app1": ["KXBTCD"], "app2": ["KXETHD"]}, ["KXBTCD", "KXETHD"], None),
    ({"app1": ["KXBTCD", "KXETHD"], "app2": []}, ["KXBTCD", "KXETHD"], None),
    ({"app1": ["KXBTCD"], "app2": ["KXBTCD", "KXETHD"]}, ["KXBTCD", "KXETHD"],
     "followed by more than one host: KXBTCD"),
    ({"app1": ["KXBTCD"], "app2": []}, ["KXBTCD", "KXETHD"], "followed by no host: KXETHD"),
    ({"app1": ["KXBTCD"], "app2": ["KXSOLD"]}, ["KXBTCD"],
     "not in rec_app_market_series_followed: KXSOLD"),
    ({"app1": ["KXBTCD"], "app2": ["KXBTCD"]}, [], "followed by more than one host: KXBTCD"),
])
def test_app_hosts_split_the_series_with_no_overlap_and_no_gap(tmp_path, hosts, followed,
                                                               problem):
    r = series_check(tmp_path, hosts, followed)
    if problem is None:
        assert r.returncode == 0, r.stdout[-3000:]
    else:
        assert r.returncode != 0
        assert problem in r.stdout, r.stdout[-3000:]


def test_the_multi_inventory_splits_the_series_between_its_two_app_hosts(tmp_path):
    play = tmp_path / "series.yml"
    play.write_text(SERIES_PLAY)
    r = playbook("-i", str(REPO / "inventories/multi"), str(play), "-e", "ansible_connection=local")
    assert r.returncode == 0, r.stdout[-3000:]
    assert "series per host" in r.stdout and "rec-app2" in r.stdout


def test_the_series_reach_each_host_as_rec_market_feed_series():
    import jinja2
    template = (REPO / "ansible/roles/rec_app/templates/rec.env.j2").read_text()
    line = next(ln for ln in template.splitlines() if ln.startswith("REC_MARKET_FEED_SERIES="))
    out = jinja2.Template(line).render(rec_app_market_series=["KXBTCD", "KXETHD"])
    assert out == "REC_MARKET_FEED_SERIES=KXBTCD,KXETHD"


def test_the_series_setting_the_role_writes_is_a_rec_setting():
    """The per-host split lands in a setting the market feed really reads."""
    from app.config import Settings

    text = (Path(__file__).resolve().parent.parent
            / "ansible/roles/rec_app/templates/rec.env.j2").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("REC_MARKET_FEED_SERIES="))
    assert line.split("=", 1)[0].removeprefix("REC_").lower() in Settings.model_fields


SHARE_PLAY = """
- hosts: rec_app
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {{name: rec_app, tasks_from: share, public: true}}
    - ansible.builtin.template:
        src: {template}
        dest: "{out}/{{{{ inventory_hostname }}}}.env"
        mode: "0600"
      delegate_to: localhost
"""


def test_a_host_with_a_share_of_the_services_uses_the_first_hosts_simulator(tmp_path):
    """Two app hosts in sim mode, one exchange: app2 runs only market-feed; its rec.env points
    it at app1's simulator, which listens for it; the settings give each host its units."""
    from app import config, services

    hosts = {"app1": {"ansible_default_ipv4": {"address": "192.0.2.11"}},
             "app2": {"ansible_default_ipv4": {"address": "192.0.2.12"},
                      "rec_app_services": ["market-feed"]}}
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": {"rec_app": {
        "hosts": hosts, "vars": {"ansible_connection": "local"}}}}}))
    play = tmp_path / "share.yml"
    play.write_text(SHARE_PLAY.format(
        template=REPO / "ansible/roles/rec_app/templates/rec.env.j2", out=tmp_path))
    r = playbook("-i", str(inv), str(play))
    assert r.returncode == 0, r.stdout[-3000:]

    def settings(host: str) -> config.Settings:
        env = dict(ln.split("=", 1) for ln in (tmp_path / f"{host}.env").read_text().splitlines()
                   if ln and not ln.startswith("#"))
        return config.load({**env, "REC_CONFIG_DIR": str(tmp_path / "none")})

    one, two = settings("app1"), settings("app2")
    assert one.sim_bind_host == "0.0.0.0" and one.services == "" and not one.kalshi_base_url
    assert (two.kalshi_base_url, two.kalshi_ws_url) == (
        "http://192.0.2.11:8090/trade-api/v2", "ws://192.0.2.11:8090/trade-api/ws/v2")
    assert services.describe(two)["units"] == ["rec-migrate.service", "rec-market-feed.service"]
    assert len(services.describe(one)["units"]) == len(services.enabled("sim")) + 1
    feed = services.by_name("market-feed")
    # the unit's IP filter lets app2's feed reach app1's simulator, and app1's simulator is
    # reached from app2 (no filter on it)
    assert "192.0.2.11" in services.ip_allow(feed, two)
    assert services.ip_allow(services.by_name("exchange-sim"), one) is None


def test_a_host_without_the_simulator_needs_another_that_runs_it(tmp_path):
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": {"rec_app": {
        "hosts": {"app1": {"rec_app_services": ["market-feed"]}},
        "vars": {"ansible_connection": "local"}}}}}))
    play = tmp_path / "share.yml"
    play.write_text(SHARE_PLAY.format(template="/nonexistent", out=tmp_path))
    r = playbook("-i", str(inv), str(play))
    assert r.returncode != 0
    assert "no rec_app host runs it" in r.stdout, r.stdout[-3000:]
