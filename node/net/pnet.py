"""The libp2p private network as its spec has it (pnet, Private-Networks-PSK-V1), and the key's file.

Each side of a connection sends a fresh 24-byte nonce first, then XSalsa20 keyed with the network's
32-byte pre-shared key and its own nonce over every byte it writes; the other side decrypts with the
nonce it read. So any libp2p implementation holding the key (go, js, rust) connects to us.

py-libp2p 0.8.1 ships a pnet with Salsa20 and an 8-byte nonce, which no other implementation
speaks; ``libp2p_patches`` puts this one in its place. No library we depend on offers XSalsa20 as a
stream cipher, so it is built the way NaCl defines it: HSalsa20 turns the key and the nonce's first
16 bytes into a subkey, and Salsa20 (pycryptodome's, in C) runs with that subkey and the nonce's
last 8 bytes.

The bytes under the cipher always start with multistream-select's header, so a peer whose first
bytes decrypt to anything else holds another key, or speaks the old cipher: it is refused at once,
with one line saying which, instead of after a handshake timeout.
"""

import hashlib
import logging
import os
import struct
import time

import trio
from Crypto.Cipher import Salsa20
from libp2p.abc import ConnectionType, IRawConnection
from libp2p.network.connection.exceptions import RawConnError
from multiaddr import Multiaddr

log = logging.getLogger("arnode.pnet")

KEY_BYTES = 32
NONCE_BYTES = 24
# The standard key file (go-ipfs "swarm.key", js-libp2p's generateKey): two header lines, then hex.
KEY_FILE_HEADER = "/key/swarm/psk/1.0.0/\n/base16/\n"
# What every libp2p connection says first, under the cipher: multistream-select 1.0.0, length-prefixed.
MULTISTREAM_HEADER = b"\x13/multistream/1.0.0\n"
# py-libp2p 0.8.1's nonce: a peer of ours older than the standard pnet sends this many bytes.
OLD_NONCE_BYTES = 8
REPORT_EVERY_S = 600.0  # one line per peer address and reason this often, however often it redials
_MAX_REPORTED = 1024

_SIGMA = struct.unpack("<4I", b"expand 32-byte k")
_MASK = 0xFFFFFFFF
_reported: dict[tuple[str, str], float] = {}


def network_key(swarm_key: bytes) -> bytes:
    """The private network's key, derived from the swarm file's key so that the raw key is used once."""
    return hashlib.sha256(b"arnode/pnet/1\n" + swarm_key).digest()


def key_file(key: bytes) -> str:
    """The network key in the standard ``/key/swarm/psk/1.0.0/`` file format that stock libp2p nodes read."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"a private network key is {KEY_BYTES} bytes, not {len(key)}")
    return KEY_FILE_HEADER + key.hex() + "\n"


def hsalsa20(key: bytes, nonce: bytes) -> bytes:
    """NaCl's HSalsa20: a 32-byte subkey from a 32-byte key and a 16-byte nonce (20 Salsa20 rounds)."""
    k, n = struct.unpack("<8I", key), struct.unpack("<4I", nonce)
    x = [_SIGMA[0], *k[:4], _SIGMA[1], *n, _SIGMA[2], *k[4:], _SIGMA[3]]
    for _ in range(10):  # a column round and a row round each
        for a, b, c, d in ((0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11)):
            _quarter_round(x, a, b, c, d)
        for a, b, c, d in ((0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14)):
            _quarter_round(x, a, b, c, d)
    return struct.pack("<8I", x[0], x[5], x[10], x[15], x[6], x[7], x[8], x[9])


def _quarter_round(x: list[int], a: int, b: int, c: int, d: int) -> None:
    x[b] ^= _rotate((x[a] + x[d]) & _MASK, 7)
    x[c] ^= _rotate((x[b] + x[a]) & _MASK, 9)
    x[d] ^= _rotate((x[c] + x[b]) & _MASK, 13)
    x[a] ^= _rotate((x[d] + x[c]) & _MASK, 18)


