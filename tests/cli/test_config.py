"""Settings precedence (flag > env > project file > user file > default) and bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracker_ci.config import load_config, mask_secret, user_config_path
from tracker_ci.exceptions import ConfigError

pytestmark = pytest.mark.unit


def _files(tmp_path: Path, project: str | None, user: str | None) -> tuple[Path, dict]:
    cwd = tmp_path / "project"
    cwd.mkdir()
    xdg = tmp_path / "xdg"
    environ = {"XDG_CONFIG_HOME": str(xdg)}
    if project is not None:
        (cwd / ".tracker-ci.toml").write_text(project)
    if user is not None:
        user_config_path(environ).parent.mkdir(parents=True)
        user_config_path(environ).write_text(user)
    return cwd, environ


def test_defaults(tmp_path: Path) -> None:
    cwd, environ = _files(tmp_path, None, None)
    config = load_config(environ=environ, cwd=cwd)
    assert config["url"] == "http://127.0.0.1:8080"
    assert config["fail_policy"] == "closed"
    assert config["output"] == "text"
    assert config.source("url") == "default"
    assert config.files == []


def test_precedence_flag_env_project_user_default(tmp_path: Path) -> None:
    cwd, environ = _files(
        tmp_path,
        project='url = "http://project:1"\nservice = "api"\n',
        user='url = "http://user:1"\nservice = "user-svc"\nenvironment = "UAT"\nwait = 30\n',
    )
    config = load_config(environ=environ, cwd=cwd)
    assert (config["url"], config["service"], config["environment"]) == (
        "http://project:1",
        "api",
        "UAT",
    )
    assert config["wait"] == 30.0
    assert config.source("url") == f"file {cwd / '.tracker-ci.toml'}"
    assert config.source("environment").startswith("file ") and "xdg" in config.source(
        "environment"
    )
    config = load_config(environ={**environ, "TRACKER_URL": "http://env:1"}, cwd=cwd)
    assert (config["url"], config.source("url")) == ("http://env:1", "env TRACKER_URL")
    config = load_config(
        {"url": ("http://flag:1", "flag")},
        environ={**environ, "TRACKER_URL": "http://env:1"},
        cwd=cwd,
    )
    assert (config["url"], config.source("url")) == ("http://flag:1", "flag")


def test_an_explicit_file_replaces_the_project_file(tmp_path: Path) -> None:
    cwd, environ = _files(tmp_path, 'service = "project"\n', None)
    other = tmp_path / "other.toml"
    other.write_text('service = "other"\n')
    config = load_config(environ=environ, cwd=cwd, config_file=other)
    assert config["service"] == "other"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(environ=environ, cwd=cwd, config_file=tmp_path / "missing.toml")


def test_malformed_toml_names_the_file_and_line(tmp_path: Path) -> None:
    cwd, environ = _files(tmp_path, 'url = "http://x:1"\nservice = \n', None)
    with pytest.raises(ConfigError) as caught:
        load_config(environ=environ, cwd=cwd)
    assert ".tracker-ci.toml: malformed TOML" in str(caught.value)
    assert "line 2" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('\n\nsevrice = "api"\n', r"\.tracker-ci\.toml:3: unknown key 'sevrice'"),
        ('fail_policy = "maybe"\n', r":1: bad value for 'fail_policy'.*open, closed"),
        ('environment = "prod env"\n', r":1: bad value for 'environment'.*production"),
        ("wait = -1\n", r":1: bad value for 'wait'"),
        ('url = "ftp://x"\n', r":1: bad value for 'url'"),
        ("lock_ttl = 1.5\n", r":1: bad value for 'lock_ttl'.*whole number"),
        ("timeout = 0\n", r":1: bad value for 'timeout'"),
    ],
)
def test_bad_keys_and_values_name_the_line(tmp_path: Path, text: str, expected: str) -> None:
    cwd, environ = _files(tmp_path, text, None)
    with pytest.raises(ConfigError, match=expected):
        load_config(environ=environ, cwd=cwd)


def test_a_bad_environment_value_is_a_config_error(tmp_path: Path) -> None:
    cwd, environ = _files(tmp_path, None, None)
    with pytest.raises(ConfigError, match="TRACKER_FAIL_POLICY"):
        load_config(environ={**environ, "TRACKER_FAIL_POLICY": "sometimes"}, cwd=cwd)


def test_the_token_is_masked_in_show(tmp_path: Path) -> None:
    cwd, environ = _files(tmp_path, None, None)
    config = load_config(environ={**environ, "TRACKER_TOKEN": "trk_abcdefghijklmnop"}, cwd=cwd)
    shown = {row["key"]: row for row in config.shown()}
    assert shown["token"]["value"] == "trk_ab****"
    assert "ghijklmnop" not in str(config.shown())
    assert mask_secret("short") == "****"
