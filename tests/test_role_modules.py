"""The roles' own code: rec_services' modules (library/) on real files (which unit files a run
writes, which rec units it removes because it did not render them; systemctl itself is
exercised by Molecule's verify, a service added then removed), and what rec_postgres takes
as data."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

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
                 "rec-failure@.service", "ssh.service", "rec-web.service.d/override.conf",
                 "recorder.service", "rec.target.wants/rec-web.service"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"[Unit]\nDescription={name}\n")
    return tmp_path


def test_every_rec_unit_not_rendered_this_run_is_stale(rec_units, unit_dir):
    rendered = {n: "" for n in ("rec.target", "rec-migrate.service", "rec-web.service",
                                "rec-failure@.service")}
    # rec-gone.service: a service deleted from the registry; the operator's drop-in folder,
    # another package's units and rec.target's wants folder are not the role's to remove
    assert rec_units.stale(str(unit_dir), rendered) == ["rec-gone.service"]
    assert rec_units.stale(str(unit_dir), {}) == sorted(
        ["rec.target", "rec-migrate.service", "rec-web.service", "rec-gone.service",
         "rec-failure@.service"])


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
