"""The one place that decides where rec talks to the exchange.

``REC_ACCOUNT_MODE`` picks the exchange (``sim`` | ``demo`` | ``prod`` | ``paper``);
``REC_KALSHI_BASE_URL`` / ``REC_KALSHI_WS_URL`` override either URL. In ``paper`` mode
(docs/paper.md) orders go to the local paper engine (where the simulator would listen) and
market data comes from ``REC_PAPER_SOURCE``'s exchange, which the overrides then name. The
functions here take plain arguments; nothing in ``app.kalshi`` knows rec's
Settings (:mod:`app.exchange_client` is the one adapter from Settings to the client).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

REST_PREFIX = "/trade-api/v2"
WS_PATH = "/trade-api/ws/v2"

# Kalshi's dedicated Trade API hosts (openapi.yaml v3.31.0 `servers`, asyncapi.yaml
# `servers.production`; docs.kalshi.com "API Environments" for the demo WS host).
PROD_HOST = "external-api.kalshi.com"
PROD_WS_HOST = "external-api-ws.kalshi.com"
DEMO_HOST = "external-api.demo.kalshi.co"
DEMO_WS_HOST = "external-api-ws.demo.kalshi.co"
# The shared hosts Kalshi still supports (REST and WS on one host); accepted as overrides.
LEGACY_PROD_HOST = "api.elections.kalshi.com"
LEGACY_DEMO_HOST = "demo-api.kalshi.co"

SOURCES = ("sim", "demo", "prod")  # exchanges with a market of their own
MODES = (*SOURCES, "paper")


class UrlConfigError(ValueError):
    """An account mode or override URL that cannot be used."""


@dataclass(frozen=True)
class Endpoints:
    mode: str
    rest_base: str  # ends with /trade-api/v2, no trailing slash
    ws_url: str  # ends with /trade-api/ws/v2

    @property
    def rest_path_prefix(self) -> str:
        """The path part of ``rest_base`` (what signatures must include)."""
        return urlsplit(self.rest_base).path.rstrip("/")

    @property
    def ws_path(self) -> str:
        return urlsplit(self.ws_url).path or "/"


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _check(url: str, schemes: tuple[str, ...], what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.netloc:
        raise UrlConfigError(f"{what}: {url!r} is not a {'/'.join(schemes)} URL with a host")
    if parts.query or parts.fragment:
        raise UrlConfigError(f"{what}: {url!r} must not carry a query string or fragment")
    return url.rstrip("/")


def resolve(
    mode: str,
    *,
    base_url: str | None = None,
    ws_url: str | None = None,
    sim_host: str = "127.0.0.1",
    sim_port: int = 8090,
) -> Endpoints:
    """Return the REST base and WS URL for ``mode``; non-empty overrides win."""
    mode = str(mode).strip().lower()
    if mode in ("sim", "paper"):  # the simulator, or the paper engine in its place
        origin = f"{_host_for_url(sim_host)}:{int(sim_port)}"
        rest, ws = f"http://{origin}{REST_PREFIX}", f"ws://{origin}{WS_PATH}"
        if mode == "paper":  # rec's own engine: no overrides
            return Endpoints(mode, rest, ws)
    elif mode == "demo":
        rest, ws = f"https://{DEMO_HOST}{REST_PREFIX}", f"wss://{DEMO_WS_HOST}{WS_PATH}"
    elif mode == "prod":
        rest, ws = f"https://{PROD_HOST}{REST_PREFIX}", f"wss://{PROD_WS_HOST}{WS_PATH}"
    else:
        raise UrlConfigError(f"account_mode: {mode!r} is not one of {', '.join(MODES)}")
    if base_url:
        rest = _check(base_url.strip(), ("http", "https"), "kalshi_base_url")
    if ws_url:
        ws = _check(ws_url.strip(), ("ws", "wss"), "kalshi_ws_url")
    return Endpoints(mode=mode, rest_base=rest, ws_url=ws)



def market_data(
    mode: str,
    source: str,
    *,
    base_url: str | None = None,
    ws_url: str | None = None,
    sim_host: str = "127.0.0.1",
    sim_port: int = 8090,
) -> Endpoints:
    """Where market data and the index come from: :func:`resolve`'s exchange, except in
    ``paper`` mode, where it is ``source``'s (with the URL overrides). A ``sim`` source is
    a simulator standing in for the exchange, so it must be named by both overrides (the
    default address is the paper engine's own)."""
    if str(mode).strip().lower() != "paper":
        return resolve(mode, base_url=base_url, ws_url=ws_url, sim_host=sim_host,
                       sim_port=sim_port)
    if source not in SOURCES:
        raise UrlConfigError(f"paper_source: {source!r} is not one of {', '.join(SOURCES)}")
    if source == "sim" and not (base_url and ws_url):
        raise UrlConfigError("paper_source sim: set kalshi_base_url and kalshi_ws_url to the "
                             "simulator that stands for the exchange")
    return resolve(source, base_url=base_url, ws_url=ws_url, sim_host=sim_host,
                   sim_port=sim_port)
