"""Fixtures over real components: a PostgreSQL server, a NOTIFY_SOCKET, `rec run` processes."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from testkit import pg as pgserver
from testkit.net import free_port
from testkit.notify import NotifySocket

REPO = Path(__file__).resolve().parent.parent
REC = [sys.executable, "-m", "app.cli"]
# what systemd does for a unit with a socket (socket activation): the listening socket as fd 3,
# LISTEN_FDS=1 and LISTEN_PID the pid that runs the command
SOCKET_ACTIVATED = [sys.executable, "-c", "import os, sys; os.dup2(int(sys.argv[1]), 3); "
                    "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); "
                    "os.execv(sys.argv[2], sys.argv[2:])"]
APP_USER = "rec_test"
APP_PASSWORD = "rec-test-" + uuid.uuid4().hex[:8]
WEB_USER = "admin"  # rec-web's login in tests (REC_WEB_USER's default)
WEB_PASSWORD = "web-test-" + uuid.uuid4().hex[:8]
_web_hash: list[str] = []


def web_login_credential(home: RecHome) -> None:
    """The credential the role provisions for rec-web's login (hashed once per run)."""
    if not _web_hash:
        from app.web.auth import hash_password

        _web_hash.append(hash_password(WEB_PASSWORD))
    home.credential("web_password_hash", _web_hash[0])


@pytest.fixture(scope="session")
def pg():
    server = pgserver.start()
    server.create_role(APP_USER, APP_PASSWORD)
    yield server
    pgserver.remove(server)


@dataclass
class AppDb:
    server: pgserver.PgServer
    name: str
    user: str = APP_USER
    password: str = APP_PASSWORD

    @property
    def dsn(self) -> str:
        return self.server.dsn(self.user, self.password, self.name)


@pytest.fixture
def app_db(pg):
    """A fresh database owned by the app role, dropped afterwards."""
    name = "rec_" + uuid.uuid4().hex[:10]
    pg.create_db(name, APP_USER)
    yield AppDb(pg, name)
    pg.drop_db(name)


