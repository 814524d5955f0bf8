"""Structured logging for asterisk-recorder, with secrets redacted from every line.

This module owns the structlog configuration (JSON lines when the output is not a TTY, readable
console output otherwise, per-call context from ``contextvars``) and the redaction of secrets:
known secret values, passwords inside URLs/DSNs (``scheme://user:pass@host``), ``password=...``
pairs, and the values of keys named like ``password``/``dsn``/``secret``/``token``/
``digest_key``, in every field and in exception text. Log records of other libraries (asyncio,
aiohttp, asyncpg) go through the same redaction and renderer. It must not read configuration
files or the environment: it is handed ``LoggingSettings`` and the secret values to mask.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any, TextIO, cast

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from asterisk_recorder.redaction import LEVELS, MASK, mask_url_password
from asterisk_recorder.settings import LoggingSettings

__all__ = [
    "LEVELS",
    "MASK",
    "configure",
    "get_logger",
    "mask_url_password",
    "redact_text",
    "redact_value",
    "reset",
]

_SECRET_KEY = re.compile(
    r"password|passwd|passphrase|pwd|dsn|secret|token|digest_key|api_key|authorization"
    r"|credential",
    re.IGNORECASE,
)
_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
_handler: logging.Handler | None = None


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask known ``secrets`` (and those given to ``configure``) and URL/DSN passwords."""
    known = sorted({*secrets, *_secrets}, key=len, reverse=True) if secrets else _secrets
    for secret in known:
        if secret and secret in text:
            text = text.replace(secret, MASK)
    return mask_url_password(text)


def redact_value(value: object, secrets: Iterable[str] = (), *, key: str = "") -> object:
    """Return ``value`` with secrets masked, recursing into mappings, lists and tuples.

    A non-empty value under a key named like a secret (``password``, ``dsn``, ``token`` ...)
    is replaced by ``********`` whatever it is.
    """
    if key and _SECRET_KEY.search(key) and value not in (None, "", b"") and not isinstance(
        value, bool
    ):
        return MASK
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        return {k: redact_value(v, secrets, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [redact_value(v, secrets) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, int | float | bool) or value is None:
        return value
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", "backslashreplace"), secrets)
    # Anything else is rendered with str() by the renderers: redact that text.
    return redact_text(str(value), secrets)


def _redact_processor(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets in every field, including formatted exceptions."""
    return {key: redact_value(value, key=key) for key, value in event_dict.items()}


def _drop_color_message(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Remove uvicorn-style duplicate ``color_message`` keys that foreign records may carry."""
    event_dict.pop("color_message", None)
    return event_dict


def _is_tty(stream: TextIO | None) -> bool:
    target = stream if stream is not None else sys.stdout
    isatty = getattr(target, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # closed stream
        return False


def _pipeline(settings: LoggingSettings, stream: TextIO | None) -> tuple[int, Processor,
                                                                        list[Processor]]:
    """Level, renderer and the processors shared by our lines and foreign records."""
    level = LEVELS.get(settings.level.lower(), logging.INFO)
    fmt = settings.format.lower()
    use_json = fmt == "json" or (fmt != "console" and not _is_tty(stream))
    renderer: Processor
    if use_json:
        renderer = structlog.processors.JSONRenderer(default=str)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    return level, renderer, shared


def _configure_structlog(settings: LoggingSettings, stream: TextIO | None) -> None:
    level, renderer, shared = _pipeline(settings, stream)
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.add_logger_name,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_NamedPrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


def configure(
    settings: LoggingSettings,
    *,
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Configure structlog and the stdlib root logger for this process.

    Until this is called, structlog lines already go through the redaction with the shipped
    defaults (level ``info``, format ``auto``) and other libraries' records are left alone.

    Args:
        settings: level (``debug`` ... ``critical``) and format (``auto``, ``json``,
            ``console``; ``auto`` is JSON unless the stream is a TTY).
        stream: where log lines go; ``None`` means ``sys.stdout`` as it is at each write.
        secrets: secret values (passwords, DSNs, keys) to mask wherever they appear;
            they add to those given by earlier calls.
    """
    global _secrets, _handler
    with _lock:
        _secrets = tuple(sorted({*_secrets, *(s for s in secrets if s)}, key=len, reverse=True))
    _configure_structlog(settings, stream)

    # Records of other libraries: same context, redaction and renderer, same stream.
    level, renderer, shared = _pipeline(settings, stream)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, _drop_color_message],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
    )
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _StdoutHandler()
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    with _lock:
        if _handler is not None:
            root.removeHandler(_handler)
        _handler = handler
        root.addHandler(handler)
        root.setLevel(level)


class _NamedPrintLogger(structlog.PrintLogger):
    """A ``PrintLogger`` that knows its name (for ``add_logger_name``)."""

    def __init__(self, file: TextIO | None, name: str) -> None:
        super().__init__(file)
        self.name = name


class _NamedPrintLoggerFactory:
    """Builds a ``_NamedPrintLogger`` per ``get_logger(name)``, on ``sys.stdout`` by default."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    def __call__(self, *args: Any) -> _NamedPrintLogger:
        return _NamedPrintLogger(self._stream, str(args[0]) if args else "")


def reset() -> None:
    """Undo ``configure``: shipped structlog defaults, our root handler removed, secrets forgotten.

    Meant for tests that configure logging and must leave the process as they found it.
    """
    global _secrets, _handler
    with _lock:
        _configure_structlog(LoggingSettings(), None)
        if _handler is not None:
            logging.getLogger().removeHandler(_handler)
            _handler = None
        _secrets = ()


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes to ``sys.stdout`` as it is at each record."""

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def get_logger(name: str, **initial: Any) -> FilteringBoundLogger:
    """Return a structlog logger whose lines carry ``logger=name``.

    Safe at import time: the logger is a proxy that follows later ``configure`` calls, and
    before any, the shipped defaults (with redaction) apply.
    """
    return cast(FilteringBoundLogger, structlog.get_logger(name, **initial))


# Importing this module makes structlog redact from the first line on, before ``configure``.
_configure_structlog(LoggingSettings(), None)
