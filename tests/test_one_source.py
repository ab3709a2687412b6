"""One source for every default, one registry for every service (issue 8).

- app/config.default.json is the source of every default: each REC_* key a role templates
  must have the role's default equal to it, and each argument spec default must equal the
  role default. The drift check is a function so a negative case proves it catches drift.
- The service registry is the one list of services: the role renders exactly its units,
  with its credentials and ordering; a new service is one module plus one registry line.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import jinja2
import pytest
import yaml

from app import services
from app.config import DEFAULT_FILE
from testkit.net import free_port

REPO = Path(__file__).resolve().parent.parent
ROLES = REPO / "ansible/roles"
ENV_TEMPLATE = ROLES / "rec_app/templates/rec.env.j2"


def role_defaults(role: str) -> dict:
    return yaml.safe_load((ROLES / role / "defaults/main.yml").read_text())


def arg_spec_defaults(role: str) -> dict[str, object]:
    specs = yaml.safe_load((ROLES / role / "meta/argument_specs.yml").read_text())
    out = {}
    for entry in specs["argument_specs"].values():
        for name, opt in entry["options"].items():
            if "default" in opt:
                out[name] = opt["default"]
    return out


@pytest.mark.parametrize("role", ["rec_app", "rec_postgres", "rec_services", "rec_monitoring"])
def test_each_role_readme_documents_every_variable_with_its_default(role):
    """geerlingguy style: every variable in the role's README, as `    name: default`."""
    documented = {}
    for line in (ROLES / role / "README.md").read_text().splitlines():
        if line.startswith(f"    {role}_"):
            name, _, value = line.strip().partition(": ")
            documented[name] = yaml.safe_load(value)
    assert documented == role_defaults(role)


def drift(config: dict, defaults: dict[str, dict], env_template: str,
          specs: dict[str, dict]) -> list[str]:
    """Every place a role's default disagrees with config.default.json or its argument spec."""
    problems = []
    app_defaults = defaults["rec_app"]
    for key, var in re.findall(r"^REC_([A-Z0-9_]+)=\{\{ *(rec_app_\w+) *\}\}$", env_template,
                               re.M):
        setting = key.lower()
        if setting not in config:
            problems.append(f"rec.env.j2 templates REC_{key}, which is not a rec setting")
        elif str(app_defaults.get(var)) != str(config[setting]):
            problems.append(f"{var}={app_defaults.get(var)!r} but config.default.json "
                            f"{setting}={config[setting]!r}")
    pg = defaults["rec_postgres"]
    for var, setting in (("rec_postgres_port", "db_port"), ("rec_postgres_db_name", "db_name"),
                         ("rec_postgres_db_user", "db_user")):
        if str(pg[var]) != str(config[setting]):
            problems.append(f"{var}={pg[var]!r} but config.default.json "
                            f"{setting}={config[setting]!r}")
    if not str(app_defaults["rec_app_sim_keys_dir"]).endswith("/" + config["sim_keys_dir"]):
        problems.append(f"rec_app_sim_keys_dir={app_defaults['rec_app_sim_keys_dir']!r} is not "
                        f"<state dir>/{config['sim_keys_dir']}")
    for role, spec in specs.items():
        for var, value in spec.items():
            if var in defaults[role] and defaults[role][var] != value:
                problems.append(f"{role} argument spec {var}={value!r} but defaults/main.yml "
                                f"says {defaults[role][var]!r}")
    return problems


def current() -> tuple[dict, dict, str, dict]:
    roles = ("rec_app", "rec_postgres", "rec_services")
    return (json.loads(DEFAULT_FILE.read_text()), {r: role_defaults(r) for r in roles},
            ENV_TEMPLATE.read_text(), {r: arg_spec_defaults(r) for r in roles})


def test_role_defaults_equal_config_defaults():
    assert drift(*current()) == []


@pytest.mark.parametrize(("where", "change", "named"), [
    ("config", ("db_port", 5433), "rec_app_db_port=5432"),
    ("config", ("db_port", 5433), "rec_postgres_port=5432"),
    ("config", ("bind_host", "0.0.0.0"), "rec_app_bind_host='127.0.0.1'"),
    ("rec_app", ("rec_app_db_name", "other"), "rec_app_db_name='other'"),
    ("rec_postgres", ("rec_postgres_port", 6543), "rec_postgres_port=6543"),
    ("rec_services", ("rec_services_restart_sec", 9), "rec_services_restart_sec=2"),
])
def test_drift_check_catches_a_default_changed_in_one_place(where, change, named):
    config, defaults, template, specs = current()
    key, value = change
    if where == "config":
        config = {**config, key: value}
    else:
        defaults = {**defaults, where: {**defaults[where], key: value}}
    problems = drift(config, defaults, template, specs)
    assert problems and any(named in p for p in problems), problems


