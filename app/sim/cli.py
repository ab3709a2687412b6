"""`rec sim add-key` and `rec sim gen-key`: register API keys with the simulator.

add-key stores a public key as <keys_dir>/<key_id>.pem (the running simulator picks it up
on first use). gen-key is for sim mode and development: it writes the credential files
`kalshi_key_id` and `kalshi_private_key` only if they are absent (an existing pair is
reused, never replaced) and registers the pair's public key.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from app.config import EX_CONFIG
from app.kalshi import signing
from app.kalshi.signing import load_public_key
from app.sim.auth import KEY_ID_RE


def _settings_path(attr: str) -> Path | None:
    from app import config

    try:
        return Path(getattr(config.load(), attr))
    except config.ConfigError as exc:
        print(f"rec: config error: {exc}", file=sys.stderr)
        return None


def _write_once(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if the target appeared meanwhile: never overwrite
    finally:
        tmp.unlink()


def register_public_key(keys_dir: Path, key_id: str, pem: bytes, replace: bool = False) -> str:
    """Store a public key; returns "added", "unchanged" or "replaced"."""
    if not KEY_ID_RE.match(key_id):
        raise ValueError(f"invalid key id {key_id!r}: use letters, digits, '.', '_', '-'")
    key = load_public_key(pem)  # RSA or Ed25519
    data = key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
    keys_dir.mkdir(parents=True, exist_ok=True)
    path = keys_dir / f"{key_id}.pem"
    if path.exists():
        if path.read_bytes() == data:
            return "unchanged"
        if not replace:
            raise FileExistsError(f"{path} holds a different key; use --replace to change it")
        path.unlink()
        _write_once(path, data, 0o644)
        return "replaced"
    _write_once(path, data, 0o644)
    return "added"


def cmd_add_key(args: argparse.Namespace) -> int:
    keys_dir = Path(args.keys_dir) if args.keys_dir else _settings_path("sim_keys_dir")
    if keys_dir is None:
        return EX_CONFIG
    try:
        pem = Path(args.public_key).read_bytes()
        if b"PRIVATE KEY" in pem:
            print("rec: --public-key is a private key; give the public key PEM",
                  file=sys.stderr)
            return 1
        result = register_public_key(keys_dir, args.key_id, pem, args.replace)
    except (OSError, ValueError) as exc:
        print(f"rec: {exc}", file=sys.stderr)
        return 1
    print(f"key {args.key_id}: {result} ({keys_dir / (args.key_id + '.pem')})")
    return 0


def cmd_gen_key(args: argparse.Namespace) -> int:
    creds = Path(args.credentials_dir) if args.credentials_dir else _settings_path(
        "credentials_path")
    keys_dir = Path(args.keys_dir) if args.keys_dir else _settings_path("sim_keys_dir")
    if creds is None or keys_dir is None:
        return EX_CONFIG
    id_path, key_path = creds / "kalshi_key_id", creds / "kalshi_private_key"
    try:
        if id_path.exists() != key_path.exists():
            print(f"rec: only one of {id_path} and {key_path} exists; fix or remove it",
                  file=sys.stderr)
            return 1
        if id_path.exists():
            key_id = id_path.read_text().strip()
            private = signing.load_private_key(key_path.read_bytes())
            made = False
        else:
            key_id = args.key_id or f"sim-{secrets.token_hex(8)}"
            if not KEY_ID_RE.match(key_id):
                raise ValueError(f"invalid key id {key_id!r}")
            private = signing.generate_private_key()
            creds.mkdir(parents=True, exist_ok=True)
            _write_once(key_path, signing.private_pem(private), 0o600)
            _write_once(id_path, (key_id + "\n").encode(), 0o600)
            made = True
        result = register_public_key(keys_dir, key_id, signing.public_pem(private))
    except (OSError, ValueError) as exc:
        print(f"rec: {exc}", file=sys.stderr)
        return 1
    state = "generated" if made else "kept existing"
    print(f"key {key_id}: {state} credentials in {creds}; public key {result} in {keys_dir}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser("sim", help="exchange simulator: API keys").add_subparsers(
        dest="sim_command", required=True)
    add = sim.add_parser("add-key", help="register an API public key with the simulator")
    add.add_argument("--key-id", required=True)
    add.add_argument("--public-key", required=True,
                     help="RSA or Ed25519 public key PEM (SubjectPublicKeyInfo; PKCS#1 for RSA)")
    add.add_argument("--keys-dir", help="default: REC_SIM_KEYS_DIR")
    add.add_argument("--replace", action="store_true", help="replace a different existing key")
    add.set_defaults(func=cmd_add_key)
    gen = sim.add_parser("gen-key", help="create a dev key pair (only if absent) and register it")
    gen.add_argument("--key-id", help="id for a new key (default: sim-<random>)")
    gen.add_argument("--credentials-dir", help="default: REC_CREDENTIALS_PATH")
    gen.add_argument("--keys-dir", help="default: REC_SIM_KEYS_DIR")
    gen.set_defaults(func=cmd_gen_key)
