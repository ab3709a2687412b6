"""What a hostile look at the runtime found (issue 10), each as a test that failed before."""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from app.db import migrate
from app.runtime import logs, restarts
from testkit.net import free_port

REPO = Path(__file__).resolve().parent.parent


# ---- one journal record per event ---------------------------------------------------------------

def parse_native(datagram: bytes) -> dict[str, str]:
    """journald's native protocol, as journald reads it."""
    fields, i = {}, 0
    while i < len(datagram):
        nl = datagram.index(b"\n", i)
        line = datagram[i:nl]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode()
            i = nl + 1
        else:
            size = struct.unpack("<Q", datagram[nl + 1:nl + 9])[0]
            fields[line.decode()] = datagram[nl + 9:nl + 9 + size].decode()
            i = nl + 9 + size + 1
    return fields


@pytest.fixture
def journal_socket():
    path = Path(tempfile.mkdtemp(prefix="rec-journal-")) / "socket"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield path, sock
    sock.close()
    path.unlink(missing_ok=True)
    path.parent.rmdir()


def test_a_traceback_is_one_journal_record_with_fields(journal_socket):
    path, sock = journal_socket
    handler = logs.JournalHandler("rec-web", "web", path=str(path))
    logger = logging.getLogger("app.web.test")
    logger.addHandler(handler)
    try:
        try:
            {}["missing"]
        except KeyError:
            logger.error("lookup failed", exc_info=True)
    finally:
        logger.removeHandler(handler)
        handler.close()
    entry = parse_native(sock.recv(65536))
    with pytest.raises(TimeoutError):
        sock.settimeout(0.2)
        sock.recv(65536)  # exactly one record for the event
    assert entry["PRIORITY"] == "3" and entry["SYSLOG_IDENTIFIER"] == "rec-web"
    assert entry["REC_SERVICE"] == "web" and entry["LOGGER"] == "app.web.test"
    assert entry["CODE_FILE"] == __file__ and entry["CODE_FUNC"] == (
        "test_a_traceback_is_one_journal_record_with_fields")
    assert entry["EXCEPTION_TYPE"] == "KeyError"
    assert entry["MESSAGE"].startswith("web.test: lookup failed\nTraceback")
    assert "KeyError: 'missing'" in entry["MESSAGE"] and "KeyError" in entry["EXCEPTION"]


def test_journal_handler_falls_back_to_lines_when_the_socket_goes(journal_socket, capsys):
    path, sock = journal_socket
    lines = logging.StreamHandler(sys.stdout)
    lines.setFormatter(logs.JournalFormatter(with_time=False))
    handler = logs.JournalHandler("rec-web", "web", path=str(path), fallback=lines)
    sock.close()
    path.unlink()
    handler.emit(logging.LogRecord("app.x", logging.WARNING, __file__, 1, "still here", (),
                                   None))
    handler.close()
    assert "<4>x: still here" in capsys.readouterr().out


def test_journal_is_used_only_when_journal_stream_names_our_output(tmp_path):
    out = os.fstat(sys.stdout.fileno())
    assert logs.journal_stream_is_ours({"JOURNAL_STREAM": f"{out.st_dev}:{out.st_ino}"}) or \
        logs.journal_stream_is_ours({"JOURNAL_STREAM": "{}:{}".format(
            *(lambda s: (s.st_dev, s.st_ino))(os.fstat(sys.stderr.fileno())))})
    assert not logs.journal_stream_is_ours({"JOURNAL_STREAM": "1:2"})
    assert not logs.journal_stream_is_ours({})


