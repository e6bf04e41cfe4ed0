"""The addresses a node can tell others to dial, from the address it listens on."""

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
