"""The roles' own code: rec_services' modules (library/) on real files (which unit files a run
writes, which rec units it removes because it did not render them; systemctl itself is
exercised by Molecule's verify, a service added then removed), and what rec_postgres takes
as data."""

from __future__ import annotations

import grp
import importlib.util
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parent.parent / "ansible/roles/rec_services"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rec_units():
    # the modules import their shared helpers as Ansible ships them to the target
    _load(ROLE / "module_utils/rec_systemd.py", "ansible.module_utils.rec_systemd")
    return _load(ROLE / "library/rec_units.py", "rec_units")


@pytest.fixture
def unit_dir(tmp_path):
    for name in ("rec.target", "rec-migrate.service", "rec-web.service", "rec-gone.service",
                 "rec-web.socket", "rec-failure@.service", "ssh.service",
                 "rec-web.service.d/override.conf", "recorder.service",
                 "rec.target.wants/rec-web.service"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"[Unit]\nDescription={name}\n")
    return tmp_path


def test_every_rec_unit_not_rendered_this_run_is_stale(rec_units, unit_dir):
    rendered = {n: "" for n in ("rec.target", "rec-migrate.service", "rec-web.service",
                                "rec-failure@.service")}
    # rec-gone.service: a service deleted from the registry; rec-web.socket: rec-web now binds
    # loopback (no socket activation); the operator's drop-in folder, another package's units
    # and rec.target's wants folder are not the role's to remove
    assert rec_units.stale(str(unit_dir), rendered) == ["rec-gone.service", "rec-web.socket"]
    assert rec_units.stale(str(unit_dir), {}) == sorted(
        ["rec.target", "rec-migrate.service", "rec-web.service", "rec-gone.service",
         "rec-web.socket", "rec-failure@.service"])


def test_only_files_whose_bytes_differ_are_written(rec_units, unit_dir):
    same = (unit_dir / "rec-web.service").read_text()
    files = {"rec-web.service": same, "rec-migrate.service": "[Unit]\nchanged\n",
             "rec-new.service": "[Unit]\nnew\n"}
    assert rec_units.differing(str(unit_dir), files) == ["rec-migrate.service",
                                                         "rec-new.service"]
    rec_units.write(str(unit_dir), "rec-new.service", files["rec-new.service"])
    assert (unit_dir / "rec-new.service").read_text() == "[Unit]\nnew\n"
    assert (unit_dir / "rec-new.service").stat().st_mode & 0o777 == 0o644
    assert rec_units.differing(str(unit_dir), files) == ["rec-migrate.service"]
    assert not [p for p in unit_dir.iterdir() if p.name.startswith(".")]  # no temp file left


def test_check_mode_reports_without_touching_anything(rec_units, unit_dir):
    before = sorted(p.name for p in unit_dir.iterdir())
    result = rec_units.apply(str(unit_dir), {"rec.target": "x"}, [], check_mode=True)
    assert result["changed"] and result["written"] == ["rec.target"]
    assert "rec-gone.service" in result["removed"]
    assert sorted(p.name for p in unit_dir.iterdir()) == before


def test_check_mode_names_the_users_it_would_create(rec_units, unit_dir):
    files = {"rec-web.service": "[Service]\nUser=rec-no-such-user-xq\n",
             "rec-migrate.service": "[Service]\nUser=root\n"}
    assert rec_units.users(files) == ["rec-no-such-user-xq", "root"]
    result = rec_units.apply(str(unit_dir), files, [], check_mode=True)
    assert result["users_created"] == ["rec-no-such-user-xq"] and result["changed"]
    with pytest.raises(KeyError):
        pwd.getpwnam("rec-no-such-user-xq")  # check mode created nobody


@pytest.fixture(scope="module")
def rec_files():
    return _load(ROLE.parent.parent / "library/rec_files.py", "rec_files")


