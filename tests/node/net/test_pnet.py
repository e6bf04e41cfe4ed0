"""The standard libp2p private network: XSalsa20 checked against NaCl's published vectors and
libsodium, and a real host on 127.0.0.1 met on the wire by a peer that speaks the spec by hand,
by one with another key, and by one running py-libp2p's own pre-standard pnet (an older arnode)."""

import hashlib
import logging
import os

import multiaddr
import trio
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.security.pnet.psk_conn import PskConn
from nacl.secret import SecretBox

from node.net import pnet
from node.net.host import build_host
from protocol.identity import Identity

LOCAL = "/ip4/127.0.0.1/tcp/0"
ANSWER_WITHIN_S = 10.0  # a bound on a loop, not a timing assertion
_OPENING = pnet.NONCE_BYTES + len(pnet.MULTISTREAM_HEADER)  # a host's nonce and its first words

# NaCl's tests (tests/stream.c, stream2.c, stream3.c): one key and nonce, the HSalsa20 subkey that
# makes XSalsa20 with them equal Salsa20 with the subkey, the first 32 keystream bytes, and the
# SHA-256 of the first 4 MiB of keystream.
NACL_KEY = bytes.fromhex("1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389")
NACL_NONCE = bytes.fromhex("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37")
NACL_SUBKEY = bytes.fromhex("dc908dda0b9344a953629b733820778880f3ceb421bb61b91cbd4c3e66256ce4")
NACL_FIRST_32 = bytes.fromhex("eea6a7251c1e72916d11c2cb214d3c252539121d8e234e652d651fa4c8cff880")
NACL_4MIB_SHA256 = "662b9d0e3463029156069b12f918691a98f7dfb2ca0393c96bbfc6b1fbd630a2"


def test_xsalsa20_matches_nacls_published_vectors():
    assert pnet.hsalsa20(NACL_KEY, NACL_NONCE[:16]) == NACL_SUBKEY
    assert pnet.XSalsa20(NACL_KEY, NACL_NONCE).xor(bytes(32)) == NACL_FIRST_32
    stream = pnet.XSalsa20(NACL_KEY, NACL_NONCE)
    chunks = [1, 63, 64, 65, 1000, 4 * 2**20 - 1193]  # the keystream runs on across writes of any size
    keystream = b"".join(stream.xor(bytes(size)) for size in chunks)
    assert len(keystream) == 4 * 2**20
    assert hashlib.sha256(keystream).hexdigest() == NACL_4MIB_SHA256


def test_xsalsa20_agrees_with_libsodiums_secretbox():
    # secretbox is XSalsa20-Poly1305: past its 16-byte tag, the box of zeros is the keystream from byte 32 on
    for size in (1, 100, 5000):
        key, nonce = os.urandom(32), os.urandom(24)
        boxed = SecretBox(key).encrypt(bytes(size), nonce).ciphertext
        assert pnet.XSalsa20(key, nonce).xor(bytes(32 + size))[32:] == boxed[16:]


def test_the_key_file_is_libp2ps_standard_format():
    key = bytes(range(32))
    assert pnet.key_file(key) == "/key/swarm/psk/1.0.0/\n/base16/\n" + key.hex() + "\n"
    assert pnet.network_key(b"swarm key") != pnet.network_key(b"swarm kez")  # derived, never the raw key


def test_a_peer_speaking_the_spec_by_hand_gets_multistream_under_xsalsa20():
    swarm_key = os.urandom(32)
    answer = trio.run(_speak_to_a_host, swarm_key, _spec_peer(pnet.network_key(swarm_key)))
    host_nonce, ciphertext = answer[: pnet.NONCE_BYTES], answer[pnet.NONCE_BYTES :]
    plain = pnet.XSalsa20(pnet.network_key(swarm_key), host_nonce).xor(ciphertext)
    assert plain.startswith(pnet.MULTISTREAM_HEADER)


def test_a_peer_with_another_swarms_key_is_refused_at_once_in_one_line(caplog):
    with caplog.at_level(logging.WARNING, logger="arnode.pnet"):
        trio.run(_speak_to_a_host, os.urandom(32), _spec_peer(os.urandom(32)), _HANG_UP)
    refusals = [record.getMessage() for record in caplog.records if record.name == "arnode.pnet"]
    assert len(refusals) == 1 and "another swarm's key" in refusals[0], refusals


def test_an_older_arnode_with_the_salsa20_pnet_is_told_apart(caplog):
    swarm_key = os.urandom(32)
    with caplog.at_level(logging.WARNING, logger="arnode.pnet"):
        trio.run(_speak_to_a_host, swarm_key, _old_arnode_peer(pnet.network_key(swarm_key)), _HANG_UP)
    refusals = [record.getMessage() for record in caplog.records if record.name == "arnode.pnet"]
    assert len(refusals) == 1 and "pre-standard pnet (Salsa20, 8-byte nonce)" in refusals[0], refusals


def _spec_peer(key: bytes):
    async def dial(tcp: trio.SocketStream) -> None:
        nonce = os.urandom(pnet.NONCE_BYTES)
        await tcp.send_all(nonce + pnet.XSalsa20(key, nonce).xor(pnet.MULTISTREAM_HEADER + b"\x07/noise\n"))

    return dial


def _old_arnode_peer(key: bytes):
    async def dial(tcp: trio.SocketStream) -> None:
        old = PskConn(RawConnection(TrioTCPStream(tcp), initiator=True), key.hex())  # py-libp2p 0.8.1's own
        await old.write(pnet.MULTISTREAM_HEADER + b"\x07/noise\n")

    return dial


_HANG_UP = None  # read until the host closes the connection (a bounded wait: it fails otherwise)


async def _speak_to_a_host(swarm_key: bytes, dial, enough: int | None = _OPENING) -> bytes:
    """What a real host on 127.0.0.1 sends back to ``dial``'s opening: ``enough`` bytes, or all until it hangs up."""
    host = build_host(Identity.generate(), swarm_key, LOCAL)
    async with host.run([multiaddr.Multiaddr(LOCAL)]):
        port = int(host.get_addrs()[0].value_for_protocol("tcp"))
        tcp = await trio.open_tcp_stream("127.0.0.1", port)
        answer = b""
        with trio.fail_after(ANSWER_WITHIN_S):
            await dial(tcp)
            while enough is None or len(answer) < enough:
                try:
                    data = await tcp.receive_some()
                except trio.BrokenResourceError:  # reset rather than closed: a hang-up all the same
                    data = b""
                if not data:
                    assert enough is None, f"the host hung up after {len(answer)} bytes"
                    break
                answer += data
        await tcp.aclose()
        return answer
