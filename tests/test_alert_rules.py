"""rec's Prometheus alert rules (ansible/roles/rec_monitoring/templates/rec-alerts.yml.j2),
rendered with the role's defaults as the role renders them, checked and unit-tested by
Prometheus' own promtool (Debian's `prometheus` package: scripts/dev_prereqs installs it).
No skip when promtool is missing: the rules would go untested."""
import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

ROLE = Path(__file__).resolve().parent.parent / "ansible/roles/rec_monitoring"
TEMPLATE = ROLE / "templates/rec-alerts.yml.j2"
TESTS = ROLE / "templates/rec-alerts.test.yml"


def render_rules(dest: Path, **overrides) -> Path:
    """The rules file as the role writes it (same delimiters), next to a copy of its tests."""
    values = yaml.safe_load((ROLE / "defaults/main.yml").read_text()) | overrides
    env = jinja2.Environment(variable_start_string="[[", variable_end_string="]]",
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    (dest / "rec-alerts.yml").write_text(env.from_string(TEMPLATE.read_text()).render(**values))
    shutil.copy(TESTS, dest / TESTS.name)
    return dest


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("promtool")
    assert exe, "promtool not found: install Debian's prometheus package (scripts/dev_prereqs)"
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_rules_are_valid_and_pass_their_tests(tmp_path):
    d = render_rules(tmp_path)
    check = promtool("check", "rules", "rec-alerts.yml", cwd=d)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 11 rules found" in check.stdout
    run = promtool("test", "rules", TESTS.name, cwd=d)
    assert run.returncode == 0, run.stdout + run.stderr


# each threshold and duration the tests pin: one step off, and the rule's test must fail
@pytest.mark.parametrize(("variable", "value", "alert"), [
    ("rec_monitoring_unit_failed_for", "2m", "RecUnitFailed"),
    ("rec_monitoring_restarts_max", 4, "RecUnitRestartLoop"),
    ("rec_monitoring_restarts_max", 2, "RecUnitRestartLoop"),
    ("rec_monitoring_alert_for", "1m", "RecExporterDown"),
    ("rec_monitoring_feed_stale_seconds", 119, "RecFeedStale"),
    ("rec_monitoring_feed_stale_seconds", 121, "RecFeedStale"),
    ("rec_monitoring_index_stale_seconds", 119, "RecIndexStale"),
    ("rec_monitoring_textfile_max_age_seconds", 59, "RecMetricsNotRewritten"),
    ("rec_monitoring_textfile_max_age_seconds", 120, "RecMetricsNotRewritten"),
    ("rec_monitoring_in_doubt_max_age_seconds", 59, "RecOrderInDoubt"),
    ("rec_monitoring_in_doubt_max_age_seconds", 61, "RecOrderInDoubt"),
    ("rec_monitoring_backup_max_age_seconds", 93599, "RecBackupTooOld"),
    ("rec_monitoring_backup_max_age_seconds", 97200, "RecBackupTooOld"),
    ("rec_monitoring_backup_max_age_seconds", 97201, "RecBackupMissing"),
    ("rec_monitoring_disk_max_percent", 79, "RecDiskFull"),
    ("rec_monitoring_disk_max_percent", 81, "RecDiskFull"),
])
def test_a_threshold_off_by_one_step_fails_its_rule_test(tmp_path, variable, value, alert):
    """Not only the annotation's text (it names the limit): which alerts fire must change."""
    d = render_rules(tmp_path, **{variable: value})
    run = promtool("test", "rules", TESTS.name, cwd=d)
    assert run.returncode != 0
    assert alert in firing_differs(run.stdout + run.stderr), run.stdout + run.stderr


def firing_differs(report: str) -> set[str]:
    """Alerts whose expected and actual label sets differ in a failed promtool test report
    (each failure reads `alertname: X, time: T, exp:[... Labels:{...} ...], got:[...]`)."""
    def labels(part: str) -> set[str]:
        return set(re.findall(r"Labels:\{[^}]*\}", part))

    out = set()
    for chunk in report.split("alertname: ")[1:]:
        expected, _, got = chunk.partition("got:")
        if labels(expected) != labels(got):
            out.add(chunk.split(",", 1)[0])
    return out
