"""The ``rec`` command: run a service, manage the database and show configuration."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
import time
from pathlib import Path

from app import config

# modules that add their own subcommands with register(subparsers)
COMMAND_MODULES: list[str] = ["app.sim.cli", "app.pricing.cli", "app.ledger.cli",
                              "app.record.cli", "app.backup.cli", "app.backtest.cli"]




def _not_permitted(exc: OSError) -> int:
    where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
    print(f"rec: cannot read{where}: {exc.strerror or exc}; rec's configuration and credentials "
          f"are readable by root only: run it with sudo", file=sys.stderr)
    return config.EX_NOPERM


def check_selection(settings: config.Settings) -> None:
    """REC_SERVICES against the service registry (config.py knows no services): a
    ConfigError naming the key when the selection cannot work."""
    from app import services

    try:
        services.check_selection(settings.services, settings.account_mode.value)
    except ValueError as exc:
        raise config.ConfigError(f"{config.env_name('services')}: "
                                 f"{str(exc).removeprefix('services: ')}") from None


def cmd_run(args: argparse.Namespace) -> int:
    """A registered service by name, or (tests, experiments) an explicit ``module:Class``."""
    from app import services
    from app.runtime import logs
    from app.runtime.runner import run_service

    name, credentials, public = args.service, (), True
    try:
        if ":" in name:
            cls = services.load_entry(name)
            name = services.name_of(name, cls)
        else:
            spec = services.by_name(name)
            cls, credentials, public = spec.load(), spec.credentials, spec.public
        check_selection(config.load())
    except (services.UnknownService, ImportError, TypeError, config.ConfigError) as exc:
        logs.emergency(f"config error: {exc}", ident=f"rec-{name}", service=name)
        return config.EX_CONFIG
    return run_service(name, cls, credentials, public)


def cmd_unit_failed(args: argparse.Namespace) -> int:
    """ExecStopPost=/OnFailure= hook: record a failed run (crit line, backoff count, DB row or
    spool); ``--drain`` (rec-failures.service) moves the spool into the database."""
    from app.runtime import failures

    if args.drain:
        return failures.main_drain(os.environ)
    if not args.unit:
        raise SystemExit("rec unit-failed: name the unit (or --drain)")
    return failures.main(args.unit, os.environ)


def cmd_services(args: argparse.Namespace) -> int:
    """The service registry with this host's effective settings (what the units are built from)."""
    from app import services

    settings = config.load_or_exit()
    try:
        check_selection(settings)
    except config.ConfigError as exc:
        return config.report_error(exc)
    described = services.describe(settings)
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    print(f"account mode {described['account_mode']}; units: {' '.join(described['units'])}")
    for s in described["services"]:
        port = f"port {s['port']}" if s["port"] else "no port"
        state = ("enabled" if s["enabled"] else "not on this host"
                 if described["selected"] else "not in this mode")
        print(f"  {s['unit']:<28} {port:<10} {state:<17} {s['description']}")
    return 0


def unit_environment(unit: str) -> dict[str, str]:
    """The ``Environment=`` a unit gets (its drop-ins included), as systemd has it."""
    import shlex
    import subprocess

    name = unit if unit.endswith(".service") else f"rec-{unit}.service"
    r = subprocess.run(["systemctl", "show", "-p", "Environment", "--value", name],
                       capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise config.ConfigError(f"systemctl show {name}: {r.stderr.strip() or r.returncode}")
    return dict(item.partition("=")[::2] for item in shlex.split(r.stdout) if "=" in item)


def cmd_config_show(args: argparse.Namespace) -> int:
    environ: dict[str, str] = dict(os.environ)
    try:
        if args.unit:  # what that unit really gets: its Environment= (drop-ins) + the files
            environ = {k: v for k, v in environ.items() if not k.startswith(config.ENV_PREFIX)}
            environ.update(unit_environment(args.unit))
        values = config.provenance(environ)
    except config.ConfigError as exc:
        return config.report_error(exc)
    for note in config.unknown_environment(environ):
        print(f"rec: warning: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({v.key: {"value": str(v.value), "source": v.source} for v in values},
                         indent=2))
        return 0
    width = max(len(config.env_name(v.key)) for v in values)
    for v in values:
        print(f"{config.env_name(v.key):<{width}}  {v.value!s:<28}  {v.source}")
    return 0


