"""The one registry of rec's long-running services.

A service is one module in this package (a :class:`app.runtime.Service` subclass) plus one
line in :data:`REGISTRY`. Everything else derives from that line:

- ``rec run NAME`` finds the class here;
- ``rec services --json`` hands the list to Ansible, which renders one
  ``rec-NAME.service`` unit per entry (ports, credentials, ordering, timings), starts it and
  proves it healthy; Molecule's verify reads the same list;
- ``rec status`` and rec-web's ``/api/health`` expect exactly these units;
- the test suite starts every entry and waits for READY.

This module imports nothing heavy: the service classes load only when run.
"""

from __future__ import annotations

import importlib
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from app.config import Settings
    from app.runtime.service import Service

ALL_MODES = ("sim", "demo", "prod", "paper")
MIGRATE_UNIT = "rec-migrate.service"  # the oneshot ordered before every service


@dataclass(frozen=True)
class ServiceDef:
    """What a service is and needs. ``port`` names the Settings field holding its HTTP port."""

    name: str  # unit rec-<name>.service, `rec run <name>`
    entry: str  # "module:Class"
    description: str
    port: str | None = None  # Settings field, e.g. "web_port"; None: no HTTP port
    public: bool = False  # the port is reached from other hosts: bind REC_BIND_HOST, else
    #                       REC_TARGET_HOST (where rec's own services reach each other)
    health: tuple[str, ...] = ()  # HTTP paths that answer 200 when healthy (needs a port)
    database: bool = False  # needs PostgreSQL: the runner opens nothing, the unit orders after it
    exchange: bool = False  # talks to the exchange: after rec-exchange-sim in sim mode
    credentials: tuple[str, ...] = ()  # credential files the unit loads (LoadCredential=)
    journal: bool = False  # reads the rec units' journal: group systemd-journal (no private
    #                        user namespace, which would hide the group)
    network: bool = True  # False: no network at all (PrivateNetwork=, AF_UNIX only)
    modes: tuple[str, ...] = ALL_MODES  # account modes it runs in

    @property
    def unit(self) -> str:
        return f"rec-{self.name}.service"

    def load(self) -> type[Service]:
        return load_entry(self.entry)


# ---- the registry: one line per service, inside the parentheses --------------------------------
REGISTRY: tuple[ServiceDef, ...] = (
    ServiceDef("exchange-sim", "app.services.exchange_sim:ExchangeSimService", "exchange simulator (Kalshi-compatible REST + WS)", port="exchange_sim_port", health=("/healthz",), modes=("sim",)),  # noqa: E501
    ServiceDef("paper", "app.paper.service:PaperService", "paper trading engine: the live book mirrored, rec's orders, fills, positions and balance kept here (docs/paper.md)", port="exchange_sim_port", health=("/healthz",), exchange=True, credentials=("kalshi_key_id", "kalshi_private_key"), modes=("paper",)),  # noqa: E501
    ServiceDef("market-feed", "app.services.market_feed:MarketFeedService", "market data in: WebSocket (REST fallback), change-only storage", database=True, exchange=True, credentials=("db_password", "kalshi_key_id", "kalshi_private_key")),  # noqa: E501
    ServiceDef("account-sync", "app.services.account_sync:AccountSyncService", "account ledger in: bounded initial REST sync, live WebSocket, reconcile", database=True, exchange=True, credentials=("db_password", "kalshi_key_id", "kalshi_private_key")),  # noqa: E501
    ServiceDef("price-feed", "app.services.price_feed:PriceFeedService", "settlement index in: cfbenchmarks_value, one row a second with deltas and momentum", database=True, exchange=True, credentials=("db_password", "kalshi_key_id", "kalshi_private_key")),  # noqa: E501
    ServiceDef("coordinator", "app.services.coordinator:CoordinatorService", "every second per series: probability per strike, strike table, watchlist", database=True, credentials=("db_password",)),  # noqa: E501
    ServiceDef("trade-manager", "app.services.trade_manager:TradeManagerService", "the one writer of trades: intents, risk limits, kill switch, state machine, P&L, the books reconciled with the exchange", port="trade_manager_port", health=("/healthz", "/readyz"), database=True, exchange=True, credentials=("db_password", "kalshi_key_id", "kalshi_private_key")),  # noqa: E501
    ServiceDef("trade-executor", "app.services.trade_executor:TradeExecutorService", "sends the manager's orders exactly once (derived client_order_id), order groups", port="trade_executor_port", health=("/healthz", "/readyz"), database=True, exchange=True, credentials=("db_password", "kalshi_key_id", "kalshi_private_key")),  # noqa: E501
    ServiceDef("trade-supervisor", "app.services.trade_supervisor:TradeSupervisorService", "every second: open trades against the market, exit rules, closes through the manager", port="trade_supervisor_port", health=("/healthz", "/readyz"), database=True, credentials=("db_password",)),  # noqa: E501
    ServiceDef("auto-entry", "app.services.auto_entry:AutoEntryService", "entry rules on the watchlist (off unless the auto_entry_enabled trading setting is on; dry run)", port="auto_entry_port", health=("/healthz", "/readyz"), database=True, credentials=("db_password",)),  # noqa: E501
    ServiceDef("web", "app.services.web:WebService", "dashboard, JSON API and health aggregate", port="web_port", public=True, health=("/healthz", "/readyz", "/api/health"), database=True, exchange=True, credentials=("db_password", "web_password_hash")),  # noqa: E501
    ServiceDef("journal", "app.services.journal:JournalService", "the rec units' last journal lines, exported for the dashboard's Services page", journal=True, network=False),  # noqa: E501
)

