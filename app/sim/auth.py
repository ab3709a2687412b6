"""Verify Kalshi request signatures against registered public keys, as Kalshi does for
both key types the spec allows: RSA (RSA-PSS with SHA-256) and Ed25519 (RFC 8032), each
over the same pre-sign text (timestamp + method + path), base64 on the wire.

Keys live as `<key_id>.pem` in the keys directory; a key added while the simulator runs
is found on its first use (files are re-read when their mtime changes).
"""

from __future__ import annotations

import re
from pathlib import Path

from app.kalshi.signing import (
    HEADER_KEY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    KeyFormatError,
    PublicKey,
    load_public_key,
    verify,
)

KEY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_TIMESTAMP_DIGITS = 16


class AuthError(Exception):
    """Why a request is not authenticated (goes into the 401 body's details)."""


class KeyStore:
    def __init__(self, keys_dir: Path) -> None:
        self.dir = Path(keys_dir)
        self._cache: dict[str, tuple[float, PublicKey]] = {}

    def path(self, key_id: str) -> Path:
        if not KEY_ID_RE.match(key_id):
            raise ValueError(f"invalid key id {key_id!r}: use letters, digits, '.', '_', '-'")
        return self.dir / f"{key_id}.pem"

    def get(self, key_id: str) -> PublicKey | None:
        try:
            path = self.path(key_id)
            mtime = path.stat().st_mtime
        except (ValueError, OSError):
            return None
        hit = self._cache.get(key_id)
        if hit and hit[0] == mtime:
            return hit[1]
        try:
            key = load_public_key(path.read_bytes())
        except (OSError, KeyFormatError):
            return None
        self._cache[key_id] = (mtime, key)
        return key

    def key_ids(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.stem for p in self.dir.glob("*.pem"))


def has_auth_headers(headers: object) -> bool:
    get = headers.get  # type: ignore[attr-defined]
    return any(get(h) for h in (HEADER_KEY, HEADER_SIGNATURE, HEADER_TIMESTAMP))


def authenticate(headers: object, method: str, path: str, store: KeyStore, now_ms: int,
                 max_skew_ms: int) -> str:
    """Return the key id of a correctly signed request or raise AuthError."""
    get = headers.get  # type: ignore[attr-defined]
    key_id, ts, sig = get(HEADER_KEY), get(HEADER_TIMESTAMP), get(HEADER_SIGNATURE)
    if not key_id or not ts or not sig:
        raise AuthError("missing KALSHI-ACCESS-KEY, -TIMESTAMP or -SIGNATURE header")
    key = store.get(key_id)
    if key is None:
        raise AuthError("unknown API key")
    # ASCII digits only, and few enough that int() is cheap (str.isdigit() also accepts
    # characters such as U+00B2 that int() refuses)
    if not (ts.isascii() and ts.isdigit() and len(ts) <= MAX_TIMESTAMP_DIGITS):
        raise AuthError("KALSHI-ACCESS-TIMESTAMP must be milliseconds since the epoch")
    if abs(now_ms - int(ts)) > max_skew_ms:
        raise AuthError("request timestamp is outside the allowed window")
    if not verify(key, sig, ts, method, path):
        raise AuthError("invalid signature")
    return key_id
