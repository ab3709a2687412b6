"""A PostgreSQL the app reaches only over TLS, verified: the managed-PostgreSQL path (issue 15).

A managed PostgreSQL is, to rec, a host name, a CA file and sslmode=verify-full: the inventory
sets rec_app_db_host, rec_app_db_ca_cert_file and rec_app_db_sslmode, and the role writes
REC_DB_HOST, REC_DB_SSLMODE and REC_DB_SSLROOTCERT into rec.env. This test gives a real PostgreSQL
on loopback a certificate from a CA of its own, admits the app role by hostssl only, and runs
`rec db migrate` with exactly those settings: it connects; without TLS pg_hba refuses it; with
a CA that did not sign the server's certificate, verification fails. (Molecule multihost
checks the same three cases between two guests with the roles' own CA and pg_hba.)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import uuid
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from testkit import pg as pgserver


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_server_cert(ca_key, ca_cert, names: list[str], ips: list[str]):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i))
                                              for i in ips]
    cert = (x509.CertificateBuilder().subject_name(_name(names[0]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def pem_cert(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def tls_pg(tmp_path_factory):
    """A PostgreSQL serving TLS with its own CA; the app role may log in by hostssl only."""
    server = pgserver.start()
    root = server.root
    ca_key, ca_cert = make_ca("rec test db CA")
    key, cert = make_server_cert(ca_key, ca_cert, ["localhost"], [])
    files = {"server.crt": pem_cert(cert), "server.key": pem_key(key)}
    owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    for name, data in files.items():
        path = root / name
        path.write_bytes(data)
        path.chmod(0o600)
        if owner:
            os.chown(path, owner.pw_uid, owner.pw_gid)
    (server.datadir / "pg_hba.conf").write_text(
        "local all all trust\n"
        "hostssl all all 127.0.0.1/32 scram-sha-256\n")
    user, password, db = "rec_tls", "pw-" + uuid.uuid4().hex[:12], "rec_tls"
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        c.execute(f"alter system set ssl_cert_file = '{root / 'server.crt'}'")
        c.execute(f"alter system set ssl_key_file = '{root / 'server.key'}'")
        c.execute("alter system set ssl = on")
        c.execute("select pg_reload_conf()")
    server.create_app_db(db, user, password)
    out = tmp_path_factory.mktemp("tls")
    (out / "ca.crt").write_bytes(pem_cert(ca_cert))
    _, wrong = make_ca("not the db CA")
    (out / "wrong-ca.crt").write_bytes(pem_cert(wrong))
    yield {"server": server, "user": user, "password": password, "db": db, "dir": out}
    pgserver.remove(server)


def managed_env(rec_home, tls_pg, sslmode: str, ca: Path | None) -> None:
    """What rec_app writes for a managed PostgreSQL (rec.env + the db_password credential)."""
    rec_home.env.update(REC_DB_HOST="localhost", REC_DB_PORT=str(tls_pg["server"].port),
                        REC_DB_NAME=tls_pg["db"], REC_DB_USER=tls_pg["user"],
                        REC_DB_SSLMODE=sslmode, REC_DB_CONNECT_TIMEOUT_SEC="5")
    rec_home.env["REC_DB_SSLROOTCERT"] = str(ca) if ca else ""
    rec_home.credential("db_password", tls_pg["password"])


def test_verify_full_with_the_ca_connects_over_tls(rec_home, tls_pg):
    managed_env(rec_home, tls_pg, "verify-full", tls_pg["dir"] / "ca.crt")
    r = rec_home.rec("db", "migrate")
    assert r.returncode == 0, r.stdout + r.stderr
    server = tls_pg["server"]
    with psycopg.connect(host="localhost", port=server.port, dbname=tls_pg["db"],
                         user=tls_pg["user"], password=tls_pg["password"],
                         sslmode="verify-full", sslrootcert=str(tls_pg["dir"] / "ca.crt")) as c:
        ssl, version = c.execute("select ssl, version from pg_stat_ssl "
                                 "where pid = pg_backend_pid()").fetchone()
    assert ssl is True and version.startswith("TLSv1.")


def test_a_connection_without_tls_is_refused(rec_home, tls_pg):
    managed_env(rec_home, tls_pg, "disable", None)
    r = rec_home.rec("db", "migrate")
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "no pg_hba.conf entry" in out and "no encryption" in out, out
    assert tls_pg["password"] not in out


def test_a_wrong_ca_fails_verification(rec_home, tls_pg):
    managed_env(rec_home, tls_pg, "verify-full", tls_pg["dir"] / "wrong-ca.crt")
    r = rec_home.rec("db", "migrate")
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "certificate verify failed" in out, out


def test_verify_full_checks_the_host_name(rec_home, tls_pg):
    """The certificate names localhost only: the same server reached as 127.0.0.1 fails."""
    managed_env(rec_home, tls_pg, "verify-full", tls_pg["dir"] / "ca.crt")
    rec_home.env["REC_DB_HOST"] = "127.0.0.1"
    r = rec_home.rec("db", "migrate")
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "does not match host name" in out or "server certificate" in out, out
