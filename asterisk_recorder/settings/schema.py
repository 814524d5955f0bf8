"""The configuration schema: which keys exist, in which table, with which type, default,
environment variable and help text.

This module owns the key list, derived from the settings dataclasses (``sections`` and
``flow/settings.py``) so the schema, the sample file and the reference cannot drift; the help
texts; the keys that were removed (and why); and the constants the checks share (file formats,
log formats, resync actions). Layout: top-level ``instance_id``; ``[ari]`` is the ARI server
named ``default`` and ``[ari.servers.<name>]`` adds more; ``[agi]``, ``[database]``,
``[ledger]``, ``[policy]``, ``[flow]``, ``[flow.prompts]``, ``[recording]``
(``FlowSettings.recording``), ``[http]``, ``[logging]``, ``[controller]``. Environment:
``ASTERISK_RECORDER_<SECTION>_<KEY>`` (``ASTERISK_RECORDER_ARI_SERVERS_<NAME>_<KEY>`` for named
servers; lists comma-separated); ``ASTERISK_RECORDER_CONFIG`` names the file. It must not read
files or the environment, convert or check values, or render anything.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any

from asterisk_recorder.flow.settings import FlowSettings, PromptSettings, RecordingSettings
from asterisk_recorder.settings.pause_help import PAUSE_HELP
from asterisk_recorder.settings.sections import (
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
    "ARI_KEYS",
    "BY_ENV",
    "BY_KEY",
    "CONFIG_ENV",
    "DTMF_KEYS",
    "ENV_PREFIX",
    "FILE_FORMATS",
    "LOG_FORMATS",
    "REMOVED",
    "RESERVED_ENV",
    "RESYNC_ACTIONS",
    "SAMPLE_VALUES",
    "SCHEMA",
    "SECTIONS",
    "SECTION_NAMES",
    "SERVERS",
    "KeyInfo",
    "env_name",
    "schema",
]


ENV_PREFIX = "ASTERISK_RECORDER_"
"""Prefix of every environment variable the configuration reads."""

CONFIG_ENV = "ASTERISK_RECORDER_CONFIG"
"""Environment variable naming the TOML file when no path is given."""

RESERVED_ENV = re.compile(r"ASTERISK_RECORDER_(TEST_DSN|TEST_SEALER_.*|TEST_DISPOSAL_.*|E2E_.*)\Z")
"""Variables of the test suite, ignored by the configuration."""

FILE_FORMATS: tuple[str, ...] = (
    "wav", "wav49", "gsm", "sln", "sln16", "ulaw", "alaw", "g722",
)
"""Recording file formats ``recording.file_format`` accepts: lowercase Asterisk format names,
each also the file's extension (``wav49`` is GSM in a WAV container; the flow builds
``{decision_id}.{file_format}``, so upper-case ``WAV`` is not offered)."""

LOG_FORMATS: tuple[str, ...] = ("auto", "json", "console")
RESYNC_ACTIONS: tuple[str, ...] = ("handback", "resume")
DTMF_KEYS = "0123456789*#"
SERVERS = "servers"


SECTIONS: tuple[tuple[str, type[Any], frozenset[str], str], ...] = (
    ("ari", AriServerSettings, frozenset({"name"}),
     "The Asterisk server reached over ARI (named `default`); add more with "
     "`[ari.servers.<name>]` tables, which take the same keys and start from the defaults."),
    ("agi", AgiSettings, frozenset(), "The FastAGI server."),
    ("database", DatabaseSettings, frozenset(), "Where the consent ledger lives (PostgreSQL)."),
    ("ledger", LedgerSettings, frozenset(), "How consent decisions are kept."),
    ("policy", PolicySettings, frozenset(), "Which law applies to a call."),
    ("flow", FlowSettings, frozenset({"prompts", "recording"}),
     "Keys, timeouts and retries of the consent flow."),
    ("flow.prompts", PromptSettings, frozenset(), "The disclosure prompts played per mode."),
    ("recording", RecordingSettings, frozenset(),
     "The recording file and MixMonitor options handed to dialplan."),
    ("http", HttpSettings, frozenset(), "Operations HTTP endpoint: /healthz, /readyz, /metrics."),
    ("logging", LoggingSettings, frozenset(), "Log level and format."),
    ("controller", ControllerSettings, frozenset(),
     "Behaviour of the ARI controller around failures and shutdown."),
    ("recordings", RecordingsSettings, frozenset(),
     "The recording lifecycle run by `asterisk-recorder sealer` on the Asterisk host: "
     "closure, sealing at rest, quarantine."),
    ("ami", AmiSettings, frozenset(),
     "The Asterisk Manager Interface connection `serve` pauses recordings through."),
    ("pause", PauseSettings, frozenset(),
     "Pausing a running recording for card payments (AMI MixMonitorMute), its watchdog and "
     "its HTTP API."),
)

_HELP: dict[str, str] = {
    **PAUSE_HELP,
    "instance_id": "Name of this controller in the ledger and logs (letters, digits, `.`, `_`, "
    "`-`; at most 64). Keep it stable across restarts and unique per controller; empty derives "
    "one from the host name.",
    "ari.url": "Base URL of Asterisk's HTTP server (http:// or https://; `/ari` is added); "
    "no credentials in it.",
    "ari.username": "ARI user from ari.conf.",
    "ari.password": "Password of that ARI user (secret; required while the server is enabled; "
    "placeholders such as the sample's `change-me` are refused).",
    "ari.app": "Stasis application name dialplan hands calls to.",
    "ari.request_timeout": "Seconds any single ARI REST request may take.",
    "ari.heartbeat": "WebSocket ping interval in seconds.",
    "ari.reconnect_max": "Cap in seconds of the jittered exponential reconnect backoff.",
    "ari.max_connections": "Most HTTP connections open to this Asterisk at once, the event "
    "WebSocket included; keep the sum over all controllers, plus other HTTP clients, below "
    "Asterisk's http.conf sessionlimit (default 100).",
    "ari.enabled": "Connect to this server at all; false for an AGI-only deployment.",
    "agi.enabled": "Run the FastAGI server.",
    "agi.host": "Address the FastAGI server listens on.",
    "agi.port": "TCP port of the FastAGI server (1-65535).",
    "agi.max_sessions": "Most AGI sessions served at once; more are refused.",
    "agi.read_timeout": "Seconds to wait for Asterisk's answer to an AGI command.",
    "agi.allowed_peers": "IP addresses or networks (`10.0.0.5`, `10.0.0.0/24`, `::1`) FastAGI "
    "clients may connect from; anyone else is refused and logged (AGI has no authentication). "
    "Default: this host only. In the environment, comma-separated.",
    "database.dsn": "PostgreSQL DSN (postgresql://user:password@host/db, secret). Required by "
    "serve and check-config unless database.embedded = true; the demo and db commands start the "
    "embedded PostgreSQL when it is empty.",
    "database.embedded": "Run the embedded PostgreSQL (under the user data directory, or "
    "embedded_data_dir) when dsn is empty: for a test or demo install only. Ignored when dsn "
    "is set.",
    "database.embedded_data_dir": "Absolute data directory of the embedded PostgreSQL; empty "
    "means the user data directory.",
    "database.connect_timeout": "Seconds to wait for a database connection.",
    "ledger.spool_dir": "Absolute directory of the local spool used while PostgreSQL is away; "
    "empty means the user data directory.",
    "ledger.ack_timeout": "Seconds PostgreSQL has to commit a decision before it is spooled.",
    "ledger.batch_interval": "Group-commit window in seconds (0 commits at once).",
    "ledger.batch_max": "Most decisions per group commit.",
    "ledger.digest_key": "Key of the keyed digests of personal fields (secret; placeholders are "
    "refused); empty creates a key file beside the spool.",
    "ledger.checkpoints": "Build the Merkle tree over the ledger and sign checkpoints (one "
    "controller at a time does, under a PostgreSQL advisory lock).",
    "ledger.checkpoint_every": "Sign a checkpoint once this many entries are not covered by one "
    "yet (1-10000000).",
    "ledger.checkpoint_interval": "... or once the oldest uncovered entry is this many seconds "
    "old: the most a deleted entry can go unnoticed by the witnesses.",
    "ledger.checkpoint_origin": "Origin line of every checkpoint, naming this ledger (e.g. "
    "`recorder.example.com/ledger`); empty: `asterisk-recorder/<host name>`. Keep it stable.",
    "ledger.checkpoint_key_file": "Absolute path of the Ed25519 checkpoint signing key; empty: "
    "`checkpoint.key` beside the spool, created on first use (0600).",
    "ledger.checkpoint_keys": "Verifier keys of earlier signing keys still trusted by `ledger "
    "verify` (as `ledger checkpoint-key show` prints them). In the environment, comma-separated.",
    "ledger.checkpoint_pkcs11_module": "Absolute path of a PKCS#11 module (e.g. SoftHSM2's "
    "`/usr/lib/softhsm/libsofthsm2.so` or an HSM vendor's library): the checkpoint signing key "
    "is then an Ed25519 key pair that never leaves that token, and checkpoint_key_file is not "
    "used. Empty: the key file. Needs `pip install 'asterisk-recorder[pkcs11]'`.",
    "ledger.checkpoint_pkcs11_token": "Label of the PKCS#11 token holding the key (required when "
    "checkpoint_pkcs11_module is set; at most 32 characters).",
    "ledger.checkpoint_pkcs11_key": "Label of the Ed25519 key pair in the token (`ledger "
    "checkpoint-key create` generates it there, sensitive and not extractable).",
    "ledger.checkpoint_pkcs11_pin": "User PIN of the token (secret; placeholders are refused; "
    "required when checkpoint_pkcs11_module is set). Prefer the environment variable.",
    "ledger.witnesses": "Where each checkpoint is pushed, outside the database: absolute "
    "directories (another host's mount, a WORM mount), `https://` URLs (POST) and "
    "`s3://bucket/prefix`. In the environment, comma-separated.",
    "ledger.witness_max_lag": "/readyz fails when a witness has not taken a checkpoint for this "
    "many seconds.",
    "ledger.witness_http_token": "Bearer token sent to HTTP witnesses (secret); empty sends none.",
    "ledger.witness_s3_endpoint": "Endpoint URL of an S3-compatible server for `s3://` witnesses "
    "(empty: AWS). Credentials come from the standard AWS environment or files, never here.",
    "ledger.witness_s3_region": "Region of the `s3://` witnesses; empty uses the AWS "
    "configuration's.",
    "ledger.witness_object_lock_days": "Keep checkpoints in S3 under COMPLIANCE Object Lock for "
    "this many days (0 disables; the bucket must have Object Lock enabled).",
    "ledger.timestamp_url": "An RFC 3161 time-stamping authority (http:// or https://, no "
    "credentials) asked for a token over each new checkpoint; empty for none. Needs the `tsa` "
    "extra (rfc3161-client).",
    "ledger.timestamp_ca_file": "Absolute path of a PEM file of the TSA's root certificate(s): "
    "`ledger verify` then checks every stored token; empty does not check them.",
    "policy.site_jurisdiction": "Your own jurisdiction, counted as a party: a country code "
    "(`US`, `GB`, `DE`) or country-subdivision (`US-CA`).",
    "policy.unknown_mode": "Mode for unknown or withheld numbers: never, opt_in, opt_out, "
    "announce or none.",
    "policy.table_file": "TOML policy table whose rows override the shipped table (relative "
    "paths are relative to this file); empty for none.",
    "policy.allow_channel_override": "Honour the RECORDER_POLICY and RECORDER_JURISDICTION "
    "channel variables.",
    "policy.default_region": "Region used to parse numbers written without `+` (e.g. `US`).",
    "flow.opt_out_key": "DTMF key that refuses recording in opt_out mode (one of 0-9 * #).",
    "flow.opt_in_accept_key": "DTMF key that allows recording in opt_in mode.",
    "flow.opt_in_decline_key": "DTMF key that refuses recording in opt_in mode (not the "
    "accept key).",
    "flow.input_timeout": "Seconds to wait for a key after the disclosure ends.",
    "flow.max_retries": "How often an invalid key (or no key, in opt_in) replays the prompt "
    "(0-10).",
    "flow.play_prompt_for_never": "Play the `never` prompt (when set) before handing back.",
    "flow.play_prompt_for_none": "Play the `none` prompt (when set) before handing back.",
    "flow.answer_channel": "Answer the channel before the disclosure.",
    "flow.guard_timeout": "Longest wait in seconds for the answer or for a prompt to finish "
    "before the flow fails closed (not recorded).",
    "flow.prompts.opt_in": "Sound played in opt_in mode (Asterisk sound id, no extension).",
    "flow.prompts.opt_out": "Sound played in opt_out mode.",
    "flow.prompts.announce": "Sound played in announce mode.",
    "flow.prompts.never": "Sound played in never mode; empty plays nothing.",
    "flow.prompts.none": "Sound played in none mode; empty plays nothing.",
    "flow.prompts.languages": "Languages the sounds exist in (e.g. `en`, `fr_CA`); in the "
    "environment, comma-separated.",
    "flow.prompts.fallback_language": "Language used when the caller's is not available.",
    "flow.prompts.opt_in_accept_after": "Seconds into the opt_in disclosure after which the "
    "accept key counts as consent (where the prompt has named the key; 0-3600), or `end` for "
    "the end of the prompt. Keys pressed earlier are not consent.",
    "recording.directory": "Absolute directory Asterisk writes recordings into (letters, "
    "digits, `/`, `.`, `_`, `-`).",
    "recording.file_format": "Recording format: " + ", ".join(FILE_FORMATS) + ".",
    "recording.mixmonitor_options": "Base MixMonitor options, e.g. `b` (letters, digits and "
    "parentheses only).",
    "recording.start_beep": "Beep when recording starts (adds MixMonitor option `p`).",
    "http.enabled": "Serve the operations HTTP endpoint.",
    "http.host": "Address the operations endpoint listens on.",
    "http.port": "TCP port of the operations endpoint (1-65535).",
    "logging.level": "debug, info, warning, error or critical.",
    "logging.format": "auto (JSON unless stdout is a terminal), json or console.",
    "controller.shutdown_grace": "Seconds in-flight calls get to finish on SIGTERM/SIGINT.",
    "controller.hand_back_retry": "Seconds a failed hand-back is retried while the channel "
    "lives (then the sweep hands the caller back, not recorded).",
    "controller.resync_action": "What to do with channels found in Stasis after a reconnect: "
    "handback (not recorded) or resume.",
    "recordings.sealed_dir": "Absolute directory the sealer writes sealed envelopes into "
    "(not inside recording.directory).",
    "recordings.quarantine_dir": "Absolute directory orphan, declined, replaced and edited "
    "files are sealed into, like normal seals (created 0700; any file system: it holds only "
    "ciphertext).",
    "recordings.key_dir": "Absolute directory of the key-encryption PUBLIC keys the sealer "
    "seals to (never the private keys).",
    "recordings.retention_class": "Default retention class: calls no rule of "
    "recordings.retention_rules matches get it; its current key seals their recordings "
    "(lowercase letters, digits, `_`).",
    "recordings.retention": "CLASS=PERIOD for every retention class (d, w, m, y; months and "
    "years are calendar steps), e.g. [\"standard=90d\", \"financial=7y\"]; the period is "
    "written into each recording's recording.sealed fact, so disposal follows the ledger, not "
    "later edits of this list. The default 90d is an engineering default, NOT a legal period: "
    "UK GDPR Art. 5(1)(e) (storage limitation) and the ICO's guidance ask for the shortest "
    "period you can justify for your purpose and set no number; no US federal rule sets a "
    "general period for call recordings (state and sector rules do); regulated firms need "
    "longer classes (MiFID II Art. 16(7): 5 years, up to 7 on the regulator's request, for calls "
    "leading to transactions; SEC Rule 17a-4 for broker-dealers' communications); PCI DSS "
    "3.2.1 forbids keeping card security codes after authorisation at all, whatever the "
    "period (pause the recording instead). Check with your counsel; in the environment, "
    "comma-separated.",
    "recordings.retention_rules": "Rules choosing a call's retention class, first match wins: "
    "jurisdiction:CODE=CLASS (any party's jurisdiction; US matches US and US-xx) or "
    "called:PREFIX=CLASS (the called number starts with PREFIX, read at seal time); every "
    "CLASS must be in recordings.retention. Empty: every call gets recordings.retention_class.",
    "recordings.absent_after": "Seconds after a call ended recorded without any file before "
    "its decision gets recording.absent.",
    "recordings.scan_interval": "Seconds between full scans of recording.directory (inotify "
    "covers the time between).",
    "recordings.settle_after": "Seconds without a write after which a scan treats a file "
    "nobody has open as closed.",
    "recordings.orphan_after": "Seconds a file whose decision is not in the ledger yet waits "
    "before it is quarantined as an orphan.",
    "recordings.max_lag": "The sealer's /readyz fails when a closed file has waited this many "
    "seconds to be sealed.",
    "recordings.http_port": "TCP port of the sealer's /healthz, /readyz, /metrics (host and "
    "enabled from [http]).",
    "recordings.asterisk_ids": "Asterisk entity ids (a decision's asterisk_id, Asterisk's "
    "ENTITYID) whose decisions this sealer may declare recording.absent; empty: all. Set it when "
    "several Asterisk hosts share one ledger, each sealer to its own host's id (\"\" takes the "
    "decisions with no id); in the environment, comma-separated.",
    "recordings.store": "Where sealed recordings are kept: `local` (recordings.sealed_dir) or "
    "`s3://bucket/prefix` (sealed locally, uploaded, verified, recorded as recording.stored, "
    "then removed locally). Credentials come from the standard AWS environment or files.",
    "recordings.store_s3_endpoint": "Endpoint URL of an S3-compatible server for an `s3://` "
    "store (empty: AWS); never with credentials in it.",
    "recordings.store_s3_region": "Region of the `s3://` store's bucket; empty uses the AWS "
    "configuration's.",
    "recordings.store_object_lock_days": "Object Lock COMPLIANCE retention (days) of each "
    "uploaded recording when no retention date is handed in (0: none; the bucket must have "
    "Object Lock enabled; a locked object cannot be deleted before its date, by anyone).",
    "recordings.kek_pkcs11_module": "Absolute path of a PKCS#11 module (e.g. SoftHSM2's "
    "/usr/lib/softhsm/libsofthsm2.so): the key-encryption PRIVATE keys live in its token and "
    "unwrap there (`recording keys|open|dispose` use it); empty keeps them in the "
    "--private-keys directory. The sealer never needs it.",
    "recordings.kek_pkcs11_token": "Label of the PKCS#11 token holding the recording keys "
    "(required when kek_pkcs11_module is set; at most 32 characters).",
    "recordings.kek_pkcs11_pin": "User PIN of that token (secret; placeholders are refused; "
    "required when kek_pkcs11_module is set). Prefer the environment variable.",
    "recordings.kek_cryptoperiod": "How long a bucket's key-encryption key seals new "
    "recordings before `recording keys rotate` is due: `Nd`, `Nw` or `1m` (the default; a "
    "bucket is one month, so its key never seals longer than that).",
}

REMOVED: dict[str, str] = {
    "database.pool_min": "the ledger writes through a single connection, in hash-chain order, "
    "so there is no pool to size",
    "database.pool_max": "the ledger writes through a single connection, in hash-chain order, "
    "so there is no pool to size",
}
"""Keys that were settings once, with why they are gone; naming one is an error that says so."""

SAMPLE_VALUES: dict[str, object] = {"ari.password": "change-me"}
"""Values the sample file shows instead of the default (placeholders for secrets)."""


@dataclasses.dataclass(frozen=True, slots=True)
class KeyInfo:
    """One configuration key.

    Attributes:
        key: dotted name, ``agi.port`` (``instance_id`` at the top level).
        section: the TOML table, ``agi`` (empty for the top level).
        name: the key inside its table, ``port``.
        type: the field's type (``int``, ``float``, ``bool``, ``str``, ``Secret``, ``Mode``,
            ``tuple[str, ...]``).
        default: the shipped default.
        env: the environment variable that sets it.
        help: what it does.
    """

    key: str
    section: str
    name: str
    type: Any
    default: Any
    env: str
    help: str

    @property
    def secret(self) -> bool:
        """Whether the value is a secret that must never be shown."""
        return self.type is Secret


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper().replace(".", "_")


def _section_keys(section: str, cls: type[Any], exclude: frozenset[str]) -> list[KeyInfo]:
    hints = typing.get_type_hints(cls)
    default = cls()
    out = []
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        key = f"{section}.{f.name}" if section else f.name
        out.append(KeyInfo(key, section, f.name, hints[f.name], getattr(default, f.name),
                           env_name(key), _HELP.get(key, "")))
    return out


def _build_schema() -> tuple[KeyInfo, ...]:
    keys: list[KeyInfo] = []
    top_hints = typing.get_type_hints(Settings)
    top_default = Settings()
    for f in dataclasses.fields(Settings):
        if top_hints[f.name] in (str, int, float, bool):
            keys.append(KeyInfo(f.name, "", f.name, top_hints[f.name],
                                getattr(top_default, f.name), env_name(f.name),
                                _HELP.get(f.name, "")))
    for section, cls, exclude, _doc in SECTIONS:
        keys.extend(_section_keys(section, cls, exclude))
    envs = [k.env for k in keys]
    if len(set(envs)) != len(envs):  # pragma: no cover - a schema bug, caught by the tests
        raise RuntimeError("two configuration keys map to the same environment variable")
    return tuple(keys)


SCHEMA = _build_schema()
BY_KEY = {k.key: k for k in SCHEMA}
BY_ENV = {k.env: k for k in SCHEMA}
SECTION_NAMES = tuple(s for s, *_ in SECTIONS)
ARI_KEYS = {k.name: k for k in SCHEMA if k.section == "ari"}


def schema() -> tuple[KeyInfo, ...]:
    """Every configuration key, in file order (named ARI servers reuse the ``ari.*`` keys)."""
    return SCHEMA
