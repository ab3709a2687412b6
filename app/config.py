"""rec's one Settings object and the layers it is read from.

Precedence, highest first:

1. ``REC_*`` environment variables (an operator's ``systemctl edit rec-web`` drop-in with
   ``Environment=REC_WEB_PORT=...`` lands here, so it wins, as systemd users expect)
2. ``rec.env`` in ``REC_CONFIG_DIR`` (``REC_*=value`` lines written by the role; read by rec
   itself, not by systemd's ``EnvironmentFile=``, which would beat every drop-in)
3. ``config.local.json`` in ``REC_CONFIG_DIR`` (written by the role or ``rec config init``)
4. ``config.default.json`` shipped inside the package

Secrets never come from those layers: they are read from files in
``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``) or, outside systemd,
from ``REC_CREDENTIALS_PATH``.

Nothing here ever writes a file. ``load()`` raises :class:`ConfigError`, which the
runtime turns into one line on stderr and exit status 78 (EX_CONFIG).
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app.kalshi.urls import UrlConfigError, market_data

ENV_PREFIX = "REC_"
EX_CONFIG = 78
EX_NOPERM = 77  # sysexits.h: the operator lacks the permission (run it with sudo)
DEFAULT_FILE = Path(__file__).with_name("config.default.json")
LOCAL_FILE_NAME = "config.local.json"
ENV_FILE_NAME = "rec.env"

Port = Field(ge=1, le=65535)  # every port setting


class AccountMode(StrEnum):
    sim = "sim"
    demo = "demo"
    prod = "prod"
    paper = "paper"  # market data from paper_source, orders on a local engine (docs/paper.md)


class Settings(BaseSettings):
    """Every setting rec reads. ``.env.example`` documents each one (a test keeps them in step).

    The layers are read by :func:`load`, which also records where each value came from
    (``rec config show``); the merged values reach pydantic-settings as init arguments, so
    its own environment and dotenv sources are switched off to keep one reading of them.
    """

    model_config = SettingsConfigDict(extra="forbid", frozen=True, env_prefix=ENV_PREFIX)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings: PydanticBaseSettingsSource, *args, **kwargs
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    # where things live (state_dir: the units' StateDirectory=, the one place they may write;
    # relative paths in other settings are under it)
    config_dir: Path
    credentials_path: Path
    state_dir: Path

    # network
    bind_host: str = Field(min_length=1)
    target_host: str = Field(min_length=1)
    web_port: int = Port
    exchange_sim_port: int = Port
    trade_manager_port: int = Port
    trade_executor_port: int = Port
    trade_supervisor_port: int = Port
    auto_entry_port: int = Port
    trade_supervisor_interval_sec: float = Field(ge=0.05, le=60)
    auto_entry_interval_sec: float = Field(ge=0.05, le=60)
    # rec-trade-manager compares the books with the exchange at start and then this often
    # (app/ledger/standing.py); rec-web's ledger check fails a result older than 3 of these
    ledger_reconcile_interval_sec: float = Field(ge=1, le=86_400)
    # retention (app/db/retention.py): rec-auto-entry's decisions; the trade events of
    # finished trades (0 keeps them)
    auto_entry_decisions_retention_days: int = Field(ge=1, le=3650)
    trade_events_retention_days: int = Field(ge=0, le=36_500)
    # the rec services this host runs, comma-separated ("": every service of the account
    # mode); app hosts share the work this way (app.services.selected)
    services: str = Field(pattern=r"^[a-z0-9-]*(,[a-z0-9-]+)*$")

    # database
    db_host: str = Field(min_length=1)
    db_port: int = Port
    db_name: str = Field(min_length=1)
    db_user: str = Field(min_length=1)
    db_sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
    db_sslrootcert: str  # CA file that signs the server's certificate ("": libpq's default)
    db_pool_min: int = Field(ge=0, le=100)
    db_pool_max: int = Field(ge=1, le=100)
    db_connect_timeout_sec: float = Field(gt=0, le=300)

    # backups (docs/bundle.md, "Backups"): `rec db migrate` dumps a database that has data
    # before it applies migrations, into backup_before_migrate_dir; `rec status` and the
    # Services page call the last good backup STALE past backup_max_age_hours
    backup_before_migrate: bool
    backup_before_migrate_dir: Path
    backup_max_age_hours: float = Field(gt=0, le=24 * 366)

    # exchange
    account_mode: AccountMode
    kalshi_base_url: str
    kalshi_ws_url: str
    # paper mode (docs/paper.md): the exchange market data and the index come from (the URL
    # overrides above then name it); orders, fills and the balance stay on rec-paper
    paper_source: Literal["demo", "prod", "sim"] = "demo"

    # exchange simulator (rec-exchange-sim)
    sim_seed: int
    sim_speed: float = Field(ge=0, le=3600)
    sim_keys_dir: Path  # relative: under state_dir
    sim_faults_enabled: bool
    sim_rate_tier: Literal["basic", "advanced", "premier", "prime", "unlimited"]
    sim_start_balance_cents: int = Field(ge=0)
    sim_activity: float = Field(ge=0, le=3600)
    # address rec-exchange-sim listens on ("": REC_TARGET_HOST); 0.0.0.0 when other app
    # hosts use this host's simulator (their REC_KALSHI_BASE_URL/WS_URL name this host)
    sim_bind_host: str
    sim_maintenance_window: str = Field(
        pattern=r"^((mon|tue|wed|thu|fri|sat|sun) ([01][0-9]|2[0-3]):[0-5][0-9]"
                r"-([01][0-9]|2[0-4]):[0-5][0-9])?$")
    # replay (docs/replay.md): a recording (`rec record export`) played instead of the
    # generated world ("": generate), the order-to-exchange latency in simulated ms, and
    # playing as fast as the WebSocket clients read (sim_speed then unused)
    sim_replay_file: str = ""
    sim_replay_latency_ms: int = Field(default=0, ge=0, le=60_000)
    sim_replay_flat_out: bool = False

    # rec-market-feed: what to follow (comma-separated lists), how, and what to keep
    market_feed_mode: Literal["ws", "http"]
    market_feed_series: str = Field(pattern=r"^[A-Za-z0-9_.-]*(,[A-Za-z0-9_.-]+)*$")
    market_feed_events: str = Field(pattern=r"^[A-Za-z0-9_.-]*(,[A-Za-z0-9_.-]+)*$")
    market_feed_tickers: str = Field(pattern=r"^[A-Za-z0-9_.-]*(,[A-Za-z0-9_.-]+)*$")
    market_feed_fallback: bool
    market_feed_fallback_after_failures: int = Field(ge=1, le=1000)
    market_feed_fallback_after_sec: float = Field(gt=0, le=3600)
    market_feed_poll_interval_sec: float = Field(ge=0.1, le=3600)
    market_feed_heartbeat_timeout_sec: float = Field(gt=0, le=600)
    market_feed_ready_timeout_sec: float = Field(gt=0, le=3600)
    market_feed_batch_rows: int = Field(ge=1, le=100_000)
    market_feed_flush_interval_ms: int = Field(ge=1, le=60_000)
    market_feed_snapshot_interval_sec: float = Field(gt=0, le=86_400)
    market_feed_stale_after_sec: float = Field(gt=0, le=86_400)
    market_feed_retention_days: int = Field(ge=1, le=3650)
    market_feed_prune_batch_rows: int = Field(ge=1, le=1_000_000)
    market_feed_prune_interval_sec: float = Field(gt=0, le=86_400)
    market_feed_compact_interval_sec: float = Field(gt=0, le=3600)
    market_feed_segment_sec: float = Field(gt=0, le=86_400)
    # Kalshi WebSocket client (both data services)
    kalshi_ws_compression: bool
    kalshi_ws_queue_max: int = Field(ge=10, le=10_000_000)
    kalshi_ws_backoff_base_sec: float = Field(gt=0, le=600)
    kalshi_ws_backoff_max_sec: float = Field(gt=0, le=3600)
    kalshi_ws_ping_interval_sec: float = Field(ge=0, le=600)
    # rec-account-sync
    account_sync_initial_deadline_sec: float = Field(gt=0, le=3600)
    account_sync_call_timeout_sec: float = Field(gt=0, le=600)
    account_sync_page_limit: int = Field(ge=1, le=1000)
    account_sync_fill_overlap_sec: int = Field(ge=0, le=86_400)
    account_sync_reconcile_interval_sec: float = Field(gt=0, le=86_400)
    # rec-price-feed (the settlement index) and rec-coordinator (strike table, watchlist)
    price_feed_indices: str = Field(pattern=r"^[A-Za-z0-9_]+(,[A-Za-z0-9_]+)*$")
    price_feed_channel: Literal["cfbenchmarks_value", "cfbenchmarks_value_5hz"]
    price_feed_stale_after_sec: float = Field(gt=0, le=3600)
    price_feed_retention_days: int = Field(ge=1, le=3650)
    price_feed_prune_batch_rows: int = Field(ge=1, le=1_000_000)
    price_feed_prune_interval_sec: float = Field(gt=0, le=86_400)
    coordinator_series: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_]+(,[A-Za-z0-9_.-]+:[A-Za-z0-9_]+)*$")
    coordinator_interval_sec: float = Field(ge=0.05, le=60)
    coordinator_strikes_each_side: int = Field(ge=1, le=100)
    coordinator_max_index_age_sec: float = Field(gt=0, le=3600)
    coordinator_max_market_age_sec: float = Field(gt=0, le=3600)
    coordinator_vol_lookback_min: int = Field(ge=2, le=1440)
    coordinator_min_vol_samples: int = Field(ge=2, le=100_000)
    coordinator_min_fingerprint_samples: int = Field(ge=1, le=10_000_000)
    coordinator_workers: int = Field(ge=1, le=32)
    watchlist_min_volume: float = Field(ge=0)
    watchlist_min_probability: float = Field(ge=0, le=1)
    watchlist_max_ask: float = Field(gt=0, le=1)
    watchlist_min_diff_cents: float = Field(ge=-100, le=100)
    # rec-web: the dashboard's login (the password's hash is the credential web_password_hash)
    web_user: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    web_session_ttl_sec: int = Field(ge=60, le=30 * 86_400)
    web_login_max_failures: int = Field(ge=1, le=1000)
    web_login_window_sec: int = Field(ge=1, le=86_400)
    # the TLS proxy's address: X-Forwarded-For/-Proto believed from it only ("": from none)
    web_trusted_proxy: str = Field(pattern=r"^([0-9.]{7,15}|[0-9A-Fa-f:]{2,39})?$")
    # how long after rec-web starts a pricing table with no row yet is "waiting", not failing
    web_first_value_grace_sec: float = Field(ge=0, le=3600)
    # rec-journal: the rec units' last journal lines, exported for rec-web's Services page
    journal_lines: int = Field(ge=1, le=200)
    journal_export_path: str = Field(pattern=r"^/.+")
    journal_export_interval_sec: float = Field(ge=0.1, le=60)
    journal_directory: str = Field(pattern=r"^(/.*)?$")  # "": the system journal
    # Prometheus metrics (app/runtime/metrics.py): each service's textfile in metrics_dir
    # (relative: under state_dir), rewritten every metrics_interval_sec; the Services page
    # links monitoring_url ("": no link)
    metrics_enabled: bool
    metrics_dir: Path
    metrics_interval_sec: float = Field(ge=0.1, le=3600)
    monitoring_url: str = Field(pattern=r"^(https?://\S+)?$")

    # service runtime: phase deadlines and the stop timeout are the runner's; the unit's
    # WatchdogSec=, TimeoutStartSec= and TimeoutStopSec= are built from watchdog_sec,
    # start_timeout_sec and stop_timeout_sec (`rec services --json` hands them to the role)
    log_level: Literal["debug", "info", "warning", "error"]
    # "" = the wall clock; else a file holding the simulated time (`rec backtest` writes it,
    # app/runtime/clock.py): the services' decisions follow the replay's clock
    clock_file: str = Field(pattern=r"^(/.+)?$")
    phase_timeout_sec: float = Field(gt=0, le=3600)
    stop_timeout_sec: float = Field(gt=0, le=600)
    watchdog_sec: int = Field(ge=2, le=3600)
    start_timeout_sec: int = Field(ge=5, le=3600)

    # secrets: credential files, never environment or config files
    db_password: SecretStr | None = None
    kalshi_key_id: SecretStr | None = None
    kalshi_private_key: SecretStr | None = None
    web_password_hash: SecretStr | None = None  # scrypt hash of rec-web's login password

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.state_dir.is_absolute():
            raise ValueError(f"state_dir: must be an absolute path (got {self.state_dir})")
        for key in ("sim_keys_dir", "metrics_dir"):
            if not getattr(self, key).is_absolute():
                object.__setattr__(self, key, self.state_dir / getattr(self, key))
        self._check_timeouts()
        self._check_ranges()
        self._check_urls()
        # the selection of services (REC_SERVICES) is checked where the registry is known:
        # the CLI, before `rec run` and `rec services`. Credentials are checked where they
        # are used: each service declares the ones it needs (app.services) and the runner
        # refuses to start without them (exit 78)
        return self

    def _check_timeouts(self) -> None:
        """Every startup deadline fits inside systemd's TimeoutStartSec= of the units."""
        for key in ("phase_timeout_sec", "market_feed_ready_timeout_sec",
                    "account_sync_initial_deadline_sec"):
            if getattr(self, key) >= self.start_timeout_sec:
                raise ValueError(
                    f"{key}: {getattr(self, key):g} must be below start_timeout_sec "
                    f"{self.start_timeout_sec} (systemd's TimeoutStartSec= of every unit)"
                )

    def _check_ranges(self) -> None:
        for low, high in (("kalshi_ws_backoff_base_sec", "kalshi_ws_backoff_max_sec"),
                          ("db_pool_min", "db_pool_max")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low}: {getattr(self, low):g} is larger than {high} "
                                 f"{getattr(self, high):g}")

    def _check_urls(self) -> None:
        try:
            endpoints = market_data(self.account_mode, self.paper_source,
                                    base_url=self.kalshi_base_url or None,
                                    ws_url=self.kalshi_ws_url or None)
        except UrlConfigError as exc:
            raise ValueError(str(exc)) from None
        for key, path, want in (("kalshi_base_url", endpoints.rest_path_prefix, "/trade-api/v2"),
                                ("kalshi_ws_url", endpoints.ws_path, "/trade-api/ws/v2")):
            if getattr(self, key) and not path.endswith(want):
                raise ValueError(f"{key}: the URL's path must end with {want} (got {path!r})")


