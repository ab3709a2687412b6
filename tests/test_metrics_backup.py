"""The backup job's metrics file (rec_backup.prom, app/db/backup_job.py), on the real
PostgreSQL fixture: written after a good run, by rec's `rec backup run` and by the db host's
job under the system Python; never a failed backup because of it."""

from __future__ import annotations

import stat
import subprocess
import time
from pathlib import Path

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from tests import test_backup as tb
from tests.test_backup import JOB, role_env, runs

books, backup_role = tb.books, tb.backup_role  # its fixtures


def backup_samples(directory: Path) -> dict[str, tuple[dict, float]]:
    text = (directory / "rec_backup.prom").read_text()
    return {s.name: (s.labels, s.value) for f in text_string_to_metric_families(text)
            for s in f.samples}


def assert_written_for(directory: Path, dump: Path) -> None:
    got = backup_samples(directory)
    assert {labels["service"] for labels, _ in got.values()} == {"backup"}
    assert got["rec_backup_last_size_bytes"][1] == dump.stat().st_size
    assert abs(got["rec_backup_last_success_timestamp_seconds"][1] - time.time()) < 120
    assert 0 < got["rec_backup_last_duration_seconds"][1] < 120
    assert stat.S_IMODE((directory / "rec_backup.prom").stat().st_mode) == 0o644


def test_rec_backup_run_writes_rec_backup_prom_into_the_metrics_dir(books, tmp_path):
    metrics = Path(books.env["REC_STATE_DIR"]) / "metrics"
    metrics.mkdir()
    r = books.rec("backup", "run", "--dir", str(tmp_path / "manual"))
    assert r.returncode == 0, r.stderr
    [dump] = (tmp_path / "manual").iterdir()
    assert_written_for(metrics, dump)


def run_system_job(db, *args: str, pythonpath: Path | None = None):
    env = role_env(db)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(["/usr/bin/python3", str(JOB), *args], env=env, cwd="/",
                          capture_output=True, text=True, timeout=120)


def test_the_db_hosts_job_writes_it_with_prometheus_client_installed(books, tmp_path):
    # python3-prometheus-client installed: the package alone on the system Python's path
    site = tmp_path / "site"
    site.mkdir()
    (site / "prometheus_client").symlink_to(Path(prometheus_client.__file__).parent)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    r = run_system_job(books.db, "--dir", str(tmp_path / "b"), "--metrics-dir", str(metrics),
                       pythonpath=site)
    assert r.returncode == 0, r.stderr
    [dump] = (tmp_path / "b").iterdir()
    assert_written_for(metrics, dump)


def test_a_backup_whose_metrics_cannot_be_written_still_succeeds_with_a_warning(books,
                                                                                   tmp_path):
    # a db host without python3-prometheus-client (a package that fails to import)
    site = tmp_path / "site"
    site.mkdir()
    (site / "prometheus_client.py").write_text("raise ImportError('not installed')\n")
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    r = run_system_job(books.db, "--dir", str(tmp_path / "b"), "--metrics-dir", str(metrics),
                       pythonpath=site)
    assert r.returncode == 0, r.stderr
    assert "prometheus_client not installed" in r.stderr
    assert not (metrics / "rec_backup.prom").exists()
    assert [row[1] for row in runs(books.db)] == ["ok"]
    # a host with no metrics directory (a db host that is no app host): no file, no noise
    r = run_system_job(books.db, "--dir", str(tmp_path / "b2"), "--metrics-dir",
                       str(tmp_path / "absent"))  # another dir: two dumps in one second
    assert r.returncode == 0 and "metrics" not in r.stderr
    assert not (tmp_path / "absent").exists()
