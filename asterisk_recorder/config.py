"""Loading asterisk-recorder's configuration: the public entry points, under their old names.

``from asterisk_recorder.config import load, settings_from_args, render_sample, ...`` keeps
working; the code lives in the ``asterisk_recorder.settings`` package (``loader``: ``load`` and
``secret_values``; ``cli``: the commands' flags; ``render``: sample, effective configuration and
reference; ``schema``: the keys; ``checks``: the per-key rules). This module must not hold
logic of its own.
"""

from __future__ import annotations

from asterisk_recorder.settings.checks import is_placeholder_secret
from asterisk_recorder.settings.cli import (
    DATABASE_COMMANDS,
    add_config_arguments,
    settings_from_args,
)
from asterisk_recorder.settings.loader import load, secret_values
from asterisk_recorder.settings.render import render_effective, render_reference, render_sample
from asterisk_recorder.settings.schema import (
    CONFIG_ENV,
    ENV_PREFIX,
    FILE_FORMATS,
    KeyInfo,
    schema,
)

__all__ = [
    "CONFIG_ENV",
    "DATABASE_COMMANDS",
    "ENV_PREFIX",
    "FILE_FORMATS",
    "KeyInfo",
    "add_config_arguments",
    "is_placeholder_secret",
    "load",
    "render_effective",
    "render_reference",
    "render_sample",
    "schema",
    "secret_values",
    "settings_from_args",
]
