"""Where an outgoing request may go: the checks that keep webhooks off internal networks.

A webhook URL is often typed into an admin screen. Sending to it must not become a way
to reach the machines around the sender (server-side request forgery), so by default
only globally routable addresses are accepted, and an IPv6 address that carries an
IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64) is judged by the
IPv4 address inside it as well. The host application vouches for anything else by
name, address or network (:class:`Allowance`).
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from closedloop.errors import ValidationError

__all__ = [
    "METADATA_ADDRESSES",
    "METADATA_HOSTS",
    "Allowance",
    "IPAddress",
    "address_problem",
    "embedded_ipv4",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "metadata.tencentyun.com"}
)
"""Host names of cloud instance-metadata services, refused unless allowed by name."""
METADATA_ADDRESSES = frozenset(
    ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
"""AWS, GCP, Azure, Huawei, Tencent (169.254.169.254), AWS IPv6, Alibaba Cloud."""


class Allowance:
    """The host's ``allow_hosts``: names, addresses and networks it vouches for.

    Args:
        entries: Host names, addresses or networks (``10.20.0.0/16``).

    Raises:
        ValidationError: an entry is not text, or has a ``/`` but is not a network
            (``10.0.0.0/33``): a host name has none.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for position, entry in enumerate(entries):
            if not isinstance(entry, str):
                problem = f"must be a host name, an address or a network, got {entry!r}"
                raise ValidationError([(f"allow_hosts[{position}]", problem)])
            text = entry.strip().lower().rstrip(".")
            try:
                networks.append(ip_network(text.strip("[]"), strict=False))
            except ValueError as exc:
                if "/" in text:
                    problem = f"{entry!r} is not a network such as 10.20.0.0/16 ({exc})"
                    raise ValidationError([(f"allow_hosts[{position}]", problem)]) from None
                names.add(text)
        self.names = frozenset(names)
        self.networks = tuple(networks)

    def allows_name(self, host: str) -> bool:
        """Whether ``host`` (lower case, no trailing dot) is named."""
        return host in self.names

    def allows_address(self, address: IPAddress) -> bool:
        """Whether ``address`` lies in a listed network; metadata only when listed exactly."""
        # A metadata address passes only when named exactly, never through a wider net.
        exact = address.max_prefixlen
        return any(
            address in net and (not _metadata(address) or net.prefixlen == exact)
            for net in self.networks
            if net.version == address.version
        )


_NAT64 = IPv6Network("64:ff9b::/96")
_LOCAL_NAT64 = IPv6Network("64:ff9b:1::/48")
_TRANSLATED = IPv6Network("::ffff:0:0:0/96")
_COMPATIBLE = IPv6Network("::/96")


def embedded_ipv4(address: IPv6Address) -> list[tuple[str, IPv4Address]]:
    """The IPv4 addresses that ``address`` carries, each with the kind of address it is.

    A packet to such an address may be delivered to the IPv4 address inside it (by a
    6to4 relay, a NAT64 gateway, a Teredo relay, or a dual stack), so that address
    must pass the same checks.

    >>> embedded_ipv4(IPv6Address("2002:7f00:1::"))
    [('a 6to4 address', IPv4Address('127.0.0.1'))]
    """
    low = IPv4Address(int(address) & 0xFFFF_FFFF)
    found: list[tuple[str, IPv4Address]] = []
    if address.ipv4_mapped is not None:
        found.append(("an IPv4-mapped address", address.ipv4_mapped))
    if address.sixtofour is not None:
        found.append(("a 6to4 address", address.sixtofour))
    if address.teredo is not None:
        server, client = address.teredo
        found += [("a Teredo address", client), ("a Teredo address", server)]
    if address in _NAT64:
        found.append(("a NAT64 address", low))
    if address in _TRANSLATED:
        found.append(("an IPv4-translated address", low))
    if address in _COMPATIBLE and int(address) > 1:  # not :: or ::1, checked as such
        found.append(("an IPv4-compatible address", low))
    return found


def address_problem(address: IPAddress) -> str | None:
    """Why a webhook must not go to ``address`` ("a loopback address"), or ``None``.

    An IPv6 address is refused when an IPv4 address inside it would be (see
    :func:`embedded_ipv4`), and when it is site-local (``fec0::/10``, deprecated).
    """
    if isinstance(address, IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:  # the IPv4 address itself, written the IPv6 way
            problem = address_problem(mapped)
            return f"an IPv4-mapped address of {mapped}, {problem}" if problem else None
        for kind, inner in embedded_ipv4(address):
            problem = address_problem(inner)
            if problem:
                return f"{kind} of {inner}, {problem}"
        if address.is_site_local:
            return "a deprecated site-local address (fec0::/10)"
        if address in _LOCAL_NAT64:
            return "a local-use NAT64 address (64:ff9b:1::/48)"
    checks = (
        (_metadata(address), "a cloud metadata address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a globally routable address"),
    )
    return next((reason for failed, reason in checks if failed), None)


def _metadata(address: IPAddress) -> bool:
    """Whether ``address`` is, or carries, a cloud metadata address."""
    if address in METADATA_ADDRESSES:
        return True
    inner = embedded_ipv4(address) if isinstance(address, IPv6Address) else []
    return any(embedded in METADATA_ADDRESSES for _, embedded in inner)
