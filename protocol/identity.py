"""Ed25519 identities: one key is both the libp2p peer ID and the signer of our records."""

from functools import lru_cache

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from protocol.errors import ProtocolError

# libp2p's PublicKey protobuf for Ed25519 (field 1: KeyType=1, field 2: 32 bytes of data),
# wrapped in an identity multihash (code 0x00, length 36): the bytes behind "12D3KooW...".
_PEER_ID_PREFIX = bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20])
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
PEER_ID_LEN = 52
KNOWN_AUTHORS = 4096  # peer IDs whose public key stays decoded: a ledger sees few authors, many times


class Identity:
    """A node's private key, with the peer ID it answers to."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_bytes = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.peer_id = peer_id_from_public(self.public_bytes)

    @classmethod
    def generate(cls) -> "Identity":
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> "Identity":
        """The identity whose private key is the 32-byte ``seed`` (deterministic, for tests)."""
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem(cls, data: bytes) -> "Identity":
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as err:
            raise ProtocolError(f"not a PEM private key: {err}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ProtocolError("the key is not Ed25519")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def seed(self) -> bytes:
        """The raw 32-byte private key, as libp2p's key pair wants it."""
        return self._key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


def peer_id_from_public(public: bytes) -> str:
    return _b58encode(_PEER_ID_PREFIX + public)


def public_from_peer_id(peer_id: str) -> bytes:
    """The Ed25519 public key inside a peer ID; ProtocolError if it holds none."""
    if not isinstance(peer_id, str) or len(peer_id) != PEER_ID_LEN:
        raise ProtocolError("not an Ed25519 peer ID")
    return _public_from_text(peer_id)


@lru_cache(maxsize=KNOWN_AUTHORS)
def _public_from_text(peer_id: str) -> bytes:
    raw = _b58decode(peer_id)
    if len(raw) != len(_PEER_ID_PREFIX) + 32 or not raw.startswith(_PEER_ID_PREFIX):
        raise ProtocolError("not an Ed25519 peer ID")
    return raw[len(_PEER_ID_PREFIX) :]


def verify(peer_id: str, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``data`` was made by the key behind ``peer_id``."""
    # libsodium verifies in half the time OpenSSL takes here, and is stricter: it also refuses
    # small-order keys and non-canonical encodings, which no honest signer produces.
    try:
        VerifyKey(public_from_peer_id(peer_id)).verify(data, signature)
    except (BadSignatureError, ValueError, TypeError):  # ValueError covers ProtocolError
        return False
    return True


def _b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, digit = divmod(number, 58)
        out = _B58[digit] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        digit = _B58.find(char)
        if digit < 0:
            raise ProtocolError("not an Ed25519 peer ID")
        number = number * 58 + digit
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body
