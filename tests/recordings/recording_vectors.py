"""The fixed inputs of the envelope test vectors in docs/recording-format.md, and their output.

This module owns regenerating the test vectors from fixed keys (KEK and ephemeral P-384
scalars, DEK, nonce prefix) through the real sealing code. It must not be imported by product code.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from asterisk_recorder.recordings.envelope import SealInfo, _seal
from asterisk_recorder.recordings.keys import KekPublicKey

__all__ = ["FORMAT_DOC", "VECTOR", "documented_vector", "regenerate"]

FORMAT_DOC = Path(__file__).resolve().parents[2] / "docs" / "recording-format.md"

VECTOR = {
    "kek_private_scalar": "01" * 48,
    "ephemeral_private_scalar": "02" * 48,
    "kek_id": "standard-202612-00000001",
    "recording_id": "vector-1",
    "dek": bytes(range(32)).hex(),
    "nonce_prefix": "a0a1a2a3a4a5a6",
    "plaintext": b"asterisk-recorder test vector\n".hex(),
}
"""The fixed inputs (hex, except the ids)."""


def _key(scalar_hex: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int(scalar_hex, 16), ec.SECP384R1())


def regenerate() -> tuple[bytes, SealInfo]:
    """Seal the vector's plaintext with its fixed keys: (envelope bytes, SealInfo)."""
    kek = KekPublicKey(VECTOR["kek_id"], _key(VECTOR["kek_private_scalar"]).public_key())
    out = io.BytesIO()
    info = _seal(
        io.BytesIO(bytes.fromhex(VECTOR["plaintext"])), out,
        recording_id=VECTOR["recording_id"], kek=kek, plain_sha256=None,
        dek=bytes.fromhex(VECTOR["dek"]), nonce_prefix=bytes.fromhex(VECTOR["nonce_prefix"]),
        ephemeral=_key(VECTOR["ephemeral_private_scalar"]),
    )
    return out.getvalue(), info


def documented_vector(marker: str = "test-vector") -> dict[str, str]:
    """The ``name: value`` lines of a test-vector block in docs/recording-format.md (the v2
    vector; ``marker="test-vector-v1"``: the kept v1 one)."""
    text = FORMAT_DOC.read_text(encoding="utf-8")
    block = text.split(f"<!-- {marker} -->", 1)[1].split("```", 2)[1]
    values: dict[str, str] = {}
    current = ""
    for line in block.splitlines():
        match = re.match(r"^([a-z_0-9]+):\s*(\S*)$", line.strip())
        if match:
            current = match.group(1)
            values[current] = match.group(2)
        elif line.strip() and current:
            values[current] += line.strip()
    return values
