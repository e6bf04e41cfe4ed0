import os
import stat

import pytest
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID

from node.keyfile import KeyFileError, load_identity, load_or_create_identity


def test_first_use_creates_a_key_readable_only_by_its_owner(tmp_path):
    path = tmp_path / "config" / "identity.pem"
    identity = load_or_create_identity(path)
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert identity.peer_id.startswith("12D3KooW")


def test_a_restart_loads_the_same_identity_and_never_rewrites_the_file(tmp_path):
    path = tmp_path / "identity.pem"
    first = load_or_create_identity(path)
    written = path.read_bytes()
    again = load_or_create_identity(path)
    assert again.peer_id == first.peer_id
    assert path.read_bytes() == written
    assert load_identity(path).peer_id == first.peer_id


def test_the_saved_key_gives_the_peer_id_libp2p_derives(tmp_path):
    identity = load_or_create_identity(tmp_path / "identity.pem")
    libp2p_pair = create_new_key_pair(identity.seed())
    assert ID.from_pubkey(libp2p_pair.public_key).to_base58() == identity.peer_id


@pytest.mark.parametrize(
    "content", [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_a_corrupt_key_file_is_an_error_naming_the_file_and_is_left_alone(tmp_path, content):
    path = tmp_path / "identity.pem"
    path.write_bytes(content)
    with pytest.raises(KeyFileError) as caught:
        load_or_create_identity(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    assert path.read_bytes() == content


def test_an_unreadable_key_file_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "identity.pem"
    path.mkdir()  # a directory where the key should be: reading it fails for root too
    with pytest.raises(KeyFileError, match="cannot read") as caught:
        load_identity(path)
    assert str(path) in str(caught.value)


def test_the_key_file_is_not_left_open_to_others_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        path = tmp_path / "identity.pem"
        load_or_create_identity(path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
