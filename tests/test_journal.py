"""rec-journal over real journal files: `rec run journal` reads a journal directory with
journalctl (written here by systemd-journal-remote from the journal export format, as the
system's journald would have), follows it, and exports each rec unit's last lines; rec-web's
Services page reads that export."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.web.systemd import journal_tails

JOURNAL_REMOTE = Path("/lib/systemd/systemd-journal-remote")
BOOT = "b" * 32
pytestmark = pytest.mark.skipif(not JOURNAL_REMOTE.exists(),
                                reason="scripts/dev_prereqs installs systemd-journal-remote")


class Journal:
    """A journal directory the test writes entries into (one new file per batch)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.mkdir()
        self.batches = 0
        self.mono = 0

    def write(self, *entries: dict[str, str]) -> None:
        self.batches += 1
        now = int(time.time() * 1e6)
        text = ""
        for i, fields in enumerate(entries):
            self.mono += 1
            head = {"__REALTIME_TIMESTAMP": str(now + i), "__MONOTONIC_TIMESTAMP": str(self.mono),
                    "_BOOT_ID": BOOT}
            text += "".join(f"{k}={v}\n" for k, v in (head | fields).items()) + "\n"
        export = self.path.parent / f"batch{self.batches}.export"
        export.write_text(text)
        subprocess.run([str(JOURNAL_REMOTE), "-o", str(self.path / f"b{self.batches}.journal"),
                        str(export)], check=True, capture_output=True, timeout=30)


def line(unit: str, pid: int, message: str) -> dict[str, str]:
    ident = unit.removesuffix(".service")
    return {"_SYSTEMD_UNIT": unit, "SYSLOG_IDENTIFIER": ident, "_PID": str(pid),
            "MESSAGE": message}


def started_by_systemd(unit: str) -> dict[str, str]:
    return {"_SYSTEMD_UNIT": "init.scope", "UNIT": unit, "SYSLOG_IDENTIFIER": "systemd",
            "_PID": "1", "MESSAGE": f"Started {unit}."}


def export_when(path: Path, condition, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        if path.exists():
            body = json.loads(path.read_text())
            if condition(body):
                return body
        assert time.monotonic() < deadline, f"export never matched: {path.read_text()}"
        time.sleep(0.1)


def test_the_rec_units_last_lines_are_exported_followed_and_read_by_the_services_page(
        rec_home, start_service, tmp_path):
    journal = Journal(tmp_path / "journal-files")
    journal.write(*[line("rec-web.service", 42, f"web line {i}") for i in range(5)],
                  started_by_systemd("rec-market-feed.service"),
                  line("ssh.service", 7, "Accepted publickey for root"),  # not a rec unit
                  line("rec-market-feed.service", 43, "following 12 markets"))
    export = tmp_path / "run" / "tail.json"
    rec_home.env.update(REC_JOURNAL_DIRECTORY=str(journal.path), REC_JOURNAL_LINES="3",
                        REC_JOURNAL_EXPORT_PATH=str(export), REC_JOURNAL_EXPORT_INTERVAL_SEC="0.2")
    svc = start_service(rec_home, "journal")
    svc.notify.wait_for("READY", "1", timeout=30)

    body = json.loads(export.read_text())  # written before READY
    units = body["units"]
    assert set(units) == {"rec-web.service", "rec-market-feed.service"}  # no ssh, no others
    assert [x.split(": ", 1)[1] for x in units["rec-web.service"]] == [
        "web line 2", "web line 3", "web line 4"]  # the last 3, oldest first
    assert units["rec-web.service"][0].split(" ", 1)[1] == "rec-web[42]: web line 2"
    assert [x.split(" ", 1)[1] for x in units["rec-market-feed.service"]] == [
        "systemd[1]: Started rec-market-feed.service.", "rec-market-feed[43]: following 12 markets"]
    assert oct(export.stat().st_mode & 0o777) == "0o640"
    assert any("exporting the last 3 lines of 2 units" in s for s in svc.notify.statuses())

    # new entries are followed and exported, each once
    journal.write(line("rec-web.service", 42, "web line 5"),
                  line("rec-account-sync.service", 44, "initial sync: fills page 3"))
    body = export_when(export, lambda b: "rec-account-sync.service" in b["units"])
    assert [x.split(": ", 1)[1] for x in body["units"]["rec-web.service"]] == [
        "web line 3", "web line 4", "web line 5"]
    assert body["units"]["rec-account-sync.service"][0].endswith(
        "rec-account-sync[44]: initial sync: fills page 3")

    # rec-web's reading of it: lines per unit, and why there are none
    tails = journal_tails(export, ["rec-web.service", "rec-price-feed.service"])
    assert tails["rec-web.service"] == (body["units"]["rec-web.service"], None)
    assert tails["rec-price-feed.service"] == ([], "no journal lines for this unit yet")
    later = datetime.now(UTC) + timedelta(minutes=10)
    lines, note = journal_tails(export, ["rec-web.service"], now=later)["rec-web.service"]
    assert lines and note.startswith("rec-journal's export is 6")
    assert svc.terminate() == 0


def test_without_the_export_the_services_page_says_why(tmp_path):
    missing = tmp_path / "nope.json"
    assert journal_tails(missing, ["rec-web.service"]) == {"rec-web.service": (
        [], f"no journal export at {missing}: is rec-journal.service running?")}
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    (lines, note), = journal_tails(broken, ["rec-web.service"]).values()
    assert lines == [] and note.startswith(f"journal export {broken} unreadable: JSONDecodeError")


def test_an_export_directory_that_is_not_there_is_a_config_error(rec_home, start_service,
                                                                  tmp_path):
    rec_home.env.update(REC_JOURNAL_EXPORT_PATH=str(tmp_path / "absent" / "tail.json"))
    svc = start_service(rec_home, "journal")
    assert svc.wait(timeout=15) == 78
    assert f"journal_export_path: {tmp_path / 'absent'} is not a directory" in svc.output
