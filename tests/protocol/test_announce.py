import pytest

from protocol import announce, canonical
from protocol.announce import MAX_ADDRS, MAX_AGE_MS, MAX_CLAIM_TTL_MS, MAX_SKEW_MS, Addrs, AnnounceError, Claim
from protocol.identity import Identity

ME = Identity.from_seed(bytes(range(32)))
NOW = 1_700_000_000_000
CONFIG = "ab" * 32
TRACK = "cpu-x1/300s/shakespeare/bpe1024/eval1"


def test_addrs_round_trip_names_the_signer():
    data = announce.sign_addrs(ME, ["/ip4/127.0.0.1/tcp/4001"], NOW)
    assert announce.decode(data, NOW) == Addrs(ME.peer_id, NOW, ("/ip4/127.0.0.1/tcp/4001",))


def test_claim_round_trip_and_expiry():
    claim = announce.decode(announce.sign_claim(ME, TRACK, CONFIG, NOW, 60_000), NOW)
    assert claim == Claim(ME.peer_id, NOW, TRACK, CONFIG, NOW + 60_000)
    assert claim.live(NOW + 59_999) and not claim.live(NOW + 60_000)


def test_any_flipped_byte_is_rejected():
    data = announce.sign_addrs(ME, ["/ip4/127.0.0.1/tcp/4001"], NOW)
    for index in range(len(data)):
        tampered = bytearray(data)
        tampered[index] ^= 0x01
        with pytest.raises(AnnounceError):
            announce.decode(bytes(tampered), NOW)


def test_a_signed_record_payload_cannot_pass_as_an_announcement():
    # Same envelope shape, but a record's signature covers another domain tag.
    payload = canonical.pack(
        {"v": 1, "kind": "addrs", "author": ME.peer_id, "ts_ms": NOW, "body": {"addrs": ["/ip4/1.2.3.4/tcp/1"]}}
    )
    forged = canonical.pack([payload, ME.sign(b"arnode/record/1\n" + payload)])
    with pytest.raises(AnnounceError, match="bad signature"):
        announce.decode(forged, NOW)


@pytest.mark.parametrize(
    ("ts_ms", "reason"),
    [(NOW + MAX_SKEW_MS + 1, "future"), (NOW - MAX_AGE_MS - 1, "old")],
)
def test_timestamps_out_of_the_window_are_rejected(ts_ms, reason):
    data = announce.sign_addrs(ME, ["/ip4/127.0.0.1/tcp/4001"], ts_ms)
    with pytest.raises(AnnounceError, match=reason):
        announce.decode(data, NOW)


@pytest.mark.parametrize(
    "addrs",
    [[], ["/ip4/1.2.3.4/tcp/1"] * (MAX_ADDRS + 1), ["no-slash"], ["/" + "a" * 300], ["/ip4/1.2.3.4/tcp/1\n"], [7]],
)
def test_bad_address_lists_are_refused_even_when_we_sign_them(addrs):
    with pytest.raises(AnnounceError):
        announce.sign_addrs(ME, addrs, NOW)


@pytest.mark.parametrize(
    ("track", "config", "ttl_ms"),
    [(TRACK, "xyz", 1000), ("Bad Track", CONFIG, 1000), (TRACK, CONFIG, 0), (TRACK, CONFIG, MAX_CLAIM_TTL_MS + 1)],
)
def test_bad_claims_are_refused(track, config, ttl_ms):
    with pytest.raises(AnnounceError):
        announce.sign_claim(ME, track, config, NOW, ttl_ms)


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x90", canonical.pack([b"a", b"b"]), b"\x00" * 5000, "text"])
def test_garbage_gets_a_one_line_error(data):
    with pytest.raises(AnnounceError) as caught:
        announce.decode(data, NOW)
    assert "\n" not in str(caught.value)
