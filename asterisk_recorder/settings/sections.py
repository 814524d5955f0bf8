"""The shape of asterisk-recorder's configuration: frozen dataclasses with shipped defaults,
one per configuration section (the flow's own live in ``flow/settings.py``).

This module owns the settings *types* only. Loading (TOML file, ``ASTERISK_RECORDER_*``
environment, CLI flags), validation and masking live in the sibling modules (``loader``,
``checks``, ``render``). It must not read files or the environment. Secrets are kept as
``Secret`` so that ``repr`` and logs never show them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network

from asterisk_recorder.flow.settings import FlowSettings
from asterisk_recorder.policy.modes import Mode

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


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret string (password, DSN with password, digest key) that never prints itself."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('********')" if self.value else "Secret('')"

    def __str__(self) -> str:
        return "********" if self.value else ""

    def __bool__(self) -> bool:
        return bool(self.value)


@dataclass(frozen=True, slots=True)
class AriServerSettings:
    """One Asterisk server reached over ARI (one WebSocket per server and app).

    Attributes:
        name: a label for logs and metrics (``default`` for the top-level ``[ari]`` table).
        url: base URL of Asterisk's HTTP server, e.g. ``http://127.0.0.1:8088`` (``/ari`` added).
        username / password: an ``ari.conf`` user.
        app: the Stasis application name dialplan hands calls to.
        request_timeout: seconds for any single REST request.
        heartbeat: WebSocket ping interval in seconds.
        reconnect_max: cap of the jittered exponential reconnect backoff, seconds.
        enabled: connect to this server at all (``false`` for an AGI-only deployment);
            a disabled server needs no password and must be skipped by the controller.
        max_connections: most HTTP connections open to this Asterisk at once, the event
            WebSocket included. Each one is an HTTP session of Asterisk's ``http.conf``
            ``sessionlimit`` (default 100): keep the sum over every controller instance, plus
            every other HTTP/ARI client of that Asterisk, below that limit, or requests are
            refused and hand-backs fail (they are retried, then swept).
    """

    name: str = "default"
    url: str = "http://127.0.0.1:8088"
    username: str = "asterisk-recorder"
    password: Secret = field(default_factory=lambda: Secret(""))
    app: str = "consent-recorder"
    request_timeout: float = 5.0
    heartbeat: float = 20.0
    reconnect_max: float = 10.0
    enabled: bool = True
    max_connections: int = 20


LOOPBACK_PEERS: tuple[IPv4Network | IPv6Network, ...] = (
    ip_network("127.0.0.1/32"), ip_network("::1/128"),
)
"""The default FastAGI peer allowlist: this host only."""


@dataclass(frozen=True, slots=True)
class AgiSettings:
    """The FastAGI server run by ``serve`` (and the classic ``agi`` command).

    Attributes:
        allowed_peers: the networks a FastAGI client may connect from (AGI has no
            authentication); anyone else is refused before a byte is read. An IPv4 peer
            that arrives as an IPv4-mapped IPv6 address (``::ffff:10.0.0.5``) should be
            matched by its IPv4 form.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 4573
    max_sessions: int = 200
    read_timeout: float = 10.0
    allowed_peers: tuple[IPv4Network | IPv6Network, ...] = LOOPBACK_PEERS


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """Where the ledger lives.

    Attributes:
        dsn: a ``postgresql://`` DSN; empty means "start the embedded PostgreSQL" where that
            is allowed (the demo; ``serve`` only with ``embedded``).
        embedded: the operator's explicit "yes, run the embedded PostgreSQL" for a test or
            demo install: without it and without a DSN, ``serve`` refuses to start (loading
            with ``require_database=True`` reports it). Ignored when ``dsn`` is set.
        embedded_data_dir: PGDATA of the embedded server; empty means the user data dir.
        connect_timeout: seconds to wait for a connection.
    """

    dsn: Secret = field(default_factory=lambda: Secret(""))
    embedded: bool = False
    embedded_data_dir: str = ""
    connect_timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    """How decisions are kept.

    Attributes:
        spool_dir: local directory for the fsynced spool used while PostgreSQL is away
            (empty means the user data dir).
        ack_timeout: seconds PostgreSQL has to commit before a decision is spooled instead.
        batch_interval: group-commit window in seconds.
        batch_max: most decisions per group commit.
        digest_key: key of the keyed digests of personal fields (empty: a key file is created
            beside the spool on first use).
        checkpoints: build the Merkle tree and sign checkpoints (one controller at a time does).
        checkpoint_every: sign a checkpoint once this many entries are not covered yet...
        checkpoint_interval: ... or once the oldest uncovered entry is this many seconds old.
        checkpoint_origin: the checkpoint's origin line naming this ledger (empty:
            ``asterisk-recorder/<host name>``); keep it stable for the ledger's life.
        checkpoint_key_file: the Ed25519 signing key (empty: ``checkpoint.key`` beside the
            spool, created on first use).
        checkpoint_keys: verifier keys (``name+id+base64``) of earlier signing keys that
            ``ledger verify`` still trusts after a rotation.
        checkpoint_pkcs11_module: absolute path of a PKCS#11 module (``.so``): the signing key
            is then the Ed25519 key pair in that module's token, never a file (empty: the
            key file).
        checkpoint_pkcs11_token: label of that token (required with a module).
        checkpoint_pkcs11_key: label of the key pair in the token.
        checkpoint_pkcs11_pin: the token's user PIN (secret; required with a module).
        witnesses: where every checkpoint is pushed: absolute directories, ``http(s)://`` URLs
            (POST) and ``s3://bucket/prefix`` buckets.
        witness_max_lag: ``/readyz`` fails when a witness has not taken a checkpoint for this
            many seconds.
        witness_http_token: bearer token sent to HTTP witnesses (secret; empty sends none).
        witness_s3_endpoint: endpoint URL of an S3-compatible server (empty: AWS).
        witness_s3_region: region of the S3 witnesses (empty: the AWS configuration's).
        witness_object_lock_days: keep S3 checkpoints under COMPLIANCE Object Lock this many
            days (0: no lock).
        timestamp_url: an RFC 3161 time-stamping authority (``http(s)://``, no credentials)
            asked for a token over each new checkpoint (empty: no timestamps).
        timestamp_ca_file: absolute path of a PEM file of the TSA's root certificate(s) that
            ``ledger verify`` trusts for those tokens (empty: tokens are not checked).
    """

    spool_dir: str = ""
    ack_timeout: float = 0.5
    batch_interval: float = 0.005
    batch_max: int = 500
    digest_key: Secret = field(default_factory=lambda: Secret(""))
    checkpoints: bool = True
    checkpoint_every: int = 1000
    checkpoint_interval: float = 60.0
    checkpoint_origin: str = ""
    checkpoint_key_file: str = ""
    checkpoint_keys: tuple[str, ...] = ()
    checkpoint_pkcs11_module: str = ""
    checkpoint_pkcs11_token: str = ""
    checkpoint_pkcs11_key: str = "asterisk-recorder-checkpoint"
    checkpoint_pkcs11_pin: Secret = field(default_factory=lambda: Secret(""))
    witnesses: tuple[str, ...] = ()
    witness_max_lag: float = 900.0
    witness_http_token: Secret = field(default_factory=lambda: Secret(""))
    witness_s3_endpoint: str = ""
    witness_s3_region: str = ""
    witness_object_lock_days: int = 0
    timestamp_url: str = ""
    timestamp_ca_file: str = ""


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Which law applies.

    Attributes:
        site_jurisdiction: the operator's own jurisdiction (counts as a party), e.g. ``US-NY``.
        unknown_mode: mode for unknown or withheld numbers (ships as ``opt_in``: fail-closed).
        table_file: an operator TOML whose rows override the default table row by row.
        allow_channel_override: honour ``RECORDER_POLICY`` / ``RECORDER_JURISDICTION``.
        default_region: region used to parse numbers written without ``+`` (e.g. ``US``).
    """

    site_jurisdiction: str = "US"
    unknown_mode: Mode = Mode.OPT_IN
    table_file: str = ""
    allow_channel_override: bool = True
    default_region: str = "US"


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """Operations HTTP endpoint: ``/healthz``, ``/readyz``, ``/metrics``."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8090


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    """Log level and format (``auto``: JSON when stdout is not a TTY, console otherwise)."""

    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    """Behaviour of the ARI controller around failures and shutdown.

    Attributes:
        shutdown_grace: seconds in-flight flows get to finish on SIGTERM/SIGINT.
        resync_action: what to do with channels found parked in Stasis after a reconnect:
            ``handback`` (fail-closed, not recorded) or ``resume`` (run the flow again).
        hand_back_retry: seconds a hand-back that failed for a transient reason (Asterisk's
            HTTP sessions exhausted, a timeout, a 5xx) is retried while the channel lives;
            after that the periodic sweep hands the caller back fail-closed.
    """

    shutdown_grace: float = 5.0
    resync_action: str = "handback"
    hand_back_retry: float = 10.0