SECRET_KEYS = frozenset(
    name for name, f in Settings.model_fields.items() if f.annotation == SecretStr | None
)


class ConfigError(Exception):
    """A setting that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Value:
    key: str
    value: Any
    source: str


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold a JSON object of setting names")
    unknown = sorted(set(data) - set(Settings.model_fields) - {"_comment"})
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r}")
    secrets = sorted(set(data) & SECRET_KEYS)
    if secrets:
        raise ConfigError(f"{path}: {secrets[0]} is a secret; give it as a credential file")
    data.pop("_comment", None)
    return data


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (blank lines and ``#`` comments skipped, one pair of surrounding
    quotes removed), as systemd's EnvironmentFile= reads the simple cases."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{path}:{n}: not a KEY=value line")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def _env_file_layer(path: Path) -> dict[str, str]:
    values = read_env_file(path)
    unknown = sorted(k for k in values if k.startswith(ENV_PREFIX)
                     and k.removeprefix(ENV_PREFIX).lower() not in Settings.model_fields)
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]}")
    others = sorted(k for k in values if not k.startswith(ENV_PREFIX))
    if others:
        raise ConfigError(f"{path}: {others[0]} is not a REC_* setting")
    try:
        return _env_layer(values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _env_layer(environ: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in Settings.model_fields:
        if key in SECRET_KEYS:
            if env_name(key) in environ:
                raise ConfigError(
                    f"{env_name(key)}: secrets are not read from the environment; "
                    f"put it in a credential file named {key}"
                )
            continue
        if env_name(key) in environ:
            out[key] = environ[env_name(key)]
    return out


def config_dir_from(environ: dict[str, str] | os._Environ[str]) -> Path:
    return Path(environ.get(env_name("config_dir"), "/etc/rec"))


def credentials_dir_from(environ: dict[str, str] | os._Environ[str],
                         fallback: Path) -> Path | None:
    """systemd's $CREDENTIALS_DIRECTORY wins. A process of a systemd unit ($INVOCATION_ID)
    without one has no credentials: a unit gets exactly what its LoadCredential= lines give
    it, never the files themselves. Elsewhere (the operator's `rec`, tests):
    REC_CREDENTIALS_PATH / the configured path."""
    if environ.get("CREDENTIALS_DIRECTORY"):
        return Path(environ["CREDENTIALS_DIRECTORY"])
    if environ.get("INVOCATION_ID"):
        return None
    return fallback


def _credential_layer(directory: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in SECRET_KEYS:
        path = directory / key
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigError(f"{key}: credential {path} unreadable: {exc.strerror}") from None
        text = text.strip() if key != "kalshi_private_key" else text
        if text:
            out[key] = text
    return out


def layers(environ: dict[str, str] | os._Environ[str] | None = None) -> list[tuple[str, dict]]:
    """The config layers, lowest precedence first, each as (source name, values)."""
    environ = os.environ if environ is None else environ
    out: list[tuple[str, dict]] = [(f"default ({DEFAULT_FILE.name})", _read_json(DEFAULT_FILE))]
    local = config_dir_from(environ) / LOCAL_FILE_NAME
    if local.exists():
        out.append((f"local ({local})", _read_json(local)))
    env_file = config_dir_from(environ) / ENV_FILE_NAME
    if env_file.exists():
        out.append((f"rec.env ({env_file})", _env_file_layer(env_file)))
    env = _env_layer(environ)
    out.append(("environment", env))
    merged: dict[str, Any] = {}
    for _, values in out:
        merged.update(values)
    cred_dir = credentials_dir_from(environ, Path(merged.get("credentials_path", "")))
    if cred_dir is not None:
        out.append((f"credential ({cred_dir})", _credential_layer(cred_dir)))
    return out


def _sources(found: list[tuple[str, dict]]) -> dict[str, str]:
    where: dict[str, str] = {}
    for name, values in found:
        for key in values:
            where[key] = name
    return where


def _explain(exc: ValidationError, merged: dict[str, Any], where: dict[str, str]) -> str:
    """One line naming the key, its value (never a secret's) and the layer it came from."""
    err = exc.errors()[0]
    loc = [str(p) for p in err.get("loc", ())]
    msg = err["msg"].removeprefix("Value error, ")
    key = loc[0] if loc else None
    if key is None:
        # a model-level check says "key: problem"
        head, _, rest = msg.partition(": ")
        if head not in Settings.model_fields:
            return msg
        key, msg = head, rest
    shown = "<secret>" if key in SECRET_KEYS else merged.get(key)
    source = where.get(key, "default")
    return f"{env_name(key)}={shown!s} (from {source}): {msg}"


def unknown_environment(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """REC_* variables that name no setting, each with the likely intended one."""
    known = {env_name(k) for k in Settings.model_fields}
    notes = []
    for name in sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known):
        guess = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        hint = f" (did you mean {guess[0]}?)" if guess else ""
        notes.append(f"{name} is not a rec setting and is ignored{hint}")
    return notes


def _validate(found: list[tuple[str, dict]]) -> Settings:
    merged: dict[str, Any] = {}
    for _, values in found:
        merged.update(values)
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, merged, _sources(found))) from None


