"""rec-web's login: one account, a password hash from a credential, server-side sessions,
CSRF tokens and a limit on failed logins per address and per user.

- The credential ``web_password_hash`` holds ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``
  (stdlib :func:`hashlib.scrypt`); ``python -m app.web.auth hash`` reads a password on stdin
  and prints its hash (the role runs it on the target when it creates the credential).
- A session is a random token in an HttpOnly, SameSite=Strict cookie; rec-web keeps the
  sessions in memory (a restart logs everyone out) and each ends ``ttl`` seconds after login.
- Every state-changing request carries the session's CSRF token (form field ``csrf`` or
  header ``X-CSRF-Token``) and, when the browser sends one, an ``Origin`` of this host.
- Failed logins are counted per address and per user name in a sliding window; past the
  limit of either the login answers 429 until the window has passed, even with the right
  password. Each failure is a warning with the address. The scrypt check runs in a worker
  thread, a bounded number at once (:class:`PasswordChecks`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

COOKIE = "rec_session"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str, salt: bytes | None = None, n: int = SCRYPT_N) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P,
                            dklen=32)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


class BadHash(ValueError):
    pass


def parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.strip().split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise BadHash("web_password_hash: not of the form scrypt$n$r$p$salt$hash "
                      "(make it with `python -m app.web.auth hash`)")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = base64.b64decode(parts[4]), base64.b64decode(parts[5])
    except ValueError:
        raise BadHash("web_password_hash: bad number or base64 in the hash") from None
    if n < 2 or n & (n - 1) or n > 2**20 or not (1 <= r <= 32 and 1 <= p <= 16) or not digest:
        raise BadHash("web_password_hash: scrypt parameters out of range")
    return n, r, p, salt, digest


def verify_password(password: str, stored: str) -> bool:
    n, r, p, salt, digest = parse_hash(stored)
    got = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(digest),
                         maxmem=256 * 1024 * 1024)
    return hmac.compare_digest(got, digest)


@dataclass
class Session:
    token: str
    user: str
    csrf: str
    created: float
    expires: float


@dataclass
class Sessions:
    """Sessions in memory, each ending ``ttl`` seconds after login."""

    ttl: float
    clock: Callable[[], float] = time.time
    by_token: dict[str, Session] = field(default_factory=dict)

    def create(self, user: str) -> Session:
        self._prune()
        now = self.clock()
        s = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now,
                    now + self.ttl)
        self.by_token[s.token] = s
        return s

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        s = self.by_token.get(token)
        if s is None:
            return None
        if s.expires <= self.clock():
            self.by_token.pop(token, None)
            return None
        return s

    def drop(self, token: str | None) -> None:
        if token:
            self.by_token.pop(token, None)

    def _prune(self) -> None:
        now = self.clock()
        for token in [t for t, s in self.by_token.items() if s.expires <= now]:
            del self.by_token[token]


@dataclass
class LoginLimiter:
    """At most ``max_failures`` failed logins per key (an address, a user name) within
    ``window`` seconds. At most ``max_keys`` keys are tracked: past that the key that failed
    least recently is forgotten first, so a spray of addresses or names costs bounded memory."""

    max_failures: int
    window: float
    max_keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    failures: OrderedDict[str, deque] = field(default_factory=OrderedDict)

    def _recent(self, key: str) -> deque:
        q = self.failures.get(key) or deque()
        cutoff = self.clock() - self.window
        while q and q[0] <= cutoff:
            q.popleft()
        return q

    def retry_after(self, *keys: str) -> float | None:
        """Seconds until every one of ``keys`` may try again, or None when all may now."""
        waits = [q[0] + self.window - self.clock() for q in map(self._recent, keys)
                 if len(q) >= self.max_failures]
        return max(1.0, *waits) if waits else None

    def failed(self, *keys: str) -> int:
        """Count a failure against each key; the most failures any of them has now."""
        now, most = self.clock(), 0
        for key in keys:
            q = self._recent(key)
            q.append(now)
            self.failures[key] = q
            self.failures.move_to_end(key)
            most = max(most, len(q))
        while len(self.failures) > self.max_keys:
            self.failures.popitem(last=False)
        return most

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self.failures.pop(key, None)


class PasswordChecks:
    """Password checks (scrypt: ~50 ms of CPU each) in worker threads, at most ``limit`` at
    once; the others wait their turn. The event loop keeps serving meanwhile."""

    def __init__(self, limit: int = 2) -> None:
        self._slots = asyncio.Semaphore(limit)

    async def verify(self, password: str, stored: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(verify_password, password, stored)


def csrf_ok(session: Session, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf.encode(), token.encode())


def main(argv: list[str]) -> int:
    """``hash``: read a password on stdin, print its hash. ``verify FILE``: exit 0 when the
    password on stdin matches the hash in FILE, 1 when not (the role keeps a credential that
    already matches the password it was asked to set)."""
    args = argv[1:]
    if args not in (["hash"],) and not (len(args) == 2 and args[0] == "verify"):
        print("usage: python -m app.web.auth hash | verify HASH_FILE  (password on stdin)",
              file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\n")
    if args[0] == "verify":
        try:
            return 0 if verify_password(password, open(args[1]).read()) else 1
        except (OSError, BadHash) as exc:
            print(f"{args[1]}: {exc}", file=sys.stderr)
            return 1
    if len(password) < 8:
        print("the password must have at least 8 characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