@dataclass(frozen=True, slots=True)
class RecordingsSettings:
    """The recording lifecycle run by ``asterisk-recorder sealer`` on the Asterisk host.

    The directory watched is ``recording.directory`` (where the controller tells MixMonitor to
    write): one setting, so the sealer can never watch another place than the files land in.

    Attributes:
        sealed_dir: where sealed envelopes go (same ``YYYY/MM/DD`` layout).
        quarantine_dir: where orphan, declined, replaced and edited files are sealed (0700).
        key_dir: directory of the key-encryption public keys (the private halves live elsewhere).
        retention_class: the default retention class (the one a call gets when no rule of
            ``retention_rules`` matches); its current key seals those recordings.
        retention: ``CLASS=PERIOD`` for every class (``standard=90d``, ``financial=7y``);
            the period is recorded in the ledger with each recording when it is sealed.
        retention_rules: ``KIND:VALUE=CLASS`` rules, first match wins
            (``jurisdiction:US-CA=financial``, ``called:+44207=financial``).
        absent_after: seconds after a ``call.fate`` ``recorded`` fact without any file before
            the decision gets ``recording.absent``.
        scan_interval: seconds between full scans of the directory (inotify covers the rest).
        settle_after: seconds without a write after which a scan treats a file nobody has open
            as closed (covers closes missed while the sealer was down).
        orphan_after: seconds a file whose decision is not (yet) in the ledger waits before it is
            quarantined (a controller may still be replaying its spool).
        max_lag: ``/readyz`` fails when a closed file has waited this long to be sealed.
        http_port: TCP port of the sealer's own ``/healthz``, ``/readyz``, ``/metrics``
            (host and enabled come from ``[http]``).
        asterisk_ids: the Asterisk entity ids (a decision's ``asterisk_id``) whose decisions
            this sealer's absent sweep considers; empty: all (one sealer per ledger). ``""``
            in the list takes the decisions whose Asterisk id was not known.
        store: where sealed recordings are kept: ``local`` (``sealed_dir``) or
            ``s3://bucket/prefix`` (sealed locally first, then uploaded, then removed locally).
        store_s3_endpoint: endpoint URL of an S3-compatible server (empty: AWS).
        store_s3_region: region of the bucket (empty: the AWS configuration's).
        store_object_lock_days: Object Lock COMPLIANCE retention given to each uploaded
            recording when its retention is not known otherwise (0: none).
        kek_pkcs11_module: absolute path of a PKCS#11 module (``.so``): the KEK private keys
            live in its token (empty: in the ``--private-keys`` directory). The sealer never
            uses it.
        kek_pkcs11_token: label of that token (required with a module).
        kek_pkcs11_pin: the token's user PIN (secret; required with a module).
        kek_cryptoperiod: how long a bucket's key seals new recordings before a ``rotate``
            is due (``Nd``, ``Nw`` or ``1m``; the monthly buckets end a key's use anyway).
        pci_check: the PCI check of every recording before it is sealed (paused spans are
            digital silence, no DTMF tones in the unpaused audio): ``quarantine`` a recording
            that fails, ``attest`` (record the result and alert, seal it normally) or ``off``.
        pci_tolerance: seconds a paused span's silence may be shifted against the wall-clock
            times in the ledger (Asterisk's own offset is about 0.22 s).
    """

    sealed_dir: str = "/var/lib/asterisk-recorder-sealer/sealed"
    quarantine_dir: str = "/var/lib/asterisk-recorder-sealer/quarantine"
    key_dir: str = "/etc/asterisk-recorder/kek"
    retention_class: str = "standard"
    retention: tuple[str, ...] = ("standard=90d",)
    retention_rules: tuple[str, ...] = ()
    absent_after: float = 300.0
    scan_interval: float = 60.0
    settle_after: float = 30.0
    orphan_after: float = 600.0
    max_lag: float = 300.0
    http_port: int = 8091
    asterisk_ids: tuple[str, ...] = ()
    store: str = "local"
    store_s3_endpoint: str = ""
    store_s3_region: str = ""
    store_object_lock_days: int = 0
    kek_pkcs11_module: str = ""
    kek_pkcs11_token: str = ""
    kek_pkcs11_pin: Secret = field(default_factory=lambda: Secret(""))
    kek_cryptoperiod: str = "1m"
    pci_check: str = "quarantine"
    pci_tolerance: float = 0.5


