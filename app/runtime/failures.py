"""``rec unit-failed``: what systemd tells a unit's ``ExecStopPost=`` (every run that ended,
``$SERVICE_RESULT``) or the ``OnFailure=`` unit ``rec-failure@.service`` (a unit systemd gave
up on, ``$MONITOR_SERVICE_RESULT``), turned into one crit journal line, the restart backoff
count (app.runtime.restarts) and a row in ``unit_failures`` for the dashboard.

In ``ExecStopPost=`` systemd has already taken the unit's credentials away (systemd 252: no
``$CREDENTIALS_DIRECTORY`` any more), so the hook cannot log in to the database. It leaves the
failure in the spool (``<state dir>/failures/``, writable inside the sandbox) instead, and
``rec-failures.path`` starts ``rec-failures.service`` (``rec unit-failed --drain``, which
loads the database password) to move the spool into ``unit_failures``; it retries while the
database is away, so no failure is lost.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from app import config
from app.runtime import crash, restarts

EXIT_HINTS = {
    "78": "78/CONFIG: fix the configuration (the line above names the key), then "
          "`systemctl reset-failed {unit}` and start it",
}


@dataclass(frozen=True)
class Outcome:
    unit: str
    result: str
    code: str
    status: str
    gave_up: bool

    @property
    def failed(self) -> bool:
        return self.result not in ("", "success")


def from_environment(unit: str, environ) -> Outcome:
    gave_up = "MONITOR_SERVICE_RESULT" in environ
    prefix = "MONITOR_" if gave_up else ""
    return Outcome(unit, environ.get(f"{prefix}SERVICE_RESULT", ""),
                   environ.get(f"{prefix}EXIT_CODE", ""), environ.get(f"{prefix}EXIT_STATUS", ""),
                   gave_up)


def describe(o: Outcome, in_a_row: int) -> str:
    if o.gave_up:
        what = f"{o.unit} has FAILED and systemd will not restart it"
    elif o.status == "78":  # RestartPreventExitStatus=78
        what = f"{o.unit} stopped on a configuration error; systemd does not restart it"
    else:
        what = f"{o.unit} failed; systemd restarts it (with backoff)"
    text = f"{what}: result={o.result} {o.code}={o.status}".rstrip("=")
    if not o.gave_up and o.status != "78":
        text += f"; {in_a_row} failed run(s) in a row"
    hint = EXIT_HINTS.get(o.status)
    if hint:
        text += "; " + hint.format(unit=o.unit.removesuffix(".service"))
    elif o.gave_up:
        text += f"; see `journalctl -u {o.unit}`, then `systemctl reset-failed {o.unit}`"
    return text


INSERT = ("INSERT INTO unit_failures (ts, unit, result, exit_code, exit_status, "
          "failures_in_a_row, gave_up) VALUES (to_timestamp(%s), %s, %s, %s, %s, %s, %s)")


def _row(o: Outcome, in_a_row: int, at: float) -> tuple:
    return (at, o.unit, o.result, o.code, o.status, in_a_row, o.gave_up)


def _connect(settings: config.Settings):
    import psycopg

    from app.db.pool import conninfo

    conn = psycopg.connect(conninfo(settings, "rec-unit-failed"), connect_timeout=2)
    conn.execute("SET statement_timeout = '2s'")
    return conn


def record_row(settings: config.Settings, o: Outcome, in_a_row: int) -> None:
    with _connect(settings) as conn:
        conn.execute(INSERT, _row(o, in_a_row, time.time()))


def spool_dir(state_dir: Path) -> Path:
    return state_dir / "failures"


def spool(state_dir: Path, o: Outcome, in_a_row: int) -> Path:
    """One file per failure, written whole (rename) so the drain never reads half of one."""
    directory = spool_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}-{o.unit}.json"
    tmp = directory / f".{name}"
    tmp.write_text(json.dumps({**asdict(o), "in_a_row": in_a_row, "at": time.time()}))
    tmp.replace(directory / name)
    return directory / name


def drain(settings: config.Settings) -> int:
    """Move every spooled failure into ``unit_failures``, oldest first; each file is removed
    once its row is committed. Raises (the unit retries) when the database is away."""
    files = sorted(p for p in spool_dir(settings.state_dir).glob("*.json"))
    if not files:
        return 0
    with _connect(settings) as conn:
        for path in files:
            data = json.loads(path.read_text())
            at, in_a_row = data.pop("at"), data.pop("in_a_row")
            with conn.transaction():
                conn.execute(INSERT, _row(Outcome(**data), in_a_row, at))
            path.unlink()
    return len(files)


def _settings(environ) -> config.Settings | None:
    """The unit's settings. In ExecStopPost= the credentials directory may already be gone
    or closed: then without credentials (the row needs the database password; the count and
    the journal line do not)."""
    try:
        return config.load(environ)
    except config.ConfigError:
        pass
    try:
        return config.load({k: v for k, v in environ.items() if k != "CREDENTIALS_DIRECTORY"})
    except config.ConfigError:
        return None


def _record(settings: config.Settings, o: Outcome, in_a_row: int) -> None:
    """Straight into the database when the unit still has its password (rec-failure@), else
    (or when the database is away) into the spool that rec-failures.service drains."""
    if settings.db_password is not None:
        try:
            record_row(settings, o, in_a_row)
            return
        except Exception:  # the database may be what failed: spool it
            pass
    try:
        spool(settings.state_dir, o, in_a_row)
    except OSError as exc:
        sys.stdout.write(f"<3>failure not recorded: cannot spool it ({exc})\n")


def main(unit: str, environ) -> int:
    outcome = from_environment(unit, environ)
    if not outcome.failed:
        return 0
    settings = _settings(environ)
    name = unit.removesuffix(".service").removeprefix("rec-")
    in_a_row = 1
    if settings is not None and not outcome.gave_up and outcome.status != "78":
        try:
            in_a_row = restarts.record_failure(settings.state_dir, name).count
        except OSError:
            pass
    sys.stdout.write(f"<2>{describe(outcome, in_a_row)}\n")
    sys.stdout.flush()
    if settings is not None:
        crash.report(settings.state_dir, name, unit.removesuffix(".service"))
        # a configuration error: systemd gives up on the unit, and its OnFailure= unit
        # (rec-failure@) records that once
        if outcome.gave_up or outcome.status != "78":
            _record(settings, outcome, in_a_row)
    return 0


def main_drain(environ) -> int:
    """``rec unit-failed --drain`` (rec-failures.service): exit 1 while the database is away,
    so systemd retries (Restart=on-failure)."""
    try:
        settings = config.load(environ)
    except config.ConfigError as exc:
        sys.stdout.write(f"<3>config error: {exc}\n")
        return config.EX_CONFIG
    try:
        n = drain(settings)
    except Exception as exc:  # retried by systemd (Restart=on-failure)
        sys.stdout.write(f"<4>spooled failures not recorded yet: {type(exc).__name__}\n")
        return 1
    if n:
        sys.stdout.write(f"<6>recorded {n} spooled unit failure(s)\n")
    return 0
