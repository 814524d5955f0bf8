"""The recording lifecycle: keys, the sealed envelope, verify and open (docs/recordings.md).

This package owns what happens to a recording file after MixMonitor closes it: sealing it at
rest to a key-encryption public key (``envelope``, ``keys``), verifying and opening it
(``access``). It may use errors, logs, settings, flow and ledger; nothing imports it but the
composition root, the commands and the demo.
"""

from __future__ import annotations

from asterisk_recorder.recordings.envelope import (
    Header,
    SealInfo,
    VerifyResult,
    decrypt_range,
    open_stream,
    read_header,
    seal,
    verify,
)
from asterisk_recorder.recordings.keys import (
    FileKekOpener,
    KekInfo,
    KekOpener,
    KekPublicKey,
    KeyStore,
)

__all__ = [
    "FileKekOpener",
    "Header",
    "KekInfo",
    "KekOpener",
    "KekPublicKey",
    "KeyStore",
    "SealInfo",
    "VerifyResult",
    "decrypt_range",
    "open_stream",
    "read_header",
    "seal",
    "verify",
]