def cmd_config_init(args: argparse.Namespace) -> int:
    directory = Path(args.dir) if args.dir else config.config_dir_from(os.environ)
    try:
        path, created = config.init_local(directory)
    except OSError as exc:
        print(f"rec: cannot create {directory / config.LOCAL_FILE_NAME}: {exc.strerror}",
              file=sys.stderr)
        return 1
    if created:
        print(f"created {path}")
    else:
        print(f"{path} already exists; left unchanged")
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from app.db.backup import BackupError, BeforeMigrate
    from app.db.migrate import MigrationError, migrate
    from app.db.pool import conninfo, describe

    settings = config.load_or_exit()
    if os.environ.get("INVOCATION_ID"):  # rec-migrate.service: back off after failed runs
        from app.runtime import restarts

        failures = restarts.read(settings.state_dir, "migrate")
        if delay := failures.delay():
            print(f"<4>{failures.count} failed run(s) in a row: waiting {delay:.0f}s", flush=True)
            time.sleep(delay)
    print(f"migrating {describe(settings)}", flush=True)
    first = BeforeMigrate(settings) if settings.backup_before_migrate else None
    try:
        migrate(conninfo(settings, "rec-migrate"), progress=lambda m: print(m, flush=True),
                before=first)
    except (MigrationError, BackupError) as exc:
        print(f"rec: migration error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # psycopg errors: say what and where, no traceback
        print(f"rec: migration failed on {describe(settings)}: {exc}".strip(), file=sys.stderr)
        return 1
    finally:
        if first:
            first.record()
    if os.environ.get("INVOCATION_ID"):
        from app.runtime import restarts

        restarts.reset(settings.state_dir, "migrate")
    return 0


def cmd_db_backup(args: argparse.Namespace) -> int:
    from app.db.backup import BackupError, backup

    try:
        path = backup(config.load_or_exit(), Path(args.file))
    except BackupError as exc:
        print(f"rec: backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"backup written to {path} ({path.stat().st_size} bytes)")
    return 0


def cmd_db_restore(args: argparse.Namespace) -> int:
    from app.db.backup import BackupError, restore

    try:
        restore(config.load_or_exit(), Path(args.file))
    except BackupError as exc:
        print(f"rec: restore failed: {exc}", file=sys.stderr)
        return 1
    print(f"restored from {args.file}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """The rec units the registry expects as systemd sees them, the database (with the units'
    recent failures), the exchange and rec-web's aggregate (app.status); exit 0 only if all
    are ok."""
    from app import status

    healthy, rows = asyncio.run(status.rows(config.load_or_exit()))
    print("\n".join(rows))
    return 0 if healthy else 1


def cmd_metrics(args: argparse.Namespace) -> int:
    """Every metrics file there is (or SERVICE's), as the node exporter reads it."""
    from app.runtime import metrics
    from app.services import metric_files

    settings = config.load_or_exit()
    if args.service and args.service not in metric_files():
        print(f"rec: no service {args.service!r}; known: {', '.join(metric_files())}",
              file=sys.stderr)
        return 2
    wanted = [args.service] if args.service else metrics.names(settings)
    shown = 0
    for name in wanted:
        text = metrics.read(settings, name)
        if text is None:
            continue
        if not args.service:
            print(f"# ---- {metrics.path(settings, name)}")
        print(text, end="")
        shown += 1
    if not shown:
        print(f"rec: no metrics file {'for ' + args.service + ' ' if args.service else ''}"
              f"in {metrics.directory(settings)}", file=sys.stderr)
        return 1
    return 0


def build_parser(commands: list[str] | None = None) -> argparse.ArgumentParser:
    """rec's parser; given the command line (``commands``) that names a built-in command
    (status, unit-failed, run, ...), without the command modules (``rec sim``, ``rec model``,
    ``rec ledger``) and what they import (cryptography, ...)."""
    parser = argparse.ArgumentParser(prog="rec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a service (as its systemd unit does)")
    run.add_argument("service", help="service name, e.g. web, exchange-sim")
    run.set_defaults(func=cmd_run)

    db = sub.add_parser("db", help="database: migrate, backup, restore").add_subparsers(
        dest="db_command", required=True)
    db.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_db_migrate)
    b = db.add_parser("backup", help="write a pg_dump custom-format file")
    b.add_argument("file")
    b.set_defaults(func=cmd_db_backup)
    r = db.add_parser("restore", help="replace the database with a backup file")
    r.add_argument("file")
    r.set_defaults(func=cmd_db_restore)

    cfg = sub.add_parser("config", help="show or initialise configuration").add_subparsers(
        dest="config_command", required=True)
    show = cfg.add_parser("show", help="every setting, its value and where it came from")
    show.add_argument("--json", action="store_true")
    show.add_argument("--unit", help="as the unit gets it, with its drop-ins (e.g. web)")
    show.set_defaults(func=cmd_config_show)
    init = cfg.add_parser("init", help="create config.local.json if it is absent")
    init.add_argument("--dir", help="directory (default: REC_CONFIG_DIR or /etc/rec)")
    init.set_defaults(func=cmd_config_init)

    sub.add_parser("status", help="rec-* units and the bundle's health").set_defaults(
        func=cmd_status)

    failed = sub.add_parser("unit-failed", help="(systemd hook) record a failed run of a unit")
    failed.add_argument("unit", nargs="?", help="the unit, e.g. rec-web.service")
    failed.add_argument("--drain", action="store_true",
                        help="record the spooled failures in the database")
    failed.set_defaults(func=cmd_unit_failed)

    m = sub.add_parser("metrics", help="the services' Prometheus metrics files")
    m.add_argument("service", nargs="?", help="one service's (e.g. market-feed, backup)")
    m.set_defaults(func=cmd_metrics)

    svc = sub.add_parser("services", help="the registered services and their units")
    svc.add_argument("--json", action="store_true", help="machine-readable (Ansible reads it)")
    svc.set_defaults(func=cmd_services)

    if commands is not None and commands[:1] and commands[0] in sub.choices:
        return parser  # a built-in command: the command modules' imports are not its cost
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(sys.argv[1:] if argv is None else argv).parse_args(argv)
    try:
        return args.func(args)
    except PermissionError as exc:
        return _not_permitted(exc)
    except BrokenPipeError:
        # `rec ... | head` closed the pipe: stop quietly, as other Unix commands do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for such a command


if __name__ == "__main__":
    sys.exit(main())
