"""The one adapter from rec's Settings to the Kalshi client.

``app.kalshi`` takes plain, typed arguments (URLs, a :class:`~app.kalshi.signing.Signer`)
and never sees a Settings object; services build their clients here:

    settings = config.load()
    async with exchange_client.rest_client(settings) as rest:
        await rest.start()          # reads the account's rate limits
        ...

:func:`endpoints` and :func:`signer` are the two facts taken from Settings; the
factories only combine them.
"""

from __future__ import annotations

from typing import Any

from app.config import AccountMode, Settings
from app.kalshi import signing
from app.kalshi.rest import KalshiRest
from app.kalshi.urls import Endpoints, market_data, resolve
from app.kalshi.ws import KalshiWS
from app.runtime import lockstep


class CredentialsError(ValueError):
    """Kalshi credentials that are missing or cannot be used."""


def endpoints(settings: Settings, data: bool = False) -> Endpoints:
    """REST base and WS URL for ``settings.account_mode`` and the URL overrides: the
    exchange rec trades on, or with ``data`` the one market data and the index come from
    (they differ in paper mode only: the paper engine, and ``paper_source``'s exchange)."""
    where = dict(base_url=settings.kalshi_base_url or None,
                 ws_url=settings.kalshi_ws_url or None,
                 sim_host=settings.target_host, sim_port=settings.exchange_sim_port)
    if data:
        return market_data(settings.account_mode, settings.paper_source, **where)
    return resolve(settings.account_mode, **where)


def has_credentials(settings: Settings) -> bool:
    return settings.kalshi_key_id is not None and settings.kalshi_private_key is not None


def signer(settings: Settings) -> signing.Signer:
    """The request signer from the ``kalshi_key_id`` / ``kalshi_private_key`` credentials.

    Raises :class:`CredentialsError` naming the missing credential file, or the
    reason the key cannot be read (never the key itself).
    """
    key_id_secret, pem_secret = settings.kalshi_key_id, settings.kalshi_private_key
    if key_id_secret is None or pem_secret is None:
        given = {"kalshi_key_id": key_id_secret, "kalshi_private_key": pem_secret}
        missing = [name for name, value in given.items() if value is None]
        raise CredentialsError(
            f"credential {' and '.join(missing)}: missing; put a file named "
            f"{missing[0]} in $CREDENTIALS_DIRECTORY or {settings.credentials_path}"
        )
    key_id = key_id_secret.get_secret_value().strip()
    if not key_id:
        raise CredentialsError("credential kalshi_key_id: the file is empty")
    try:
        key = signing.load_private_key(pem_secret.get_secret_value())
    except signing.KeyFormatError as exc:
        raise CredentialsError(f"credential kalshi_private_key: {exc}") from None
    return signing.Signer(key_id, key)


def optional_signer(settings: Settings) -> signing.Signer | None:
    """:func:`signer`, or None in sim mode when no credentials are configured.

    The simulator accepts unsigned public reads; demo and prod always need a key
    (Settings already refuses to load without one there).
    """
    if settings.account_mode is AccountMode.sim and not has_credentials(settings):
        return None
    return signer(settings)


def rest_client(settings: Settings, data: bool = False, **kw: Any) -> KalshiRest:
    """A :class:`KalshiRest` for the configured exchange (``data``: the market data's, see
    :func:`endpoints`; keywords go to its constructor)."""
    return KalshiRest(endpoints(settings, data).rest_base, optional_signer(settings), **kw)


def ws_client(settings: Settings, data: bool = False, **kw: Any) -> KalshiWS:
    """A :class:`KalshiWS` for the configured exchange (``data`` as for :func:`rest_client`),
    with the connection settings every rec WebSocket shares (``kalshi_ws_*``); keywords add
    a service's own or override them."""
    shared = {"ping_interval": settings.kalshi_ws_ping_interval_sec or None,
              "backoff_base": settings.kalshi_ws_backoff_base_sec,
              "backoff_max": settings.kalshi_ws_backoff_max_sec,
              "compression": "deflate" if settings.kalshi_ws_compression else None,
              "queue_max": settings.kalshi_ws_queue_max}
    client = KalshiWS(endpoints(settings, data).ws_url, optional_signer(settings),
                      **(shared | kw))
    lockstep.watch(client)
    return client


__all__ = [
    "CredentialsError",
    "endpoints",
    "has_credentials",
    "optional_signer",
    "rest_client",
    "signer",
    "ws_client",
]
