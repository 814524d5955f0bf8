"""The rules of the recording settings: the recording directory, MixMonitor options, host ids.

This module owns the checks of ``recording.directory``, ``recording.mixmonitor_options``,
``recordings.asterisk_ids``, ``recordings.store`` and ``recordings.store_s3_region``
(``checks`` puts them in its table): what reaches a MixMonitor
argument or a path must be plain text the dialplan cannot misread. It must not read files or
the environment.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from asterisk_recorder.settings.values import show

__all__ = ["asterisk_ids", "mixmonitor", "recording_dir", "s3_region", "sealed_store"]


_ASTERISK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._-]{0,63}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"[A-Za-z0-9._/-]{0,512}")
_REGION = re.compile(r"[a-z0-9-]{1,32}")


def sealed_store(v: str) -> str | None:
    if v == "local":
        return None
    if not v.startswith("s3://"):
        return f"{show(v)} is not a store: `local` or s3://bucket/prefix"
    bucket, _, prefix = v[len("s3://"):].partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        return f"{show(v)} does not name a valid S3 bucket (s3://bucket/prefix)"
    if not _PREFIX.fullmatch(prefix) or ".." in prefix.split("/"):
        return f"{show(v)} has an invalid prefix (letters, digits, '.', '_', '/', '-')"
    return None


def s3_region(v: str) -> str | None:
    if v == "" or _REGION.fullmatch(v):
        return None
    return f"{show(v)} is not an S3 region (e.g. eu-west-1)"


def asterisk_ids(v: tuple[str, ...]) -> str | None:
    for one in v:
        if one and not _ASTERISK_ID.fullmatch(one):
            return (f"{show(one)} is not an Asterisk entity id (up to 64 letters, digits, ':', "
                    "'.', '_', '-', such as 08:00:27:aa:bb:cc; \"\" for decisions without one)")
    if len(set(v)) != len(v):
        return "lists an Asterisk id twice"
    return None


def recording_dir(v: str) -> str | None:
    if len(v) > 255:
        return f"{show(v)} is too long (at most 255 characters)"
    if not v.startswith("/"):
        return f"{show(v)} must be an absolute directory"
    if not re.fullmatch(r"/[A-Za-z0-9._/-]*", v):
        return f"{show(v)} may only contain letters, digits, '/', '.', '_' and '-'"
    if ".." in PurePosixPath(v).parts:
        return f"{show(v)} must not contain '..'"
    return None


_MIXMONITOR = re.compile(r"(?:[A-Za-z](?:\([A-Za-z0-9]*\))?){0,32}")


def mixmonitor(v: str) -> str | None:
    if _MIXMONITOR.fullmatch(v):
        return None
    return (f"{show(v)} may only contain letters, digits and parentheses, as option letters "
            "with an optional argument such as bW(2) (no commas, pipes, '$', quotes, spaces or "
            "newlines; at most 32 options)")
