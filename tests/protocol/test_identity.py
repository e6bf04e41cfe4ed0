import base58
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID

from protocol.errors import ProtocolError
from protocol.identity import PEER_ID_LEN, Identity, peer_id_from_public, public_from_peer_id, verify

SEED = bytes(range(32))
# An RSA peer ID (a SHA-256 multihash, not an inline key): valid libp2p, but holds no Ed25519 key.
RSA_PEER_ID = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
# The right length and encoding, but the key type says secp256k1 (2), not Ed25519 (1).
SECP256K1_SHAPED = base58.b58encode(bytes([0x00, 0x24, 0x08, 0x02, 0x12, 0x20]) + SEED).decode()


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_peer_id_equals_what_libp2p_derives_from_the_same_key(seed):
    libp2p_pair = create_new_key_pair(seed)
    assert Identity.from_seed(seed).peer_id == ID.from_pubkey(libp2p_pair.public_key).to_base58()


def test_peer_id_has_the_ed25519_shape():
    peer_id = Identity.from_seed(SEED).peer_id
    assert peer_id.startswith("12D3KooW") and len(peer_id) == PEER_ID_LEN


def test_public_key_round_trips_through_the_peer_id():
    identity = Identity.generate()
    assert public_from_peer_id(identity.peer_id) == identity.public_bytes
    assert peer_id_from_public(identity.public_bytes) == identity.peer_id


@pytest.mark.parametrize(
    "peer_id",
    [
        RSA_PEER_ID,
        SECP256K1_SHAPED,
        "",
        "12D3KooW",
        "0" * PEER_ID_LEN,
        "1" * PEER_ID_LEN,
        "z" * PEER_ID_LEN,
        12345,
        None,
        b"12D3",
    ],
)
def test_strings_that_hold_no_ed25519_key_are_rejected(peer_id):
    with pytest.raises(ProtocolError, match="not an Ed25519 peer ID"):
        public_from_peer_id(peer_id)


def test_signature_verifies_under_the_signer_only():
    alice, bob = Identity.from_seed(SEED), Identity.from_seed(bytes(32))
    signature = alice.sign(b"message")
    assert verify(alice.peer_id, b"message", signature)
    assert not verify(bob.peer_id, b"message", signature)
    assert not verify(alice.peer_id, b"massage", signature)


@pytest.mark.parametrize("index", range(64))
def test_a_signature_with_any_byte_flipped_fails(index):
    alice = Identity.from_seed(SEED)
    signature = bytearray(alice.sign(b"message"))
    signature[index] ^= 0x01
    assert not verify(alice.peer_id, b"message", bytes(signature))


@pytest.mark.parametrize("signature", [b"", b"\x00" * 63, b"\x00" * 65, "text", None])
def test_malformed_signatures_fail_without_raising(signature):
    assert not verify(Identity.from_seed(SEED).peer_id, b"message", signature)


def test_verify_with_a_bad_peer_id_fails_without_raising():
    signature = Identity.from_seed(SEED).sign(b"message")
    assert not verify(RSA_PEER_ID, b"message", signature)
    assert not verify("not a peer id", b"message", signature)


def test_pem_round_trip_keeps_the_key():
    identity = Identity.generate()
    loaded = Identity.from_pem(identity.to_pem())
    assert loaded.peer_id == identity.peer_id
    assert loaded.seed() == identity.seed()


def test_seed_is_what_libp2p_wants():
    identity = Identity.from_seed(SEED)
    assert identity.seed() == SEED
    assert Identity.from_seed(identity.seed()).peer_id == identity.peer_id


@pytest.mark.parametrize("data", [b"", b"not a key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"])
def test_garbage_pem_is_rejected_on_one_line(data):
    with pytest.raises(ProtocolError) as caught:
        Identity.from_pem(data)
    assert "\n" not in str(caught.value)


def test_a_pem_key_of_another_algorithm_is_rejected():
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ProtocolError, match="not Ed25519"):
        Identity.from_pem(pem)