def test_a_config_error_before_logging_is_one_record_with_the_service_fields(journal_socket):
    """The exit-78 line (written before logging is set up) carries REC_SERVICE and CODE_*
    like every other record; it used to be a bare stderr line without fields."""
    path, sock = journal_socket
    err = os.fstat(sys.stderr.fileno())
    logs.emergency("config error: REC_WEB_PORT: not a number", ident="rec-web", service="web",
                   path=str(path), environ={"JOURNAL_STREAM": f"{err.st_dev}:{err.st_ino}"})
    entry = parse_native(sock.recv(65536))
    assert entry["PRIORITY"] == "3" and entry["SYSLOG_IDENTIFIER"] == "rec-web"
    assert entry["REC_SERVICE"] == "web" and entry["CODE_FILE"] == __file__
    assert entry["CODE_FUNC"].startswith("test_a_config_error_before_logging_is_one_record")
    assert entry["MESSAGE"] == "runtime: config error: REC_WEB_PORT: not a number"


def test_under_systemd_the_abort_dump_goes_to_a_file_not_the_journal_stream(tmp_path):
    """faulthandler writes from the signal handler: on the unit's journal stream that was one
    info record per line. Under systemd it writes the dump to the state directory."""
    import subprocess

    code = ("import os, sys; from pathlib import Path; from app.runtime import crash; "
            "crash.enable(Path(sys.argv[1]), 'web', True); os.abort()")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode < 0 and "Fatal Python error" not in r.stderr
    dump = (tmp_path / "crash" / "web.txt").read_text()
    assert "Fatal Python error: Aborted" in dump and 'File "<string>", line 1' in dump


def test_the_abort_dump_is_one_crit_record_with_the_unit_fields(journal_socket, tmp_path):
    from app.runtime import crash

    path, sock = journal_socket
    dump = crash.dump_path(tmp_path, "web")
    dump.parent.mkdir()
    dump.write_text("Fatal Python error: Aborted\n\nThread 0x1 (most recent call first):\n"
                    '  File "/opt/rec/app/x.py", line 3 in run\n')
    assert crash.report(tmp_path, "web", "rec-web", path=str(path))
    entry = parse_native(sock.recv(65536))
    with pytest.raises(TimeoutError):
        sock.settimeout(0.2)
        sock.recv(65536)  # one record for the whole dump
    assert entry["PRIORITY"] == "2" and entry["REC_SERVICE"] == "web"
    assert entry["SYSLOG_IDENTIFIER"] == "rec-web"
    assert "Fatal Python error: Aborted" in entry["MESSAGE"] and "x.py" in entry["MESSAGE"]
    assert not dump.exists()  # reported once
    assert not crash.report(tmp_path, "web", "rec-web", path=str(path))


# ---- restarts never give up, and back off ---------------------------------------------------

def test_backoff_doubles_then_caps_and_is_forgotten():
    now = 1_000_000.0
    delays = [restarts.Failures(n, now).delay(now) for n in range(0, 8)]
    assert delays == [0, 2, 4, 8, 16, 30, 30, 30]
    assert restarts.Failures(5, now - restarts.FORGET_AFTER_SEC - 1).delay(now) == 0


def test_units_never_give_up_restarting():
    for name in ("rec-service.service.j2", "rec-migrate.service.j2"):
        text = (REPO / "ansible/roles/rec_services/templates" / name).read_text()
        assert "StartLimitIntervalSec=0" in text and "StartLimitBurst" not in text
        # %N: the unit's name without .service (rec-failure@rec-web.service, not
        # rec-failure@rec-web.service.service)
        assert "OnFailure=rec-failure@%N.service" in text
        assert "ExecStopPost={{ rec_services_venv }}/bin/rec unit-failed %n" in text