def _rotate(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _MASK


class XSalsa20:
    """One direction of a connection: XSalsa20 keystream, XORed onto the bytes in order, across calls."""

    def __init__(self, key: bytes, nonce: bytes) -> None:
        if len(key) != KEY_BYTES or len(nonce) != NONCE_BYTES:
            raise ValueError(f"XSalsa20 takes a {KEY_BYTES}-byte key and a {NONCE_BYTES}-byte nonce")
        self._cipher = Salsa20.new(key=hsalsa20(key, nonce[:16]), nonce=nonce[16:])

    def xor(self, data: bytes) -> bytes:
        return self._cipher.encrypt(data)


def protect(conn: IRawConnection, key_hex: str) -> "PrivateConnection":
    """``conn`` under the standard pnet with the 64-hex-digit key (the library's ``new_protected_conn``)."""
    key = bytes.fromhex(key_hex)
    if len(key) != KEY_BYTES:
        raise ValueError(f"a private network key is {KEY_BYTES} bytes, not {len(key)}")
    return PrivateConnection(conn, key)


class PrivateConnection(IRawConnection):
    """A raw connection under the standard pnet: our nonce goes out before our first read or write."""

    def __init__(self, conn: IRawConnection, key: bytes) -> None:
        self._conn = conn
        self._key = key
        self.is_initiator = conn.is_initiator
        self._peer_address = conn.get_remote_address()  # now: once the peer hangs up, the socket cannot say
        self._local_nonce = os.urandom(NONCE_BYTES)
        self._outbound = XSalsa20(key, self._local_nonce)
        self._nonce_sent = False
        self._nonce_lock = trio.Lock()
        self._peer_nonce = b""
        self._inbound: XSalsa20 | None = None
        self._header_checked = 0  # plaintext bytes compared with the multistream header so far

    async def write(self, data: bytes) -> None:
        if not self._nonce_sent:
            async with self._nonce_lock:
                if not self._nonce_sent:
                    # the keystream is drawn in wire order: nonce and first bytes leave together
                    await self._conn.write(self._local_nonce + self._outbound.xor(data))
                    self._nonce_sent = True
                    return
        await self._conn.write(self._outbound.xor(data))

    async def read(self, n: int | None = None) -> bytes:
        if self._inbound is None:
            await self._send_nonce()  # a stock peer waits for our nonce before it writes anything
            self._peer_nonce = await self._read_nonce()
            self._inbound = XSalsa20(self._key, self._peer_nonce)
        data = await self._conn.read(n)
        if not data:
            return b""
        plain = self._inbound.xor(data)
        if self._header_checked < len(MULTISTREAM_HEADER):
            self._check_header(plain)
        return plain

    async def _send_nonce(self) -> None:
        async with self._nonce_lock:
            if not self._nonce_sent:
                await self._conn.write(self._local_nonce)
                self._nonce_sent = True

    async def _read_nonce(self) -> bytes:
        nonce = b""
        while len(nonce) < NONCE_BYTES:
            data = await self._conn.read(NONCE_BYTES - len(nonce))
            if not data:
                raise RawConnError(f"pnet: the peer closed after {len(nonce)} of the {NONCE_BYTES} nonce bytes")
            nonce += data
        return nonce

    def _check_header(self, plain: bytes) -> None:
        expected = MULTISTREAM_HEADER[self._header_checked : self._header_checked + len(plain)]
        if plain[: len(expected)] != expected:
            reason = refusal_reason(self._key, self._peer_nonce)
            _report(self._peer_address[0] if self._peer_address else "an unknown address", reason)
            raise RawConnError(f"pnet: {reason}")
        self._header_checked += len(expected)

    async def close(self) -> None:
        await self._conn.close()

    def get_remote_address(self) -> tuple[str, int] | None:
        return self._conn.get_remote_address()

    def get_transport_addresses(self) -> list[Multiaddr]:
        return self._conn.get_transport_addresses()

    def get_connection_type(self) -> ConnectionType:
        return self._conn.get_connection_type()


def refusal_reason(key: bytes, first_bytes: bytes) -> str:
    """Why a peer whose first bytes (24 or more) did not decrypt to the multistream header is refused."""
    old_nonce, old_ciphertext = first_bytes[:OLD_NONCE_BYTES], first_bytes[OLD_NONCE_BYTES:NONCE_BYTES]
    old_plain = Salsa20.new(key=key, nonce=old_nonce).decrypt(old_ciphertext)
    if MULTISTREAM_HEADER.startswith(old_plain):
        return (
            "the peer holds our key but speaks the pre-standard pnet (Salsa20, 8-byte nonce) of arnode "
            "nodes older than the standard pnet; upgrade that node"
        )
    return "the peer's bytes do not decrypt with our swarm key: it holds another swarm's key, or none"


def _report(peer_ip: str, reason: str) -> None:
    """Log a refusal once per address and reason every REPORT_EVERY_S: a redialling peer is one line, not a flood."""
    now = time.monotonic()
    if now - _reported.get((peer_ip, reason), -REPORT_EVERY_S) < REPORT_EVERY_S:
        return
    if len(_reported) >= _MAX_REPORTED:
        _reported.clear()
    _reported[(peer_ip, reason)] = now
    log.warning("private network: refused a connection with %s: %s", peer_ip, reason)