def test_rec_app_files_and_directories_change_only_where_they_differ(rec_files, tmp_path):
    """rec_app's group, user, directories and files in one round trip (a task each cost ~0.3 s
    on every re-converge): a second run changes nothing; a mode is set to all its digits
    (a setgid bit cleared as well as set); check mode touches nothing."""
    me = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    spool, conf = str(tmp_path / "spool"), str(tmp_path / "rec.env")
    dirs = [{"path": spool, "owner": me, "group": group, "mode": "2770"}]
    files = [{"path": conf, "content": "REC_X=1\n", "owner": me, "group": group, "mode": "0640"}]
    planned = rec_files.apply(dirs, files, check_mode=True)
    assert planned["changed_paths"] == [spool, conf] and not os.path.exists(spool)
    assert rec_files.apply(dirs, files, check_mode=False)["changed_paths"] == [spool, conf]
    assert oct(os.stat(spool).st_mode & 0o7777) == "0o2770"
    assert Path(conf).read_text() == "REC_X=1\n" and os.stat(conf).st_mode & 0o7777 == 0o640
    assert rec_files.apply(dirs, files, check_mode=False) == {
        "changed": False, "changed_paths": [], "diff": []}
    os.chmod(conf, 0o644)  # only the mode differs: set, content left as it is
    dirs[0]["mode"] = "0770"  # the setgid bit goes
    files.append({"path": str(tmp_path / "new"), "content": "n\n", "owner": me,
                  "group": group, "mode": "0600"})
    result = rec_files.apply(dirs, files, check_mode=False)
    assert result["changed_paths"] == [spool, conf, str(tmp_path / "new")]
    assert [d["after"] for d in result["diff"]] == ["n\n"]  # the content diff: the new file only
    assert os.stat(spool).st_mode & 0o7777 == 0o770 and os.stat(conf).st_mode & 0o7777 == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left
    # a file the one shared user left 0600 in the spool: the group may read and replace it
    old = Path(spool) / "rec-web.service.json"
    old.write_text("{}")
    old.chmod(0o600)
    share = {"owner": me, "dirs": [spool]}
    assert rec_files.apply([], [], True, group_rw=share)["changed_paths"] == [str(old)]
    assert old.stat().st_mode & 0o777 == 0o600  # check mode
    assert rec_files.apply([], [], False, group_rw=share)["changed_paths"] == [str(old)]
    assert old.stat().st_mode & 0o777 == 0o660
    assert not rec_files.apply([], [], False, group_rw=share)["changed"]


def render(template: Path, **variables) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(template.parent), trim_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["comment"] = lambda text: "# " + text
    return env.get_template(template.name).render(ansible_managed="Ansible managed", **variables)


def test_rec_postgres_takes_extra_hba_entries_and_settings_as_data():
    templates = ROLE.parent / "rec_postgres/templates"
    base = {"rec_postgres_db_name": "rec", "rec_postgres_db_user": "rec",
            "rec_postgres_tls": False, "rec_postgres_client_addresses": []}
    hba = render(templates / "pg_hba.conf.j2", **base, rec_postgres_hba_entries=[
        {"type": "hostssl", "database": "rec", "user": "grafana", "address": "192.0.2.7/32",
         "method": "scram-sha-256"},
        {"type": "local", "database": "rec", "user": "backup", "method": "peer"}])
    lines = [ln.split() for ln in hba.splitlines() if ln and not ln.startswith("#")]
    assert lines[-2:] == [["hostssl", "rec", "grafana", "192.0.2.7/32", "scram-sha-256"],
                          ["local", "rec", "backup", "peer"]]
    conf = render(templates / "rec.conf.j2", rec_postgres_listen_addresses=["localhost"],
                  rec_postgres_port=5432, rec_postgres_tls=False,
                  rec_postgres_settings={"shared_buffers": "256MB", "work_mem": "it's"})
    assert conf.splitlines()[-2:] == ["shared_buffers = '256MB'", "work_mem = 'it''s'"]


# ---- the units as the role renders them (tasks/main.yml), from `rec services --json` -------