def test_failed_runs_back_off_the_next_start_and_ready_resets(rec_home, start_service):
    state = Path(rec_home.env["REC_STATE_DIR"])
    env = {**rec_home.env, "SERVICE_RESULT": "exit-code", "EXIT_CODE": "exited",
           "EXIT_STATUS": "1"}
    r = rec_home.rec("unit-failed", "rec-sleepy.service", env=env)
    assert r.returncode == 0
    assert r.stdout.startswith("<2>rec-sleepy.service failed; systemd restarts it (with "
                               "backoff): result=exit-code exited=1; 1 failed run(s) in a row")
    assert restarts.read(state, "sleepy").count == 1
    t0 = time.monotonic()
    svc = start_service(rec_home, "tests.fake_services:SleepyPhases")
    svc.notify.wait_for("READY", "1")
    assert time.monotonic() - t0 >= 2.0  # 1 failure: 2 s
    assert "waiting 2s before starting: 1 failed run(s) in a row" in svc.notify.statuses()
    assert "1 failed run(s) in a row: waiting 2s before starting again" in svc.output
    assert restarts.read(state, "sleepy").count == 0  # READY resets
    assert svc.terminate() == 0


def test_a_clean_stop_is_not_a_failure(rec_home):
    env = {**rec_home.env, "SERVICE_RESULT": "success", "EXIT_CODE": "exited",
           "EXIT_STATUS": "0"}
    r = rec_home.rec("unit-failed", "rec-web.service", env=env)
    assert r.returncode == 0 and r.stdout == ""


def test_a_unit_systemd_gave_up_on_is_recorded_at_crit_with_the_hint(rec_home_db):
    assert rec_home_db.rec("db", "migrate").returncode == 0
    env = {**rec_home_db.env, "MONITOR_SERVICE_RESULT": "exit-code",
           "MONITOR_EXIT_CODE": "exited", "MONITOR_EXIT_STATUS": "78"}
    r = rec_home_db.rec("unit-failed", "rec-web.service", env=env)
    assert r.returncode == 0
    first = r.stdout.splitlines()[0]
    assert first.startswith("<2>rec-web.service has FAILED and systemd will not restart it")
    assert "78/CONFIG" in first and "systemctl reset-failed rec-web" in first
    with psycopg.connect(rec_home_db.db.dsn) as conn:
        rows = conn.execute("SELECT unit, result, exit_status, gave_up FROM unit_failures"
                            ).fetchall()
    assert rows == [("rec-web.service", "exit-code", "78", True)]


def test_a_failure_in_exec_stop_post_reaches_the_database_through_the_spool(rec_home_db):
    """In ExecStopPost= systemd has taken the unit's credentials away (no
    $CREDENTIALS_DIRECTORY, $INVOCATION_ID set): the hook cannot log in, so it spools the
    failure, and `rec unit-failed --drain` (rec-failures.service, which loads the database
    password) records it. Before the spool it printed "not recorded" and nothing reached
    unit_failures."""
    assert rec_home_db.rec("db", "migrate").returncode == 0
    hook_env = {**rec_home_db.env, "SERVICE_RESULT": "signal", "EXIT_CODE": "killed",
                "EXIT_STATUS": "KILL", "INVOCATION_ID": "t"}
    for _ in range(2):
        r = rec_home_db.rec("unit-failed", "rec-coordinator.service", env=hook_env)
        assert r.returncode == 0 and r.stdout.startswith("<2>rec-coordinator.service failed")
    spool = Path(rec_home_db.env["REC_STATE_DIR"]) / "failures"
    assert len(list(spool.glob("*.json"))) == 2
    r = rec_home_db.rec("unit-failed", "--drain")
    assert r.returncode == 0 and "recorded 2 spooled unit failure(s)" in r.stdout, r.stdout
    assert list(spool.iterdir()) == []
    with psycopg.connect(rec_home_db.db.dsn) as conn:
        rows = conn.execute("SELECT unit, result, exit_status, failures_in_a_row, gave_up "
                            "FROM unit_failures ORDER BY id").fetchall()
    assert rows == [("rec-coordinator.service", "signal", "KILL", 1, False),
                    ("rec-coordinator.service", "signal", "KILL", 2, False)]


