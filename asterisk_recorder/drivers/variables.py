"""Packing the ``RECORDER_*`` hand-back variables into one ``ARRAY(...)`` assignment.

This module owns ``pack_variables``: both transports set the variables the dialplan reads
after the hand-back in ONE channel operation when they can travel safely inside Asterisk's
``ARRAY`` function (func_strings: ``ARRAY(A,B)`` assigned ``a,b`` sets ``A=a`` and ``B=b``,
as ARI's ``POST /channels/{id}/variable`` and AGI's ``SET VARIABLE`` both do). A value with a
comma, a double quote, a backslash or a control character would be split or unquoted by
``ARRAY``'s argument parser, so then nothing is packed and each variable is set on its own.
Pure; it must not know either transport.
"""

from __future__ import annotations

import re

__all__ = ["pack_variables"]

_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_UNPACKABLE = re.compile(r'[,"\\\x00-\x1f]')


def pack_variables(variables: tuple[tuple[str, str], ...]) -> tuple[str, str] | None:
    """``("ARRAY(A,B)", "a,b")`` for ``A=a, B=b``; None when fewer than two, or one cannot pack."""
    if len(variables) < 2:
        return None
    for name, value in variables:
        if not _NAME.fullmatch(name) or _UNPACKABLE.search(value):
            return None
    names = ",".join(name for name, _ in variables)
    return f"ARRAY({names})", ",".join(value for _, value in variables)