def render_every_unit(described: dict) -> dict[str, str]:
    """File name -> content of every service unit the role writes (rec.target, the .path and
    the .socket units aside), with an instance of the rec-failure@ template."""
    enabled = [s for s in described["services"] if s["enabled"]]
    common = {**yaml.safe_load((ROLE / "defaults/main.yml").read_text()),
              "rec_services__registry": described,
              "rec_services__all_units": described["units"],
              "rec_services__db_ip_allow": next(
                  (s["ip_allow"] for s in enabled if s["database"] and not s["exchange"]
                   and not s["public"] and s["ip_allow"]), [])}
    templates = ROLE / "templates"
    files = {name: render(templates / f"{name}.j2", **common)
             for name in ("rec-migrate.service", "rec-failures.service")}
    files["rec-failure@rec-web.service"] = render(templates / "rec-failure@.service.j2",
                                                  **common)
    for s in enabled:
        files[s["unit"]] = render(templates / "rec-service.service.j2", **common, unit=s)
    return files


# the settings an inventory gives rec.env (rec_app/templates/rec.env.j2) that change the units
INVENTORY_ENV = {"rec_app_bind_host": "REC_BIND_HOST", "rec_app_account_mode": "REC_ACCOUNT_MODE"}


def inventory_env(name: str) -> dict[str, str]:
    group_vars = yaml.safe_load(
        (ROLE.parents[2] / "inventories" / name / "group_vars/rec_app.yml").read_text())
    return {env: str(group_vars[var]) for var, env in INVENTORY_ENV.items() if var in group_vars}


# the role's defaults (rec-web on loopback) and the dev guest's (scripts/up: rec-web on every
# address, for podman's port mapping, so systemd listens for it: rec-web.socket)
@pytest.fixture(params=["defaults", "dev"])
def every_unit(request, rec_home) -> dict[str, str]:
    if request.param != "defaults":
        rec_home.env.update(inventory_env(request.param))
    r = rec_home.rec("services", "--json")
    assert r.returncode == 0, r.stderr
    return render_every_unit(json.loads(r.stdout))


def test_every_unit_runs_as_a_user_of_its_own(every_unit, rec_units):
    """Issue 21 item 6: every unit ran as `rec`, so any `rec` process read every unit's
    credentials (/run/credentials/<unit>/ carries user:<User=>:r--). Now each unit's user is
    its own name; the two failure recorders share one."""
    users = {name: re.findall(r"^User=(.*)$", text, re.M) for name, text in every_unit.items()}
    expected = {name: ["rec-failures" if name.startswith("rec-failure")
                       else name.removesuffix(".service")] for name in every_unit}
    assert users == expected
    assert rec_units.users(every_unit) == sorted({u for [u] in expected.values()})
    for name, text in every_unit.items():
        # StateDirectory=rec would chown the shared /var/lib/rec to each unit's user in turn
        # (a directory of the unit's own, rec-migrate's /var/lib/rec-migrate, is not shared)
        assert re.findall(r"^StateDirectory=(.*)$", text, re.M) in (
            [], [name.removesuffix(".service")]), name
        assert re.findall(r"^(Group|ReadWritePaths|UMask)=(.*)$", text, re.M) == [
            ("Group", "rec"), ("ReadWritePaths", "/var/lib/rec"), ("UMask", "0027")], name


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_every_unit_exposure_is_at_most_0_9(every_unit, tmp_path):
    """`systemd-analyze security` of every rendered unit (offline: the unit files as written;
    Molecule's verify measures the loaded units). rec-web and rec-migrate scored 1.1."""
    for name, text in every_unit.items():
        (tmp_path / name).write_text(text)
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                        *(str(tmp_path / name) for name in every_unit)],
                       capture_output=True, text=True, timeout=120)
    levels = {m[0]: float(m[1]) for m in re.findall(
        r"Overall exposure level for (\S+): ([0-9.]+)", r.stdout)}
    assert sorted(levels) == sorted(every_unit), r.stdout + r.stderr
    assert {n: v for n, v in levels.items() if v > 0.9} == {}