LOCAL_EXCHANGE = "exchange-sim"  # the service that is the exchange in account mode sim
LOCAL_ENGINES = {"sim": LOCAL_EXCHANGE, "paper": "paper"}  # rec trades on it in that mode

# Start order beyond rec-migrate (After=, for the services enabled on the host): data in, then
# the executor, then what decides trades. systemd stops in the reverse order, so a stop or a
# release switch (docs/bundle.md, "Releases") stops trading first, then the executor (no order
# left in flight), then data in.
AFTER: dict[str, tuple[str, ...]] = {
    "trade-executor": ("market-feed", "account-sync", "price-feed"),
    **{name: ("trade-executor",)
       for name in ("coordinator", "trade-manager", "trade-supervisor", "auto-entry")},
}


class UnknownService(LookupError):
    pass


def by_name(name: str, registry: tuple[ServiceDef, ...] | None = None) -> ServiceDef:
    registry = REGISTRY if registry is None else registry
    for spec in registry:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in registry)
    raise UnknownService(f"unknown service {name!r}; known services: {known}")


def name_of(entry: str, cls: type[Service]) -> str:
    """The name `rec run module:Class` runs under: the registry's for a registered class, else
    (tests, experiments) the class's own ``name``."""
    return next((s.name for s in REGISTRY if s.entry == entry), cls.name)


def enabled(mode: str, registry: tuple[ServiceDef, ...] | None = None,
            only: tuple[str, ...] = ()) -> list[ServiceDef]:
    """The services that run in account mode ``mode``, in registry order; ``only`` (a host's
    REC_SERVICES, see :func:`selected`) narrows them to that host's share."""
    return [s for s in (REGISTRY if registry is None else registry)
            if mode in s.modes and (not only or s.name in only)]


def expected_units(mode: str, registry: tuple[ServiceDef, ...] | None = None,
                   only: tuple[str, ...] = ()) -> list[str]:
    """Every rec unit a host in this mode runs: rec-migrate plus one per enabled service."""
    return [MIGRATE_UNIT] + [s.unit for s in enabled(mode, registry, only)]


def selected(services: str) -> tuple[str, ...]:
    """The services a host runs, from its REC_SERVICES; () means every service of the mode."""
    return tuple(n for n in services.split(",") if n)


def check_selection(services: str, mode: str) -> None:
    """REC_SERVICES names services of this account mode, and a subset leaves rec-web out
    (its health aggregate expects every unit of the mode). Raises ValueError naming the key."""
    only = selected(services)
    for name in only:
        try:
            spec = by_name(name)
        except UnknownService as exc:
            raise ValueError(f"services: {exc.args[0]}") from None
        if mode not in spec.modes:
            raise ValueError(f"services: {name} does not run in account mode {mode}")
    if only and "web" in only and len(enabled(mode, only=only)) < len(enabled(mode)):
        raise ValueError("services: a host that runs web runs every service of the account "
                         "mode (rec-web's health aggregate expects all of them); leave "
                         "REC_SERVICES empty there")