def load(environ: dict[str, str] | os._Environ[str] | None = None) -> Settings:
    """Read and validate every layer. Raises ConfigError naming the bad key and its source."""
    return _validate(layers(environ))


def provenance(environ: dict[str, str] | os._Environ[str] | None = None) -> list[Value]:
    """Every key's effective value and the layer it came from, secrets redacted."""
    found = layers(environ)  # read once: validated and attributed from the same reading
    settings = _validate(found)
    source = _sources(found)
    out = []
    for key in Settings.model_fields:
        value = getattr(settings, key)
        if key in SECRET_KEYS:
            value = "<not set>" if value is None else "<redacted>"
        elif isinstance(value, StrEnum):
            value = value.value
        out.append(Value(key, value, source.get(key, "built-in")))
    return out


def init_local(config_dir: Path) -> tuple[Path, bool]:
    """Create config.local.json with a comment only if it is absent. Returns (path, created)."""
    path = config_dir / LOCAL_FILE_NAME
    if path.exists():
        return path, False
    config_dir.mkdir(parents=True, exist_ok=True)
    body = {"_comment": "Local overrides of config.default.json; REC_* environment wins over this."}
    with path.open("x") as fh:
        json.dump(body, fh, indent=2)
        fh.write("\n")
    return path, True


def csv_list(text: str) -> list[str]:
    """A comma-separated setting as a list, without empty items."""
    return [x.strip() for x in text.split(",") if x.strip()]


def report_error(exc: ConfigError) -> int:
    """One line on stderr for a command run by the operator, and its exit status: 77 when
    the files are readable by root only (run it with sudo), else 78."""
    if "Permission denied" in str(exc):
        print(f"rec: {exc}; rec's configuration and credentials are readable by root only: "
              f"run it with sudo", file=sys.stderr)
        return EX_NOPERM
    print(f"rec: config error: {exc}", file=sys.stderr)
    return EX_CONFIG


def load_or_exit() -> Settings:
    """:func:`load` for an operator's command: a config error is one line and the exit."""
    try:
        return load()
    except ConfigError as exc:
        raise SystemExit(report_error(exc)) from None
