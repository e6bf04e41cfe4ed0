"""Addresses: the ones a node can tell others to dial, and which announced ones are worth dialling."""

import ipaddress
import socket

WILDCARDS = {"0.0.0.0": socket.AF_INET, "::": socket.AF_INET6}


def shareable_addrs(listen: str) -> list[str]:
    """``listen`` with a wildcard host replaced by this machine's own addresses (loopback last)."""
    parts = listen.split("/")
    if len(parts) < 3 or parts[2] not in WILDCARDS:
        return [listen]
    family = WILDCARDS[parts[2]]
    hosts = sorted(_local_hosts(family), key=lambda host: (host.startswith(("127.", "::1")), host))
    return ["/".join([*parts[:2], host, *parts[3:]]) for host in hosts]


def _local_hosts(family: int) -> set[str]:
    hosts = {"127.0.0.1"} if family == socket.AF_INET else {"::1"}
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, family)
    except OSError:
        return hosts
    return hosts | {info[4][0] for info in infos}


def ordinary_addr(addr: str) -> bool:
    """Whether a transport multiaddr names a public, private-range or loopback IP address.

    Anything else (DNS names, link-local, multicast, unspecified or reserved addresses) is
    dialled only with an explicit setting: a member's announcement must not be able to aim
    our dials at names or corners of the network its owner never meant us to reach.
    """
    parts = addr.split("/")
    if len(parts) < 3 or parts[1] not in ("ip4", "ip6"):
        return False
    try:
        ip = ipaddress.ip_address(parts[2])
    except ValueError:
        return False
    if ip.is_loopback:  # first: Python counts ::1 among the reserved ::/8
        return True
    if ip.is_unspecified or ip.is_multicast or ip.is_link_local or ip.is_reserved:
        return False
    return ip.is_global or ip.is_private