@dataclass(frozen=True, slots=True)
class AmiSettings:
    """The Asterisk Manager Interface connection of ``serve`` (used to pause recordings).

    Attributes:
        enabled: connect to AMI at all.
        host / port: where Asterisk's manager.conf listens.
        username / secret: the manager.conf user (secret; read ``call,dialplan,user,agent``,
            write ``call``).
        connect_timeout: seconds to connect and log in.
        action_timeout: seconds Asterisk gets to answer an action.
        reconnect_max: cap in seconds of the reconnect backoff.
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = ""
    secret: Secret = field(default_factory=lambda: Secret(""))
    connect_timeout: float = 5.0
    action_timeout: float = 5.0
    reconnect_max: float = 30.0


@dataclass(frozen=True, slots=True)
class PauseSettings:
    """Pausing a running recording for card payments (run by ``serve``, through AMI).

    Attributes:
        enabled: run the pause driver (needs ``[ami]`` enabled, and ``recording``
            ``mixmonitor_options`` without ``b``, so the file keeps the call's timeline).
        max_pause: seconds after which a pause is resumed by the watchdog, with an alert
            (inside a payment context or queue it stays paused, alerts, and resumes on leaving).
        payment_contexts: dialplan contexts during which the recording is paused automatically
            (the payment IVR; list the subroutine contexts it calls too).
        payment_queues: queues during which the recording is paused automatically.
        retry_every: seconds between retries of a resume that failed.
        api_token: bearer token of ``POST /calls/{id}/pause|resume`` on the ops HTTP server
            (secret; empty: the API is off).
    """

    enabled: bool = False
    max_pause: float = 180.0
    payment_contexts: tuple[str, ...] = ()
    payment_queues: tuple[str, ...] = ()
    retry_every: float = 5.0
    api_token: Secret = field(default_factory=lambda: Secret(""))


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole, validated configuration of one asterisk-recorder process."""

    instance_id: str = ""
    ari: tuple[AriServerSettings, ...] = (AriServerSettings(),)
    agi: AgiSettings = field(default_factory=AgiSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    flow: FlowSettings = field(default_factory=FlowSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    controller: ControllerSettings = field(default_factory=ControllerSettings)
    recordings: RecordingsSettings = field(default_factory=RecordingsSettings)
    ami: AmiSettings = field(default_factory=AmiSettings)
    pause: PauseSettings = field(default_factory=PauseSettings)
