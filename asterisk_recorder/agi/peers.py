"""Which hosts may talk FastAGI to us: the peer allowlist and its rate-limited refusal log.

AGI has no authentication: whoever reaches the FastAGI port can drive consent sessions and so
write decisions to the ledger. This module owns the only check there is, the peer's address:
``PeerAllowlist`` says whether an address (IPv4, IPv6, or IPv4-mapped IPv6 as a dual-stack
socket reports it) is in the configured networks, and ``RefusalLog`` logs refusals so that an
operator sees a foreign host, while a port scan from many addresses cannot flood the log (at
most ``limit`` warnings per ``window`` seconds, then one line counting the rest). It must not
touch sockets or sessions: ``agi.server`` asks it and closes the connection itself.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from asterisk_recorder.errors import ConfigError
from asterisk_recorder.logs import get_logger

__all__ = ["LOOPBACK_ONLY", "IpNetwork", "PeerAllowlist", "RefusalLog"]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
"""One entry of an allowlist."""

LOOPBACK_ONLY: tuple[IpNetwork, ...] = (
    ipaddress.IPv4Network("127.0.0.1/32"),
    ipaddress.IPv6Network("::1/128"),
)
"""The default allowlist: the PBX runs on the same host (``agi.allowed_peers``' default)."""

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")

_log = get_logger("asterisk_recorder.agi.peers")


@dataclass(frozen=True, slots=True)
class PeerAllowlist:
    """The networks whose hosts may open FastAGI sessions.

    An IPv4-mapped IPv6 peer (``::ffff:192.0.2.7``, what a dual-stack socket reports for an
    IPv4 client) is matched as the IPv4 address it is, and a mapped IPv6 network
    (``::ffff:192.0.2.0/120``) also admits the plain IPv4 form, so the same host is allowed or
    refused whichever socket family it arrived on.

    Raises:
        ConfigError: ``networks`` is empty (no peer could ever connect) or holds something
            that is not an ``IPv4Network``/``IPv6Network``.
    """

    networks: tuple[IpNetwork, ...]
    _v4: tuple[ipaddress.IPv4Network, ...] = field(init=False, repr=False, compare=False)
    _v6: tuple[ipaddress.IPv6Network, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        networks = tuple(self.networks)
        if not networks:
            raise ConfigError(
                "agi.allowed_peers is empty: no host could connect; "
                "list at least one address or network (default: 127.0.0.1/32, ::1/128)"
            )
        v4: list[ipaddress.IPv4Network] = []
        v6: list[ipaddress.IPv6Network] = []
        for net in networks:
            if isinstance(net, ipaddress.IPv4Network):
                v4.append(net)
            elif isinstance(net, ipaddress.IPv6Network):
                v6.append(net)
                mapped = net.network_address.ipv4_mapped
                if mapped is not None and net.prefixlen >= _MAPPED.prefixlen:
                    v4.append(ipaddress.IPv4Network((mapped, net.prefixlen - 96)))
            else:
                raise ConfigError(
                    f"agi.allowed_peers: {net!r} is not an IP network "
                    "(expected ipaddress.IPv4Network or IPv6Network, e.g. 192.0.2.10/32)"
                )
        object.__setattr__(self, "networks", networks)
        object.__setattr__(self, "_v4", tuple(v4))
        object.__setattr__(self, "_v6", tuple(v6))

    @classmethod
    def of(cls, networks: Iterable[IpNetwork]) -> PeerAllowlist:
        """An allowlist of ``networks`` (any iterable)."""
        return cls(tuple(networks))

    def allows(self, host: str) -> bool:
        """Whether the peer address ``host`` (as the socket reports it) may connect.

        A host that is not an IP address (an empty peer name, a Unix socket) is refused.
        """
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address):
            mapped = address.ipv4_mapped
            if mapped is not None and any(mapped in net for net in self._v4):
                return True
            # Compare without a zone (fe80::1%eth0): the allowlist names addresses, not links.
            bare = ipaddress.IPv6Address(address.packed)
            return any(bare in net for net in self._v6)
        return any(address in net for net in self._v4)

    def describe(self) -> str:
        """The networks as configured, comma-separated (for log lines)."""
        return ",".join(str(net) for net in self.networks)


class RefusalLog:
    """Logs refused peers as warnings, at most ``limit`` per ``window`` seconds.

    Within a window the first ``limit`` refusals are logged one by one
    (``agi.peer.refused``); the rest are only counted, and the count is logged
    (``agi.peer.refusals_suppressed``) when the next refusal arrives after the window. The
    server's ``stats.refused`` and ``on_refused`` see every refusal regardless.
    """

    def __init__(
        self,
        allowlist: PeerAllowlist,
        *,
        limit: int = 10,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("RefusalLog needs limit >= 1 and window > 0")
        self._allowlist = allowlist
        self._limit = limit
        self._window = window
        self._clock = clock
        self._window_start: float | None = None
        self._logged = 0
        self._suppressed = 0

    def refused(self, host: str, port: int | None, total: int) -> None:
        """Record one refusal of ``host``; ``total`` is the server's count including it."""
        now = self._clock()
        if self._window_start is None or now - self._window_start >= self._window:
            if self._suppressed:
                _log.warning(
                    "agi.peer.refusals_suppressed",
                    count=self._suppressed,
                    window_seconds=self._window,
                    total_refused=total - 1,
                )
            self._window_start = now
            self._logged = 0
            self._suppressed = 0
        if self._logged >= self._limit:
            self._suppressed += 1
            return
        self._logged += 1
        last = self._logged == self._limit
        _log.warning(
            "agi.peer.refused",
            peer=host,
            peer_port=port,
            reason="not in agi.allowed_peers",
            allowed_peers=self._allowlist.describe(),
            total_refused=total,
            **({"further_refusals": f"counted, not logged, for {self._window:g}s"} if last else {}),
        )