@dataclass
class RecHome:
    """A config dir + credentials dir + environment for running `rec` as a host would."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials"

    def credential(self, name: str, value: str) -> None:
        self.credentials.mkdir(exist_ok=True)
        path = self.credentials / name
        path.write_text(value)
        path.chmod(0o600)

    def rec(self, *args: str, timeout: float = 60, env: dict[str, str] | None = None,
            **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*REC, *args], env=self.env if env is None else env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout, **kw)


@functools.cache
def seed_journal() -> Path:
    """A journal file with one entry (systemd-journal-remote writes it from the export
    format), so that journalctl has a boot to follow, as on any real host."""
    out = Path(tempfile.mkdtemp(prefix="rec-journal-seed-")) / "seed.journal"
    export = out.with_suffix(".export")
    export.write_text(f"__REALTIME_TIMESTAMP={int(time.time() * 1e6)}\n"
                      f"__MONOTONIC_TIMESTAMP=1\n_BOOT_ID={uuid.uuid4().hex}\n"
                      "_SYSTEMD_UNIT=init.scope\nMESSAGE=test journal\n\n")
    subprocess.run(["/lib/systemd/systemd-journal-remote", "-o", str(out), str(export)],
                   check=True, capture_output=True, timeout=30)
    return out


def base_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("REC_") and k not in (
               "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CREDENTIALS_DIRECTORY",
               "JOURNAL_STREAM")}
    env.update(
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
        REC_CONFIG_DIR=str(root / "etc"),
        REC_CREDENTIALS_PATH=str(root / "credentials"),
        REC_STATE_DIR=str(root / "state"),
        REC_BACKUP_BEFORE_MIGRATE_DIR=str(root / "backups"),
        REC_WEB_PORT=str(free_port()),
        REC_EXCHANGE_SIM_PORT=str(free_port()),
        REC_LOG_LEVEL="debug",
        # rec-journal: no system journal here, an empty journal directory and an export file
        REC_JOURNAL_DIRECTORY=str(root / "journal"),
        REC_JOURNAL_EXPORT_PATH=str(root / "run" / "tail.json"),
    )
    (root / "journal").mkdir(exist_ok=True)
    shutil.copy(seed_journal(), root / "journal" / "seed.journal")
    (root / "run").mkdir(exist_ok=True)
    from app.config import Settings  # every service port setting: a free port of its own
    for key in Settings.model_fields:
        if key.endswith("_port") and key != "db_port" and f"REC_{key.upper()}" not in env:
            env[f"REC_{key.upper()}"] = str(free_port())
    return env


@pytest.fixture
def rec_home(tmp_path) -> RecHome:
    (tmp_path / "etc").mkdir()
    (tmp_path / "state").mkdir()
    home = RecHome(tmp_path, base_env(tmp_path))
    web_login_credential(home)
    return home


@pytest.fixture
def rec_home_db(rec_home, app_db) -> RecHome:
    """rec_home pointed at a fresh, migrated database."""
    rec_home.env.update(
        REC_DB_HOST=app_db.server.host, REC_DB_PORT=str(app_db.server.port),
        REC_DB_NAME=app_db.name, REC_DB_USER=app_db.user, REC_DB_SSLMODE="disable",
    )
    rec_home.credential("db_password", app_db.password)
    rec_home.db = app_db  # type: ignore[attr-defined]
    return rec_home


class ServiceProcess:
    """`rec run <service>` as a real subprocess with a test-owned NOTIFY_SOCKET."""

    def __init__(self, home: RecHome, service: str, watchdog_usec: int | None = None,
                 extra_env: dict[str, str] | None = None, freeze_on_ready: bool = False,
                 listen: socket.socket | None = None) -> None:
        self.notify = NotifySocket.open()
        if freeze_on_ready:
            # SIGSTOP the service the moment READY=1 arrives: whatever it had not done
            # before sending READY stays undone while the test looks (SIGCONT resumes it)
            def freeze(message) -> None:
                if message.fields.get("READY") == "1":
                    os.kill(self.proc.pid, signal.SIGSTOP)

            self.notify.on_message = freeze
        env = dict(home.env)
        env["NOTIFY_SOCKET"] = str(self.notify.path)
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        env.update(extra_env or {})
        self.log_path = home.root / f"{service.replace(':', '_')}.log"
        self._log = open(self.log_path, "wb")
        command = [*REC, "run", service]
        if listen is not None:  # ``listen`` handed over as systemd would
            command = [*SOCKET_ACTIVATED, str(listen.fileno()), *command]
        self.proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     pass_fds=() if listen is None else (listen.fileno(),))
        self.env = env

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout=timeout)

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        self.notify.close()


@pytest.fixture
def start_service():
    started: list[ServiceProcess] = []

    def start(home: RecHome, service: str, **kw) -> ServiceProcess:
        sp = ServiceProcess(home, service, **kw)
        started.append(sp)
        return sp

    yield start
    for sp in started:
        sp.close()


def register_sim_key(home: RecHome) -> None:
    """A Kalshi key of ``home``'s own, registered with the simulator (as the role does in sim
    mode) and given to the services as their credentials."""
    from app.kalshi.signing import generate_private_key, private_pem, public_pem
    from app.sim.cli import register_public_key

    key = generate_private_key()
    key_id = "test-" + uuid.uuid4().hex[:8]
    register_public_key(Path(home.env["REC_STATE_DIR"]) / "sim-keys", key_id, public_pem(key))
    home.credential("kalshi_key_id", key_id)
    home.credential("kalshi_private_key", private_pem(key).decode())


def start_exchange_sim(home: RecHome, start_service) -> ServiceProcess:
    """Run `rec run exchange-sim` for ``home`` with a Kalshi key of its own registered (as
    the role does in sim mode); returns the simulator once READY."""
    register_sim_key(home)
    sim = start_service(home, "exchange-sim")
    sim.notify.wait_for("READY", "1", timeout=30)
    return sim


@contextlib.contextmanager
def module_home(tmp_path_factory, pg, prefix: str, **env: str):
    """A RecHome (web login included) on a fresh, migrated database of its own, for a
    module-scoped stack; yields (home, dsn) and drops the database afterwards."""
    root = tmp_path_factory.mktemp(prefix)
    (root / "etc").mkdir()
    (root / "state").mkdir()
    home = RecHome(root, base_env(root))
    web_login_credential(home)
    name = "rec_" + uuid.uuid4().hex[:10]
    pg.create_db(name, APP_USER)
    home.env.update(REC_DB_HOST=pg.host, REC_DB_PORT=str(pg.port), REC_DB_NAME=name,
                    REC_DB_USER=APP_USER, REC_DB_SSLMODE="disable", **env)
    home.credential("db_password", APP_PASSWORD)
    try:
        r = home.rec("db", "migrate")
        assert r.returncode == 0, r.stderr
        yield home, pg.dsn(APP_USER, APP_PASSWORD, name)
    finally:
        pg.drop_db(name)


@contextlib.contextmanager
def running(home: RecHome, *services: str):
    """`rec run` each service, wait for every READY, stop them all afterwards."""
    procs = [ServiceProcess(home, s) for s in services]
    try:
        for p in procs:
            p.notify.wait_for("READY", "1")
        yield procs
    finally:
        for p in procs:
            p.terminate()
            p.close()