def load_entry(entry: str) -> type[Service]:
    """Import ``module:Class`` and check it is a Service (ImportError/TypeError otherwise)."""
    from app.runtime.service import Service

    module, sep, attr = entry.partition(":")
    if not sep:
        raise ImportError(f"{entry!r} is not of the form module:Class")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except AttributeError as exc:
        raise ImportError(str(exc)) from None
    if not (isinstance(cls, type) and issubclass(cls, Service)):
        raise TypeError(f"{entry} is not a Service")
    return cls


def _ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "localhost" if host == "localhost" else None


def _loopback(address: str | None) -> bool:
    return address in ("127.0.0.1", "::1", "localhost")


def listen(spec: ServiceDef, settings: Settings) -> str | None:
    """Where systemd listens for a public port bound to a non-loopback address
    (``ListenStream=`` of rec-<name>.socket, socket activation), or None: the service binds its
    port itself. The socket unit's own IP filter (none) is what applies to its peers, so the
    service keeps its allow-list (systemd.resource-control(5), socket-activated services)."""
    address = _ip(settings.bind_host)
    if not (spec.public and spec.port) or address is None or _loopback(address):
        return None
    port = getattr(settings, spec.port)
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def ip_allow(spec: ServiceDef, settings: Settings) -> list[str] | None:
    """The addresses a unit may talk to (IPAddressAllow=, with IPAddressDeny=any), or None
    when it must reach the world: a public port it binds itself to a non-loopback address (a
    host name: no socket unit, see :func:`listen`), a simulator other app hosts use
    (REC_SIM_BIND_HOST not loopback), or a real exchange (demo/prod)."""
    if spec.public and not _loopback(_ip(settings.bind_host)) and not listen(spec, settings):
        return None
    if spec.name == LOCAL_EXCHANGE and settings.sim_bind_host and not _loopback(
            _ip(settings.sim_bind_host)):
        return None
    if spec.exchange and settings.account_mode.value != "sim":
        return None
    allow = ["localhost"]
    hosts = [settings.target_host] + ([settings.db_host] if spec.database else [])
    if spec.exchange:  # sim mode: the simulator may be another app host's (URL overrides)
        hosts += [urlsplit(u).hostname or "" for u in (settings.kalshi_base_url,
                                                      settings.kalshi_ws_url) if u]
    for host in hosts:
        address = _ip(host)
        if address is None:
            return None  # a name: no address to allow, so no filter rather than a wrong one
        if address not in allow and not ipaddress.ip_address(
                address if address != "localhost" else "127.0.0.1").is_loopback:
            allow.append(address)
    return allow


def describe(settings: Settings, registry: tuple[ServiceDef, ...] | None = None) -> dict[str, Any]:
    """The registry as the units need it, with this host's effective settings
    (``rec services --json``; the rec_services role and Molecule's verify read it)."""
    registry = REGISTRY if registry is None else registry
    mode = settings.account_mode.value
    only = selected(settings.services)
    names = {s.name for s in enabled(mode, registry, only)}
    out = []
    for s in registry:
        after = [MIGRATE_UNIT]
        local = LOCAL_ENGINES.get(mode)
        if s.exchange and local in names and s.name != local:
            after.append(f"rec-{local}.service")
        after += [f"rec-{n}.service" for n in AFTER.get(s.name, ()) if n in names]
        out.append({
            "name": s.name,
            "unit": s.unit,
            "description": s.description,
            "enabled": s.name in names,
            "port": getattr(settings, s.port) if s.port else None,
            "health": list(s.health),
            "database": s.database,
            "exchange": s.exchange,
            "credentials": list(s.credentials),
            "after": after,
            "public": s.public,
            "listen": listen(s, settings),
            "journal": s.journal,
            "network": s.network,
            "ip_allow": ip_allow(s, settings) if s.network else [],
        })
    return {
        "account_mode": mode,
        "watchdog_sec": settings.watchdog_sec,
        "start_timeout_sec": settings.start_timeout_sec,
        "stop_timeout_sec": settings.stop_timeout_sec,
        "migrate_unit": MIGRATE_UNIT,
        "selected": list(only),
        "units": expected_units(mode, registry, only),
        "services": out,
    }


def metric_files() -> list[str]:
    """The names a metrics file may have (``rec_<name>.prom``): every registered service, and
    the backup job's."""
    from app.runtime.metrics import BACKUP

    return [s.name for s in REGISTRY] + [BACKUP]
