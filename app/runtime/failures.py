"""``rec unit-failed``: what systemd tells a unit's ``ExecStopPost=`` (every run that ended,
``$SERVICE_RESULT``) or the ``OnFailure=`` unit ``rec-failure@.service`` (a unit systemd gave
up on, ``$MONITOR_SERVICE_RESULT``), turned into one crit journal line, the restart backoff
count (app.runtime.restarts) and a row in ``unit_failures`` for the dashboard (best effort:
the database may be the very thing that is down).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from app import config
from app.runtime import restarts

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


def record_row(settings: config.Settings, o: Outcome, in_a_row: int) -> None:
    import psycopg

    from app.db.pool import conninfo

    info = conninfo(settings, "rec-unit-failed")
    with psycopg.connect(info, connect_timeout=2) as conn:
        conn.execute("SET statement_timeout = '2s'")
        conn.execute(
            "INSERT INTO unit_failures (unit, result, exit_code, exit_status, "
            "failures_in_a_row, gave_up) VALUES (%s, %s, %s, %s, %s, %s)",
            (o.unit, o.result, o.code, o.status, in_a_row, o.gave_up))


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
        try:
            record_row(settings, outcome, in_a_row)
        except Exception as exc:  # the database may be what failed
            sys.stdout.write(f"<6>not recorded in the database ({type(exc).__name__})\n")
    return 0
