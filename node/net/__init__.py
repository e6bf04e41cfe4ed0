"""The network: the only subpackage that loads libp2p.

    swarm.py           the swarm: host, gossip, sync and peer keeping under one nursery
    host.py            the libp2p host and GossipSub router, built the one way we run them
    libp2p_patches.py  every change we make to py-libp2p 0.8.1 internals, in one place
    pnet.py            the standard libp2p private network (XSalsa20) and its key file
    netstream.py       a libp2p stream seen as a trio stream, for the sync protocol
    sync.py            anti-entropy: range-based set reconciliation over one stream
    keeper.py          redials known peers for as long as the node runs
    bootstrap.py       bootstrap peer files (no libp2p: the CLI reads them too)
    addresses.py       the addresses a node tells others to dial
    claims.py          live claims in memory: who runs which config until when
    ratelimit.py       per-key token buckets

Imports protocol, node.store and the leaves (node.errors, node.clock).
"""