def test_drift_check_catches_a_templated_key_that_is_no_setting():
    config, defaults, template, specs = current()
    template += "REC_NOT_A_SETTING={{ rec_app_db_name }}\n"
    assert any("REC_NOT_A_SETTING" in p for p in drift(config, defaults, template, specs))


PORT_VALUES = {str(v) for k, v in json.loads(DEFAULT_FILE.read_text()).items()
               if k.endswith("_port")}
DEFAULT_HOMES = {"ansible/roles/rec_app/defaults/main.yml",
                 "ansible/roles/rec_postgres/defaults/main.yml",
                 # list every default, checked against defaults/main.yml below
                 "ansible/roles/rec_app/README.md",
                 "ansible/roles/rec_postgres/README.md",
                 "ansible/roles/rec_app/meta/argument_specs.yml",
                 "ansible/roles/rec_postgres/meta/argument_specs.yml"}


def test_no_port_literal_outside_the_checked_defaults():
    """Ports reach Ansible, Molecule and scripts from config.default.json or the registry."""
    files = subprocess.run(["git", "ls-files", "ansible", "molecule", "scripts",
                            "site.yml", "inventories"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    found = []
    for rel in files:
        if rel in DEFAULT_HOMES:
            continue
        for n, line in enumerate((REPO / rel).read_text(errors="replace").splitlines(), 1):
            code = line.split("#", 1)[0]
            if any(re.search(rf"(?<![\d.]){p}(?![\d.])", code) for p in PORT_VALUES):
                found.append(f"{rel}:{n}: {line.strip()}")
    assert found == []


# ---- the registry ------------------------------------------------------------------------------

def rec(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def test_rec_services_json_is_the_registry_with_effective_settings(rec_home):
    rec_home.env.update(REC_WEB_PORT="3999", REC_WATCHDOG_SEC="7")
    r = rec("services", "--json", env=rec_home.env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [s["name"] for s in out["services"]] == [s.name for s in services.REGISTRY]
    assert out["units"] == ["rec-migrate.service"] + [s.unit for s in services.REGISTRY
                                                       if "sim" in s.modes]
    web = next(s for s in out["services"] if s["name"] == "web")
    assert web["port"] == 3999 and out["watchdog_sec"] == 7
    assert web["after"] == ["rec-migrate.service", "rec-exchange-sim.service"]
    assert web["credentials"] == ["db_password", "web_password_hash"]


def test_rec_services_in_demo_mode_leaves_out_the_simulator(rec_home):
    rec_home.env["REC_ACCOUNT_MODE"] = "demo"
    out = json.loads(rec("services", "--json", env=rec_home.env).stdout)
    assert "rec-exchange-sim.service" not in out["units"]
    web = next(s for s in out["services"] if s["name"] == "web")
    assert web["after"] == ["rec-migrate.service"]


def test_rec_services_on_a_host_with_a_share_lists_only_its_units(rec_home):
    rec_home.env["REC_SERVICES"] = "market-feed"
    out = json.loads(rec("services", "--json", env=rec_home.env).stdout)
    assert out["units"] == ["rec-migrate.service", "rec-market-feed.service"]
    assert out["selected"] == ["market-feed"]
    feed = next(s for s in out["services"] if s["name"] == "market-feed")
    assert feed["enabled"] and feed["after"] == ["rec-migrate.service"]  # no local simulator
    assert [s["name"] for s in out["services"] if s["enabled"]] == ["market-feed"]


@pytest.mark.parametrize(("mode", "selection", "error"), [
    ("sim", "market-feed,feed", "unknown service 'feed'"),
    ("demo", "exchange-sim", "exchange-sim does not run in account mode demo"),
    ("sim", "market-feed,web", "a host that runs web runs every service"),
])
def test_a_share_of_services_that_cannot_work_is_a_config_error(rec_home, mode, selection,
                                                                error):
    rec_home.env.update(REC_ACCOUNT_MODE=mode, REC_SERVICES=selection)
    r = rec("services", "--json", env=rec_home.env)
    assert r.returncode == 78 and "REC_SERVICES" in r.stderr and error in r.stderr, r.stderr


def test_role_takes_its_unit_list_from_the_registry():
    """The role has no list of services of its own: it reads `rec services --json`."""
    text = "\n".join(p.read_text() for p in (ROLES / "rec_services").rglob("*.yml"))
    assert "services --json" in text
    for spec in services.REGISTRY:
        # as a unit, a `rec run` argument or a quoted name (plain words like "journal" are
        # prose: the role may say "the last journal lines")
        named = re.search(rf"rec-{re.escape(spec.name)}\b|run {re.escape(spec.name)}\b|"
                          rf"['\"]{re.escape(spec.name)}['\"]", text)
        assert named is None, f"{spec.name} named in the role: {named.group(0)!r}"


def render_unit(spec_json: dict, described: dict, db_local: bool = True) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLES / "rec_services/templates"),
                             trim_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["comment"] = lambda text: "\n".join("# " + x for x in text.splitlines())
    defaults = role_defaults("rec_services")
    variables = {k: v for k, v in defaults.items() if "{{" not in str(v)}
    variables.update(ansible_managed="Ansible managed", unit=spec_json,
                     rec_services__registry=described,
                     rec_services__all_units=described["units"],
                     rec_services_db_local=db_local)
    return env.get_template("rec-service.service.j2").render(**variables)


def test_a_new_service_is_one_module_plus_one_registry_line(rec_home, monkeypatch):
    """The proof of issue 8, in process: a tiny service from the test suite, added by one
    registry line, is run by name, listed by `rec services`, expected by `rec status` and
    /api/health, and gets a unit of its own with only its own credentials."""
    from app import cli, config

    line = services.ServiceDef("tiny", "tests.fake_services:SleepyPhases", "a tiny service",
                               database=True, exchange=True,
                               credentials=("db_password", "kalshi_key_id"))
    monkeypatch.setattr(services, "REGISTRY", (*services.REGISTRY, line))
    for key, value in rec_home.env.items():
        monkeypatch.setenv(key, value)

    assert services.by_name("tiny").load().__name__ == "SleepyPhases"
    assert "rec-tiny.service" in services.expected_units("sim")  # rec status, /api/health
    described = services.describe(config.load())
    tiny = next(s for s in described["services"] if s["name"] == "tiny")
    assert tiny["enabled"] and "rec-tiny.service" in described["units"]
    unit = render_unit(tiny, described)
    assert "ExecStart=/opt/rec/current/venv/bin/rec run tiny" in unit
    assert re.findall(r"^LoadCredential=(\w+):", unit, re.M) == ["db_password", "kalshi_key_id"]
    assert "Wants=rec-migrate.service rec-exchange-sim.service" in unit
    assert "postgresql.service" in unit.split("After=", 1)[1].splitlines()[0]
    assert cli.main(["services"]) == 0


@pytest.mark.parametrize("spec", services.REGISTRY, ids=lambda s: s.name)
def test_every_registered_unit_renders_with_only_its_credentials(rec_home, monkeypatch, spec):
    from app import config

    for key, value in rec_home.env.items():
        monkeypatch.setenv(key, value)
    described = services.describe(config.load())
    entry = next(s for s in described["services"] if s["name"] == spec.name)
    unit = render_unit(entry, described)
    assert f"ExecStart=/opt/rec/current/venv/bin/rec run {spec.name}" in unit
    assert re.findall(r"^LoadCredential=(\w+):", unit, re.M) == list(spec.credentials)
    assert f"WatchdogSec={described['watchdog_sec']}" in unit
    wants = unit.split("Wants=", 1)[1].split("\n")[0]
    assert "postgresql.service" not in wants  # ordered after, never pulled up


def test_registry_entries_are_loadable_services_with_settings_ports():
    from app.config import Settings

    for spec in services.REGISTRY:
        spec.load()
        if spec.port:
            assert spec.port in Settings.model_fields, spec
        assert not spec.health or spec.port, f"{spec.name}: health paths need a port"
        assert set(spec.modes) <= set(services.ALL_MODES)


@pytest.mark.parametrize(("env", "service", "allow"), [
    ({}, "exchange-sim", ["localhost"]),
    ({}, "web", ["localhost"]),  # bound to loopback, database local, exchange local
    # a public port on every address is rec-web.socket's (socket activation), which takes any
    # peer; the service keeps its own filter (it scored 1.1 without: issue 21 item 6)
    ({"REC_BIND_HOST": "0.0.0.0"}, "web", ["localhost"]),
    ({"REC_DB_HOST": "192.0.2.10"}, "web", ["localhost", "192.0.2.10"]),
    ({"REC_DB_HOST": "db.internal"}, "web", None),  # a name has no address to allow
    ({"REC_ACCOUNT_MODE": "demo"}, "web", None),  # the real exchange is on the internet
    # an app host using another app host's simulator reaches it, and that simulator takes
    # any peer (REC_SIM_BIND_HOST): issue 15, app hosts share the work
    ({"REC_KALSHI_BASE_URL": "http://192.0.2.11:8090/trade-api/v2",
      "REC_KALSHI_WS_URL": "ws://192.0.2.11:8090/trade-api/ws/v2"}, "market-feed",
     ["localhost", "192.0.2.11"]),
    ({"REC_SIM_BIND_HOST": "0.0.0.0"}, "exchange-sim", None),
    ({"REC_SIM_BIND_HOST": "127.0.0.1"}, "exchange-sim", ["localhost"]),
])
def test_units_that_talk_only_to_loopback_and_the_database_get_an_ip_filter(
        rec_home, monkeypatch, env, service, allow):
    from app import config

    for key, value in {**rec_home.env, **env}.items():
        monkeypatch.setenv(key, value)
    described = services.describe(config.load())
    entry = next(s for s in described["services"] if s["name"] == service)
    assert entry["ip_allow"] == allow
    unit = render_unit(entry, described)
    if allow:
        assert "IPAddressDeny=any" in unit and f"IPAddressAllow={' '.join(allow)}" in unit
    else:
        assert "IPAddressDeny" not in unit
    # systemd listens for the service exactly when it binds a non-loopback address
    assert entry["listen"] == (f"0.0.0.0:{entry['port']}" if env.get("REC_BIND_HOST") == "0.0.0.0"
                               else None)
    assert ("Wants=rec-web.socket" in unit) == bool(entry["listen"])


def test_rec_status_on_a_host_without_rec_web_asks_no_rec_web(rec_home_db, start_service):
    sim = start_service(rec_home_db, "exchange-sim")
    sim.notify.wait_for("READY", "1")
    rec_home_db.env["REC_SERVICES"] = "market-feed"
    r = rec_home_db.rec("status")
    assert r.returncode == 0, r.stdout  # rec-web runs on another app host
    assert "ok  database" in r.stdout and "ok  exchange" in r.stdout
    assert "rec-web" not in r.stdout


def test_the_simulator_binds_rec_sim_bind_host_for_other_app_hosts(rec_home, start_service):
    rec_home.env["REC_SIM_BIND_HOST"] = "0.0.0.0"
    sim = start_service(rec_home, "exchange-sim")
    sim.notify.wait_for("READY", "1")
    assert f"0.0.0.0:{rec_home.env['REC_EXCHANGE_SIM_PORT']}" in sim.output


def test_a_public_service_serves_the_socket_systemd_passes(rec_home_db, start_service):
    """rec-web.socket listens on the public port (socket activation, so rec-web.service keeps
    IPAddressDeny=any): rec-web serves that socket, never binds its own; the port held here
    would make a bind of its own fail. A socket on another port than the settings' is a
    config error naming both."""
    sim = start_service(rec_home_db, "exchange-sim")
    sim.notify.wait_for("READY", "1")
    assert rec_home_db.rec("db", "migrate").returncode == 0
    port = int(rec_home_db.env["REC_WEB_PORT"])
    with socket.create_server(("127.0.0.1", port)) as listening:
        web = start_service(rec_home_db, "web", listen=listening)
        web.notify.wait_for("READY", "1")
        assert f"serve http on 127.0.0.1:{port} (socket from systemd)" in web.output
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        web.terminate()
    with socket.create_server(("127.0.0.1", free_port())) as other:
        web = start_service(rec_home_db, "web", listen=other)
        assert web.wait() == 78
        assert f"http port {port} (settings) but systemd passes a socket on " in web.output


def test_only_public_services_bind_the_bind_host(rec_home_db, start_service):
    rec_home_db.env["REC_BIND_HOST"] = "0.0.0.0"
    sim = start_service(rec_home_db, "exchange-sim")
    sim.notify.wait_for("READY", "1")
    assert f"127.0.0.1:{rec_home_db.env['REC_EXCHANGE_SIM_PORT']}" in sim.output
    assert rec_home_db.rec("db", "migrate").returncode == 0
    web = start_service(rec_home_db, "web")
    web.notify.wait_for("READY", "1")
    assert f"0.0.0.0:{rec_home_db.env['REC_WEB_PORT']}" in web.output
