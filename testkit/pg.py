"""A real, throwaway PostgreSQL server for tests: Debian's binaries, initdb in a temp dir.

initdb and postgres refuse to run as root, so as root they run as the ``postgres``
system user (created by Debian's postgresql package). The server listens on
127.0.0.1 and a free port, with scram-sha-256 for TCP, and is stopped by its PID.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from testkit.net import free_port


def pg_bindir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                        key=lambda p: int(p.parent.parent.name))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")
    return candidates[-1].parent


@dataclass
class PgServer:
    datadir: Path
    port: int
    proc: subprocess.Popen
    superuser_password: str
    root: Path
    host: str = "127.0.0.1"

    def dsn(self, user="postgres", password=None, dbname="postgres") -> str:
        password = password or self.superuser_password
        return (f"host={self.host} port={self.port} user={user} password={password} "
                f"dbname={dbname} connect_timeout=5")

    def _admin(self, statement: sql.Composed) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(statement)

    def create_role(self, user: str, password: str) -> None:
        self._admin(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(user), sql.Literal(password)))

    def create_db(self, name: str, owner: str) -> None:
        self._admin(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(owner)))

    def create_app_db(self, name: str, user: str, password: str) -> None:
        self.create_role(user, password)
        self.create_db(name, user)

    def drop_db(self, name: str) -> None:
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server (fast shutdown: every open connection is cut), stay down for
        ``down_for`` seconds, start it again on the same data and port."""
        self.stop()
        time.sleep(down_for)
        self.proc = _launch(self.root, self.datadir, self.port)
        _wait_up(self)

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def _family(self) -> list[int]:
        """The server's PID and its backends' (children of this test's own postmaster)."""
        pids = [self.proc.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return pids

    def freeze(self) -> None:
        """Hang the whole server, open connections included (a database that stops answering)."""
        for pid in self._family():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._family():
            os.kill(pid, signal.SIGCONT)


def _as_postgres() -> dict:
    """Popen arguments that drop root to the postgres user, so the PID is the server's own."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def start(base: Path | None = None, port: int | None = None) -> PgServer:
    bindir = pg_bindir()
    root = Path(tempfile.mkdtemp(prefix="rec-pg-", dir=base))
    datadir = root / "data"
    password = "pw-" + os.urandom(8).hex()
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(root, pg.pw_uid, pg.pw_gid)
        os.chown(pwfile, pg.pw_uid, pg.pw_gid)
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres",
         "--auth-host=scram-sha-256", "--auth-local=trust", f"--pwfile={pwfile}",
         "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"],
        check=True, capture_output=True, cwd=root, **_as_postgres(),
    )
    port = port or free_port()
    server = PgServer(datadir, port, _launch(root, datadir, port), password, root)
    _wait_up(server)
    return server


def _launch(root: Path, datadir: Path, port: int) -> subprocess.Popen:
    log = open(root / "server.log", "ab")
    return subprocess.Popen(
        [str(pg_bindir() / "postgres"), "-D", str(datadir), "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}",
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
         "-c", "max_connections=100"],
        stdout=log, stderr=subprocess.STDOUT, cwd=root, **_as_postgres(),
    )


def _wait_up(server: PgServer) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(server.dsn()):
                return
        except psycopg.OperationalError:
            if server.proc.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(
                    f"test PostgreSQL did not start: {(server.root / 'server.log').read_text()}"
                ) from None
            time.sleep(0.1)


def remove(server: PgServer) -> None:
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)
