"""Recording modes, ordered from strictest to most permissive.

This module owns the ``Mode`` vocabulary shared by the policy engine, the consent flow and the
ledger. It must stay pure standard library with no I/O.
"""

from __future__ import annotations

import enum

__all__ = ["Mode", "strictest"]


class Mode(enum.Enum):
    """How a call may be recorded, strictest first.

    ``NEVER``: do not record. ``OPT_IN``: the disclosure asks the caller to press a key to allow
    recording; only that key records. ``OPT_OUT``: the disclosure offers a key to refuse; the call
    is recorded unless refused. ``ANNOUNCE``: disclosure, no choice offered. ``NONE``: no
    disclosure; recorded.
    """

    NEVER = "never"
    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"
    ANNOUNCE = "announce"
    NONE = "none"

    @property
    def strictness(self) -> int:
        """Rank of this mode: 0 is the strictest (``NEVER``), 4 the most permissive (``NONE``)."""
        return _ORDER.index(self)


_ORDER = (Mode.NEVER, Mode.OPT_IN, Mode.OPT_OUT, Mode.ANNOUNCE, Mode.NONE)


def strictest(modes: list[Mode] | tuple[Mode, ...]) -> Mode:
    """Return the strictest of ``modes`` (the law of the strictest party wins).

    Raises:
        ValueError: if ``modes`` is empty.
    """
    if not modes:
        raise ValueError("strictest() needs at least one mode")
    return min(modes, key=lambda m: m.strictness)
