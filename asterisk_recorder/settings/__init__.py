"""asterisk-recorder's settings: the frozen dataclasses, and (in submodules) their schema,
loading, checking and rendering.

The package root re-exports the settings types (``Settings``, ``Secret`` and one class per
section), so ``from asterisk_recorder.settings import Settings`` works everywhere. It must not
import the loader: importing a type never pulls in the flow machine or the policy engine.
Modules, bottom up: ``sections`` (the types), ``schema`` (keys, help, environment names),
``values`` (conversion of raw values), ``checks`` (per-key rules), ``sources`` (file,
environment, overrides), ``loader`` (``load``: the validated settings), ``cli`` (the commands'
configuration flags) and ``render`` (sample, effective configuration, reference tables).
``asterisk_recorder.config`` re-exports the public entry points under their old names.
"""

from asterisk_recorder.settings.sections import (
    LOOPBACK_PEERS,
    AgiSettings,
    AmiSettings,
    AriServerSettings,
    ControllerSettings,
    DatabaseSettings,
    HttpSettings,
    LedgerSettings,
    LoggingSettings,
    PauseSettings,
    PolicySettings,
    RecordingsSettings,
    Secret,
    Settings,
)

__all__ = [
    "LOOPBACK_PEERS",
    "AgiSettings",
    "AmiSettings",
    "AriServerSettings",
    "ControllerSettings",
    "DatabaseSettings",
    "HttpSettings",
    "LedgerSettings",
    "LoggingSettings",
    "PauseSettings",
    "PolicySettings",
    "RecordingsSettings",
    "Secret",
    "Settings",
]
