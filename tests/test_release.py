"""Releases on an app host (ansible/roles/rec_app/library/rec_release.py; docs/bundle.md,
"Releases"): the version a bundle has, which release `current` and `previous` name after a
switch and a rollback, what is kept, what a missing release says; and the restart order the
units' After= gives (the service registry). Installing a venv from a bundle, the old layout's
conversion and systemd's ordered restart run in Molecule's `release` scenario."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODULE = REPO / "ansible/roles/rec_app/library/rec_release.py"


def load(path: Path, name: str):
    """A file of the repository that is not a package module (an Ansible module, a script a
    scenario runs on its guest), imported as ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rr():
    return load(MODULE, "rec_release")


def bundle(path: Path, version: str, extra: bytes = b"") -> Path:
    """A tarball laid out as scripts/wheelhouse lays it out (members sorted by name)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in (("app/__init__.py", extra),
                           ("pyproject.toml", f'[project]\nname = "rec"\nversion = "{version}"\n'
                                              .encode()),
                           ("wheelhouse/x.whl", b"\0" * 4096)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(raw.getvalue()))
    return path


def installed_release(home: Path, version: str) -> None:
    """A release as install() leaves it (its .complete written last), installed now."""
    d = home / "releases" / version
    (d / "venv/bin").mkdir(parents=True)
    (d / ".complete").write_text(version + "\n")
    t = time.time() + len(os.listdir(home / "releases"))  # install order, one second apart
    os.utime(d / ".complete", (t, t))


def test_a_bundle_is_named_by_its_package_version_and_checksum(rr, tmp_path):
    b = bundle(tmp_path / "b.tar.gz", "1.2.3")
    digest = hashlib.sha1(b.read_bytes()).hexdigest()  # what Ansible's copy reports
    assert rr.bundle_version(str(b)) == f"1.2.3-{digest[:12]}"
    other = bundle(tmp_path / "c.tar.gz", "1.2.3", extra=b"# changed\n")
    assert rr.bundle_version(str(other)) != rr.bundle_version(str(b))


def test_switch_then_rollback_moves_current_and_previous(rr, tmp_path):
    for v in ("a", "b"):
        installed_release(tmp_path, v)
    assert rr.make_current(str(tmp_path), "a", 3)["changed"]
    assert (rr.link(str(tmp_path), "current"), rr.link(str(tmp_path), "previous")) == ("a", None)
    out = rr.make_current(str(tmp_path), "b", 3)
    assert (out["current"], out["previous"]) == ("b", "a")
    assert os.path.realpath(tmp_path / "current") == str(tmp_path / "releases/b")
    # rollback.yml: the previous release becomes current; running it again rolls forward
    assert rr.query(str(tmp_path))["previous"] == "a"
    out = rr.make_current(str(tmp_path), "a", 3)
    assert (out["current"], out["previous"]) == ("a", "b")
    again = rr.make_current(str(tmp_path), "a", 3)
    assert not again["changed"] and again["previous"] == "b"


def test_old_releases_go_but_never_current_or_previous(rr, tmp_path):
    for v in ("r1", "r2", "r3", "r4", "r5"):
        installed_release(tmp_path, v)
    rr.make_current(str(tmp_path), "r1", 5)
    rr.make_current(str(tmp_path), "r2", 5)
    # keep 2: the newest two (r4, r5) and current r2 and previous r1: r3 goes
    out = rr.make_current(str(tmp_path), "r2", 2)
    assert out["removed"] == ["releases/r3"]
    assert rr.installed(str(tmp_path)) == ["r1", "r2", "r4", "r5"]
    rr.make_current(str(tmp_path), "r5", 2)  # previous r2, current r5: r1 goes
    assert rr.installed(str(tmp_path)) == ["r2", "r4", "r5"]


def test_a_release_neither_installed_nor_the_bundle_fails_with_one_line(rr, tmp_path):
    installed_release(tmp_path, "0.1.0-aaaaaaaaaaaa")
    rr.make_current(str(tmp_path), "0.1.0-aaaaaaaaaaaa", 3)
    b = bundle(tmp_path / "b.tar.gz", "0.1.0")
    with pytest.raises(rr.Refused) as e:
        rr.present(str(tmp_path), str(b), "0.0.9-bbbbbbbbbbbb")
    msg = str(e.value)
    assert "\n" not in msg and "0.0.9-bbbbbbbbbbbb is not installed" in msg
    assert rr.bundle_version(str(b)) in msg and "0.1.0-aaaaaaaaaaaa" in msg
    # an installed release is switched to without the bundle being it
    out = rr.present(str(tmp_path), str(b), "0.1.0-aaaaaaaaaaaa")
    assert not out["changed"] and not out["switch"]


def test_the_old_layout_is_removed_once_a_release_is_current(rr, tmp_path):
    for item in ("venv/bin", "app", "wheelhouse", ".bundle"):
        (tmp_path / item).mkdir(parents=True)
    for item in ("pyproject.toml", ".bundle/installed", ".bundle/rec-bundle.tar.gz"):
        (tmp_path / item).write_text("x")
    (tmp_path / ".bundle/bundle.tar.gz").write_text("the new layout's bundle")
    installed_release(tmp_path, "v1")
    out = rr.make_current(str(tmp_path), "v1", 3)
    assert {"venv", "app", "wheelhouse", "pyproject.toml", ".bundle/installed",
            ".bundle/rec-bundle.tar.gz"} <= set(out["removed"])
    assert sorted(os.listdir(tmp_path)) == [".bundle", "current", "releases"]
    assert os.listdir(tmp_path / ".bundle") == ["bundle.tar.gz"]


def test_units_stop_trading_before_the_executor_and_the_executor_before_data_in(tmp_path):
    """systemd stops in the reverse of After=: a stop of rec.target (a release switch) stops
    what decides trades before rec-trade-executor, and it before the feeds; a start brings
    the feeds up (READY) before the executor, and the executor before trading."""
    env = {**os.environ, "REC_CONFIG_DIR": str(tmp_path), "REC_ACCOUNT_MODE": "sim"}
    out = subprocess.run([sys.executable, "-m", "app.cli", "services", "--json"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=60, check=True)
    after = {s["unit"]: set(s["after"]) for s in json.loads(out.stdout)["services"]}
    data_in = {"rec-market-feed.service", "rec-account-sync.service", "rec-price-feed.service"}
    assert data_in <= after["rec-trade-executor.service"]
    for unit in ("rec-trade-manager", "rec-trade-supervisor", "rec-auto-entry",
                 "rec-coordinator"):
        assert "rec-trade-executor.service" in after[f"{unit}.service"], unit
    for unit in data_in:
        assert not after[unit] & ({"rec-trade-executor.service"} | data_in), unit


def test_a_release_a_process_runs_from_is_kept(rr, tmp_path):
    """The simulator keeps running across a switch: its release (or the old layout's venv)
    stays until nothing runs from it."""
    for v in ("r1", "r2", "r3", "r4"):
        installed_release(tmp_path, v)
    (tmp_path / "venv/bin").mkdir(parents=True)
    busy = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                              str(tmp_path / d / "bin/rec")]) for d in ("releases/r1/venv", "venv")]
    try:
        # a child shows its own command line only once it has exec'd (before, the parent's)
        deadline = time.monotonic() + 10
        while not all(str(tmp_path) in Path(f"/proc/{p.pid}/cmdline").read_text()
                      for p in busy) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rr.in_use(str(tmp_path)) == {"r1", "venv"}
        rr.make_current(str(tmp_path), "r4", 5)
        out = rr.make_current(str(tmp_path), "r4", 1)  # keep 1: r2 and r3 go, r1 runs
        assert sorted(out["removed"]) == ["releases/r2", "releases/r3"]
        assert (tmp_path / "venv").is_dir()
    finally:
        for p in busy:
            p.kill()
            p.wait()
    out = rr.make_current(str(tmp_path), "r4", 1)
    assert "releases/r1" in out["removed"] and "venv" in out["removed"]


def test_the_handler_stops_each_unit_before_the_units_it_is_ordered_after(tmp_path):
    """rec_app's handler stops the units in one `systemctl stop`, which queues one job per unit
    in the order given: a stop is ordered only against the jobs queued before it, so a unit
    given before the ones ordered After= it stops first (rec-account-sync, listed first by
    ConsistsOf=, once stopped while rec-trade-executor still had orders in flight). The order
    rec_stop gives, from the units' After= as the registry renders them, whatever the listing's
    order: every unit before each unit it is After=."""
    rs = load(REPO / "ansible/roles/rec_app/library/rec_stop.py", "rec_stop")
    env = {**os.environ, "REC_CONFIG_DIR": str(tmp_path), "REC_ACCOUNT_MODE": "sim"}
    out = subprocess.run([sys.executable, "-m", "app.cli", "services", "--json"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=60, check=True)
    after = {s["unit"]: {*s["after"], "network-online.target"}
             for s in json.loads(out.stdout)["services"] if s["enabled"]}
    after["rec-migrate.service"] = {"network-online.target", "postgresql.service"}
    # as ConsistsOf= listed them in the failing run (data in before the executor), and reversed
    listings = [sorted(after), sorted(after, reverse=True)]
    orders = [rs.stop_order({u: after[u] for u in listing}) for listing in listings]
    assert orders[0] == orders[1]
    order = orders[0]
    assert sorted(order) == sorted(after)  # every unit once, no unit outside the set
    for unit, deps in after.items():
        for dep in deps & after.keys():
            assert order.index(unit) < order.index(dep), f"{unit} stops after {dep}"
    pos = order.index
    assert pos("rec-auto-entry.service") < pos("rec-trade-executor.service") \
        < pos("rec-account-sync.service") < pos("rec-migrate.service")