def test_the_drain_keeps_the_spool_while_the_database_is_away(rec_home):
    hook_env = {**rec_home.env, "SERVICE_RESULT": "watchdog", "EXIT_CODE": "killed",
                "EXIT_STATUS": "ABRT", "INVOCATION_ID": "t"}
    assert rec_home.rec("unit-failed", "rec-web.service", env=hook_env).returncode == 0
    env = {**rec_home.env, "REC_DB_PORT": str(free_port()), "REC_DB_CONNECT_TIMEOUT_SEC": "1"}
    rec_home.credential("db_password", "x")
    r = rec_home.rec("unit-failed", "--drain", env=env)
    assert r.returncode == 1 and "not recorded yet" in r.stdout  # systemd retries the unit
    assert len(list((Path(rec_home.env["REC_STATE_DIR"]) / "failures").glob("*.json"))) == 1


# ---- watchdog -----------------------------------------------------------------------------------

def test_watchdog_pings_only_for_the_pid_systemd_names(rec_home, start_service):
    svc = start_service(rec_home, "tests.fake_services:SleepyPhases", watchdog_usec=200_000,
                        extra_env={"WATCHDOG_PID": "1"})  # not us: systemd watches another PID
    svc.notify.wait_for("READY", "1")
    time.sleep(0.5)  # several intervals (0.1 s) during which pings would have come
    assert not svc.notify.with_key("WATCHDOG")
    assert svc.terminate() == 0


# ---- the migration lock wait fits the unit's start timeout -------------------------------------

def test_migration_lock_wait_is_inside_rec_migrate_start_timeout():
    defaults = yaml.safe_load((REPO / "ansible/roles/rec_services/defaults/main.yml").read_text())
    timeout = defaults["rec_services_migrate_timeout_sec"]
    assert migrate.LOCK_WAIT_SEC + 10 <= timeout, (migrate.LOCK_WAIT_SEC, timeout)
    import inspect

    default = inspect.signature(migrate.migrate).parameters["lock_timeout_sec"].default
    assert default == migrate.LOCK_WAIT_SEC


def test_rec_services_json_reports_timings_for_the_units(rec_home):
    out = json.loads(rec_home.rec("services", "--json").stdout)
    assert out["watchdog_sec"] == 10 and out["start_timeout_sec"] == 90


def test_a_closed_credentials_directory_does_not_stop_the_failure_count(rec_home, tmp_path):
    """In ExecStopPost= systemd may already have closed the unit's credentials directory."""
    closed = tmp_path / "closed-creds"
    closed.mkdir()
    (closed / "db_password").mkdir()  # unreadable as a file, even for root (tests run as root)
    env = {**rec_home.env, "SERVICE_RESULT": "exit-code", "EXIT_CODE": "exited",
           "EXIT_STATUS": "1", "INVOCATION_ID": "t", "CREDENTIALS_DIRECTORY": str(closed)}
    for n in (1, 2):
        r = rec_home.rec("unit-failed", "rec-migrate.service", env=env)
        assert f"{n} failed run(s) in a row" in r.stdout, r.stdout + r.stderr
    assert restarts.read(Path(rec_home.env["REC_STATE_DIR"]), "migrate").count == 2


def test_a_watchdog_kill_leaves_the_blocked_stack_in_the_log(rec_home, start_service):
    """systemd's watchdog kills with SIGABRT: the stack of the blocked code is logged first."""
    import signal

    svc = start_service(rec_home, "tests.fake_services:BlocksLoop",
                        extra_env={"REC_TEST_BLOCK_AFTER": "0.2", "REC_TEST_BLOCK_SEC": "30"})
    svc.notify.wait_for("READY", "1")
    deadline = time.monotonic() + 10
    while "blocking the event loop on purpose" not in svc.output:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    svc.proc.send_signal(signal.SIGABRT)  # what systemd sends on a watchdog timeout
    assert svc.wait(timeout=10) == -signal.SIGABRT
    out = svc.output
    assert "Fatal Python error: Aborted" in out
    assert 'fake_services.py", line' in out and "in run" in out  # where it was stuck
