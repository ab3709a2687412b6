"""Configuration: layers and their precedence, .env.example in step, no runtime writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app import config

REPO = Path(__file__).resolve().parent.parent


def env_example_keys() -> set[str]:
    text = (REPO / ".env.example").read_text()
    return set(re.findall(r"^(REC_[A-Z0-9_]+)=", text, flags=re.M))


def test_env_example_lists_exactly_the_settings():
    settings_keys = {config.env_name(k) for k in config.Settings.model_fields
                     if k not in config.SECRET_KEYS}
    documented = env_example_keys()
    assert settings_keys - documented == set(), "settings missing from .env.example"
    assert documented - settings_keys == set(), ".env.example names keys Settings lacks"


def test_env_example_values_are_the_defaults():
    text = (REPO / ".env.example").read_text()
    defaults = json.loads(config.DEFAULT_FILE.read_text())
    for key, value in re.findall(r"^REC_([A-Z0-9_]+)=(.*)$", text, flags=re.M):
        assert str(defaults[key.lower()]) == value, key


def test_every_secret_is_documented_as_a_credential_file():
    text = (REPO / ".env.example").read_text()
    for key in config.SECRET_KEYS:
        assert re.search(rf"^#\s+{key}\s", text, flags=re.M), key


def test_default_file_covers_every_non_secret_setting():
    defaults = json.loads(config.DEFAULT_FILE.read_text())
    defaults.pop("_comment")
    assert set(defaults) == set(config.Settings.model_fields) - config.SECRET_KEYS
    config.Settings.model_validate(defaults)


def test_precedence_env_over_local_over_default(tmp_path):
    (tmp_path / "config.local.json").write_text(json.dumps({"web_port": 3100, "db_port": 6543}))
    environ = {"REC_CONFIG_DIR": str(tmp_path), "REC_WEB_PORT": "3200"}
    s = config.load(environ)
    assert s.web_port == 3200  # environment wins
    assert s.db_port == 6543  # local beats default
    assert s.exchange_sim_port == 8090  # default
    sources = {v.key: v.source for v in config.provenance(environ)}
    assert sources["web_port"] == "environment"
    assert sources["db_port"].startswith("local (")
    assert sources["exchange_sim_port"].startswith("default (")


def test_credentials_directory_wins_and_secrets_are_redacted(tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "db_password").write_text("s3cret-value\n")
    fallback = tmp_path / "fallback"
    fallback.mkdir()
    (fallback / "db_password").write_text("other\n")
    environ = {"REC_CONFIG_DIR": str(tmp_path), "CREDENTIALS_DIRECTORY": str(creds),
               "REC_CREDENTIALS_PATH": str(fallback)}
    s = config.load(environ)
    assert s.db_password.get_secret_value() == "s3cret-value"
    shown = {v.key: v for v in config.provenance(environ)}
    assert shown["db_password"].value == "<redacted>"
    assert "s3cret" not in repr(s)


# named one by one (not read from SECRET_KEYS): a check that covered only some secrets, or
# a secret that silently stopped being one, fails here
SECRETS = ["db_password", "kalshi_key_id", "kalshi_private_key", "web_password_hash"]


def test_the_secrets_are_exactly_the_credential_files():
    assert sorted(config.SECRET_KEYS) == sorted(SECRETS)


@pytest.mark.parametrize("key", SECRETS)
def test_secret_in_environment_is_refused(tmp_path, key):
    with pytest.raises(config.ConfigError,
                       match=f"REC_{key.upper()}: secrets are not read from the environment"):
        config.load({"REC_CONFIG_DIR": str(tmp_path), f"REC_{key.upper()}": "x"})


@pytest.mark.parametrize("key", SECRETS)
def test_secret_in_local_file_is_refused(tmp_path, key):
    (tmp_path / "config.local.json").write_text(json.dumps({key: "x"}))
    with pytest.raises(config.ConfigError, match=f"{key} is a secret"):
        config.load({"REC_CONFIG_DIR": str(tmp_path)})


@pytest.mark.parametrize(
    ("local", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a"]', "must hold a JSON object"),
        ('{"web_prot": 1}', "unknown setting 'web_prot'"),
        ('{"db_pool_min": 9, "db_pool_max": 2}', "REC_DB_POOL_MIN=9 (from local ("),
        ('{"web_port": 0}', "REC_WEB_PORT=0 (from local ("),
    ],
)
def test_bad_local_file_names_the_problem(tmp_path, local, message):
    (tmp_path / "config.local.json").write_text(local)
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.load({"REC_CONFIG_DIR": str(tmp_path)})


def test_config_init_creates_only_when_absent(rec_home):
    r = rec_home.rec("config", "init")
    path = rec_home.config_dir / "config.local.json"
    assert r.returncode == 0 and r.stdout.strip() == f"created {path}"
    path.write_text('{"web_port": 3999}\n')
    r = rec_home.rec("config", "init")
    assert r.returncode == 0 and "already exists; left unchanged" in r.stdout
    assert path.read_text() == '{"web_port": 3999}\n'


def test_config_show_prints_value_and_source_with_secrets_redacted(rec_home):
    (rec_home.config_dir / "config.local.json").write_text('{"db_port": 6000}')
    rec_home.credential("db_password", "hunter2-secret")
    rec_home.env["REC_LOG_LEVEL"] = "warning"
    r = rec_home.rec("config", "show")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines()}
    assert set(rows) == {config.env_name(k) for k in config.Settings.model_fields}
    assert "6000" in rows["REC_DB_PORT"] and "local (" in rows["REC_DB_PORT"]
    assert "warning" in rows["REC_LOG_LEVEL"] and "environment" in rows["REC_LOG_LEVEL"]
    assert "<redacted>" in rows["REC_DB_PASSWORD"] and "credential (" in rows["REC_DB_PASSWORD"]
    assert "hunter2" not in r.stdout


def test_config_show_with_bad_value_exits_78(rec_home):
    rec_home.env["REC_DB_PORT"] = "-1"
    r = rec_home.rec("config", "show")
    assert r.returncode == 78
    assert "REC_DB_PORT=-1" in r.stderr


def test_a_systemd_unit_gets_only_its_load_credentials(tmp_path):
    """Under systemd ($INVOCATION_ID) without $CREDENTIALS_DIRECTORY the unit declared no
    credential: the credential files themselves are never read (root-only anyway)."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "db_password").write_text("from-the-files\n")
    env = {"REC_CONFIG_DIR": str(tmp_path), "REC_CREDENTIALS_PATH": str(creds)}
    assert config.load(env).db_password.get_secret_value() == "from-the-files"
    assert config.load({**env, "INVOCATION_ID": "abc"}).db_password is None
    given = tmp_path / "given"
    given.mkdir()
    (given / "db_password").write_text("from-systemd\n")
    loaded = config.load({**env, "INVOCATION_ID": "abc", "CREDENTIALS_DIRECTORY": str(given)})
    assert loaded.db_password.get_secret_value() == "from-systemd"


@pytest.mark.parametrize("denied", ["read_text", "exists"])
@pytest.mark.parametrize("args", [["config", "show"], ["status"], ["services"]])
def test_an_operator_without_sudo_is_told_to_use_it(tmp_path, monkeypatch, capsys, denied,
                                                    args):
    """rec status / rec config show as a non-root user on a host (issue 15): one clear line
    and exit 77, never a PermissionError traceback. (Tests run as root, so the denial is
    simulated at the file calls a non-root user's run fails on.)"""
    from app import cli

    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "config.local.json").write_text("{}\n")
    real = getattr(Path, denied)

    def deny(self, *a, **kw):
        if str(self).startswith(str(etc)):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, denied, deny)
    monkeypatch.setenv("REC_CONFIG_DIR", str(etc))
    with pytest.raises(SystemExit) as exit_:
        raise SystemExit(cli.main(args))
    assert exit_.value.code == 77
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run it with sudo" in err[0] and "Permission denied" in err[0]
