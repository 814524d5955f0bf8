"""The shipped sample file and the reference document cover exactly the configuration schema."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from regen_config_files import DOCS, SAMPLE, docs_with_reference

from asterisk_recorder import config
from asterisk_recorder.errors import ConfigError
from asterisk_recorder.settings import AriServerSettings, Secret, Settings

REAL = {"ASTERISK_RECORDER_ARI_PASSWORD": "a-real-ari-password"}
"""The environment an operator adds to the sample: the real ARI password."""


def test_sample_file_loads_once_the_placeholder_password_is_replaced() -> None:
    """etc/asterisk-recorder.toml loads once the real ARI password comes from the environment."""
    settings = config.load(SAMPLE, env=REAL)

    assert Secret("a-real-ari-password") == settings.ari[0].password


def test_sample_file_as_is_is_refused_for_its_placeholder_password() -> None:
    """The sample's change-me is a placeholder: loading the sample alone fails on it."""
    with pytest.raises(ConfigError) as info:
        config.load(SAMPLE, env={})

    assert ["ari.password"] == [p.split(":", 1)[0] for p in info.value.problems]
    assert "placeholder" in info.value.problems[0]
    assert "change-me" not in info.value.problems[0]


def test_sample_file_holds_every_key() -> None:
    """Every schema key is written out in the sample file."""
    doc = tomllib.loads(SAMPLE.read_text(encoding="utf-8"))
    missing = []
    for info in config.schema():
        table = doc
        for part in info.section.split(".") if info.section else []:
            table = table.get(part, {})
        unset_shown = info.default is None and f"\n# {info.name} =" in SAMPLE.read_text("utf-8")
        if info.name not in table and not unset_shown:  # TOML has no null: unset is a comment
            missing.append(info.key)

    assert [] == missing


def test_sample_file_values_are_the_shipped_defaults() -> None:
    """The sample changes nothing but the ARI password placeholder."""
    expected = Settings(ari=(AriServerSettings(password=Secret("a-real-ari-password")),))

    assert expected == config.load(SAMPLE, env=REAL)


def test_sample_file_is_the_generated_one() -> None:
    """The sample matches render_sample(); regenerate with tests/config/regen_config_files.py."""
    assert config.render_sample() == SAMPLE.read_text(encoding="utf-8")


def test_reference_documents_every_key_with_its_environment_variable() -> None:
    """docs/configuration.md has a row for every key naming its environment variable."""
    text = DOCS.read_text(encoding="utf-8")
    missing = [info.key for info in config.schema()
               if f"| `{info.name}` |" not in text or f"`{info.env}`" not in text]

    assert [] == missing


def test_reference_tables_are_the_generated_ones() -> None:
    """The reference part of the docs matches render_reference() (no drift)."""
    text = DOCS.read_text(encoding="utf-8")

    assert docs_with_reference(text) == text


def test_every_settings_field_is_a_configuration_key() -> None:
    """No dataclass field is left unreachable from the file (only containers and names)."""
    import dataclasses
    import typing

    from asterisk_recorder.flow.settings import FlowSettings, PromptSettings, RecordingSettings
    from asterisk_recorder.settings import (
        AgiSettings,
        AriServerSettings,
        ControllerSettings,
        DatabaseSettings,
        HttpSettings,
        LedgerSettings,
        LoggingSettings,
        PolicySettings,
        Settings,
    )

    names = {(info.section.split(".")[-1] or "settings", info.name) for info in config.schema()}
    sections = {
        "settings": Settings, "ari": AriServerSettings, "agi": AgiSettings,
        "database": DatabaseSettings, "ledger": LedgerSettings, "policy": PolicySettings,
        "flow": FlowSettings, "prompts": PromptSettings, "recording": RecordingSettings,
        "http": HttpSettings, "logging": LoggingSettings, "controller": ControllerSettings,
    }
    unreachable = []
    for section, cls in sections.items():
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            nested = dataclasses.is_dataclass(hints[field.name]) or (
                typing.get_origin(hints[field.name]) is tuple
                and dataclasses.is_dataclass(typing.get_args(hints[field.name])[0]))
            if not nested and (section, field.name) not in names and field.name != "name":
                unreachable.append(f"{section}.{field.name}")

    assert [] == unreachable


def test_regenerating_is_idempotent(tmp_path: Path) -> None:
    """Generating the docs twice gives the same text (the markers survive)."""
    once = docs_with_reference(DOCS.read_text(encoding="utf-8"))

    assert once == docs_with_reference(once)
