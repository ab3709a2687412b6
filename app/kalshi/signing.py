"""Request signing as Kalshi specifies it, for both sides of the wire: RSA-PSS or Ed25519.

The message is ``timestamp_ms + METHOD + path`` where ``path`` carries the
``/trade-api/v2`` prefix (or ``/trade-api/ws/v2`` for the WebSocket handshake)
and never the query string; the signature travels base64-encoded. The key type is
what the PEM holds (spec v3.31 allows both):

* RSA: PSS with MGF1(SHA-256) and a salt as long as the digest, over SHA-256;
* Ed25519: the raw 64-byte Ed25519 signature of the message (RFC 8032, no pre-hash).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

HEADER_KEY = "KALSHI-ACCESS-KEY"
HEADER_TIMESTAMP = "KALSHI-ACCESS-TIMESTAMP"
HEADER_SIGNATURE = "KALSHI-ACCESS-SIGNATURE"

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class KeyFormatError(ValueError):
    """A key file that cannot be used (wrong format, neither RSA nor Ed25519)."""


def load_private_key(pem: bytes | str) -> PrivateKey:
    """Load an RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8) private key from PEM."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError(f"not a readable unencrypted PEM private key: {exc}") from None
    if not isinstance(key, PrivateKey):
        raise KeyFormatError("the private key is neither an RSA nor an Ed25519 key")
    return key


def load_public_key(pem: bytes | str) -> PublicKey:
    """Load an RSA or Ed25519 public key from PEM (SubjectPublicKeyInfo, or PKCS#1 for RSA)."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyFormatError(f"not a readable PEM public key: {exc}") from None
    if not isinstance(key, PublicKey):
        raise KeyFormatError("the public key is neither an RSA nor an Ed25519 key")
    return key


def generate_private_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def generate_ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: PrivateKey | PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, PrivateKey) else key
    return pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def signing_path(url_or_path: str) -> str:
    """The part of a URL that is signed: the path only, without the query string."""
    return urlsplit(url_or_path).path or "/"


def message(timestamp_ms: int | str, method: str, path: str) -> bytes:
    return f"{timestamp_ms}{method.upper()}{signing_path(path)}".encode()


def sign(key: PrivateKey, timestamp_ms: int | str, method: str, path: str) -> str:
    msg = message(timestamp_ms, method, path)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.sign(msg)
    else:
        raw = key.sign(msg, _PSS, hashes.SHA256())
    return base64.b64encode(raw).decode()


def verify(
    key: PublicKey, signature_b64: str, timestamp_ms: int | str, method: str, path: str
) -> bool:
    msg = message(timestamp_ms, method, path)
    try:
        raw = base64.b64decode(signature_b64, validate=True)
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(raw, msg)
        else:
            key.verify(raw, msg, _PSS, hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Signer:
    """Produces the three KALSHI-ACCESS-* headers for one key."""

    key_id: str
    private_key: PrivateKey

    def headers(self, method: str, path: str, now_ms: int | None = None) -> dict[str, str]:
        ts = str(now_ms if now_ms is not None else int(time.time() * 1000))
        return {
            HEADER_KEY: self.key_id,
            HEADER_TIMESTAMP: ts,
            HEADER_SIGNATURE: sign(self.private_key, ts, method, path),
        }
