"""Where one Asterisk server's ARI lives and how to authenticate to it.

This module owns the two things the REST client (``ari.client``) and the event WebSocket
(``ari.stream``) both derive from ``AriServerSettings``: the ``.../ari`` base URL (refusing URLs
that carry credentials, a query or a fragment) and the ``Authorization: Basic`` header value
(credentials never go into a URL). It sits below both so that neither imports the other for
them. It must not send requests or open connections.
"""

from __future__ import annotations

import aiohttp
from yarl import URL

from asterisk_recorder.errors import ConfigError
from asterisk_recorder.settings import AriServerSettings

__all__ = ["ari_base_url", "basic_auth_header"]


def ari_base_url(settings: AriServerSettings) -> URL:
    """Return ``<settings.url>/ari``; refuse URLs that carry credentials or a query."""
    url = URL(settings.url)
    if url.user is not None or url.password is not None:
        raise ConfigError(f"ari[{settings.name}].url: credentials belong in username/password")
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            f"ari[{settings.name}].url: expected http(s)://host[:port], got {settings.url!r}"
        )
    if url.query_string or url.fragment:
        raise ConfigError(f"ari[{settings.name}].url: must not have a query or fragment")
    path = url.path.rstrip("/")
    if not path.endswith("/ari"):
        path += "/ari"
    return url.with_path(path)


def basic_auth_header(settings: AriServerSettings) -> str:
    """The ``Authorization: Basic`` header value for the configured ARI user."""
    return aiohttp.encode_basic_auth(settings.username, settings.password.value)
