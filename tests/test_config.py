"""Settings come from defaults, dialoop.toml, DIALOOP_* and arguments, in that order."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialoop.config import load_settings
from dialoop.errors import ConfigError


def test_precedence_file_then_env_then_arguments(dialoop_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dialoop_home.mkdir(parents=True)
    (dialoop_home / "dialoop.toml").write_text('max_tokens = 100\ntemperature = 0.5\nuser = "ann"\n')
    monkeypatch.setenv("DIALOOP_TEMPERATURE", "0.7")
    settings = load_settings(user="bob")
    assert (settings.max_tokens, settings.temperature, settings.user) == (100, 0.7, "bob")
    assert settings.resolved_database_url == f"sqlite:///{dialoop_home / 'dialoop.db'}"


def test_invalid_value_names_the_setting_and_its_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALOOP_TEMPERATURE", "hot")
    with pytest.raises(ConfigError, match=r"temperature \(DIALOOP_TEMPERATURE or dialoop.toml\)"):
        load_settings()


def test_unknown_key_in_the_file_is_refused(dialoop_home: Path) -> None:
    dialoop_home.mkdir(parents=True)
    (dialoop_home / "dialoop.toml").write_text("temprature = 0.5\n")
    with pytest.raises(ConfigError, match="temprature"):
        load_settings()


def test_malformed_file_is_a_config_error(dialoop_home: Path) -> None:
    dialoop_home.mkdir(parents=True)
    (dialoop_home / "dialoop.toml").write_text("max_tokens = = 3\n")
    with pytest.raises(ConfigError, match="dialoop.toml"):
        load_settings()


def test_remote_engine_needs_a_url() -> None:
    with pytest.raises(ConfigError, match="DIALOOP_REMOTE_URL"):
        load_settings(engine="remote")
