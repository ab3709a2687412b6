"""Signed headers kept ready ahead of the order entry (``KalshiRest.keep_presigned``).

The RSA-PSS signature (~0.2 ms) is then made while nothing waits for it, not on the order's
way out. A set is used by one request only, and never when older than PRESIGN_MAX_AGE_MS (the
exchange takes timestamps within its window: the simulator's is 30 s); the next is signed as
soon as the loop is free (while the request is on the wire), and a resting set is renewed at
half that age, checked every quarter of it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from app.kalshi import signing

log = logging.getLogger(__name__)

PRESIGN_MAX_AGE_MS = 1000

Key = tuple[str, str]  # METHOD, signed path


def _age_ms(headers: dict[str, str]) -> float:
    return time.time() * 1000 - int(headers[signing.HEADER_TIMESTAMP])


class Presigner:
    """The KALSHI-ACCESS-* headers of one signer, some of them signed ahead."""

    def __init__(self, signer: signing.Signer) -> None:
        self.signer = signer
        self._ready: dict[Key, dict[str, str] | None] = {}
        self._task: asyncio.Task | None = None

    def keep(self, key: Key) -> None:
        """Keep one set of signed headers ready for ``key``."""
        self._ready[key] = self.signer.headers(*key)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._renew(), name="kalshi-presign")

    def headers(self, key: Key) -> dict[str, str]:
        """Headers for one request: the set kept ready when fresh, else signed now."""
        if key in self._ready:
            ready, self._ready[key] = self._ready[key], None
            asyncio.get_running_loop().call_soon(self._sign_taken, key)
            if ready is not None and _age_ms(ready) <= PRESIGN_MAX_AGE_MS:
                return ready
        return self.signer.headers(*key)

    def _sign_taken(self, key: Key) -> None:
        if self._ready[key] is None:  # not signed meanwhile (by the renewal)
            self._ready[key] = self.signer.headers(*key)

    async def _renew(self) -> None:
        try:
            while True:
                await asyncio.sleep(PRESIGN_MAX_AGE_MS / 4000)
                for key, ready in self._ready.items():
                    if ready is not None and _age_ms(ready) > PRESIGN_MAX_AGE_MS / 2:
                        self._ready[key] = self.signer.headers(*key)
        except Exception:  # requests then sign their own headers, as without it
            log.exception("renewing the signed-ahead headers stopped")

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
