"""The libp2p host and its GossipSub router, built the one way this project runs them.

TCP only, Noise only (no plaintext, secio or TLS offered), Yamux, and the standard libp2p private
network (pnet.py) keyed from the swarm file, so a node without the key never completes a handshake.
"""

import multiaddr
from libp2p import new_host as libp2p_new_host
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport

from node.net import libp2p_patches, pnet
from protocol.identity import Identity
from protocol.records import MAX_RECORD_BYTES

# The handshake is two round trips on a LAN or the internet; a wrong key shows up as a
# handshake that never completes, so this bounds how long an outsider can hold a dial.
HANDSHAKE_TIMEOUT_S = 5.0
# A pubsub frame carries one record (or one announcement) plus envelope: refuse anything larger.
MAX_RPC_BYTES = 4 * MAX_RECORD_BYTES
HEARTBEAT_S = 1


def build_host(identity: Identity, psk: bytes, listen: str) -> IHost:
    """A host with our identity and key; it listens only once ``host.run`` is entered."""
    libp2p_patches.apply()
    key_pair = create_new_key_pair(identity.seed())
    noise = NoiseTransport(key_pair, noise_privkey=create_new_x25519_key_pair().private_key)
    timeouts = ConnectionConfig(
        dial_timeout=HANDSHAKE_TIMEOUT_S,
        inbound_upgrade_timeout=HANDSHAKE_TIMEOUT_S,
        outbound_upgrade_timeout=HANDSHAKE_TIMEOUT_S,
    )
    host = libp2p_new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_preference="YAMUX",
        listen_addrs=[multiaddr.Multiaddr(listen)],
        psk=pnet.network_key(psk).hex(),  # the standard pnet: libp2p_patches swaps the library's for ours
        connection_config=timeouts,
    )
    # Our keeper redials on its own schedule; the library's retries only stretch a failed dial.
    host.get_network().retry_config = RetryConfig(max_retries=0)
    libp2p_patches.guard_stream_handlers(host)
    return host


def build_pubsub(host: IHost) -> Pubsub:
    """GossipSub with a 1 s heartbeat, meshsub 1.1/1.0 only, and the features that drop or stall traffic off."""
    router = GossipSub(
        protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],  # no 1.2+: per-message IDONTWANT fills the queues
        degree=4,  # every mesh peer sends each message once more: 4 cut CPU per node ~1/3 against 6
        degree_low=3,
        degree_high=8,
        heartbeat_interval=HEARTBEAT_S,
        heartbeat_initial_delay=0.1,
        prune_back_off=5,  # a healed peer may rejoin the mesh within seconds, not a minute
        unsubscribe_back_off=2,
        adaptive_gossip_enabled=False,  # stretched a 1 s heartbeat to 30-60 s
        spam_protection_enabled=False,  # silently stopped forwarding past 10 msg/s; our validator rate-limits
        eclipse_protection_enabled=False,  # wants peers on 3 distinct IPs; a LAN swarm has one
    )
    pubsub = Pubsub(host, router, strict_signing=True, max_inbound_rpc_size=MAX_RPC_BYTES)
    libp2p_patches.guard_pubsub(pubsub)
    return pubsub
