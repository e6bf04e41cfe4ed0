import random
import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import canonical
from protocol.errors import ProtocolError

CAP = 64 * 1024

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


def nested_lists(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@given(st.dictionaries(st.text(max_size=8), values, max_size=8), st.randoms())
def test_same_map_gives_same_bytes_whatever_the_insertion_order(mapping, rng):
    keys = list(mapping)
    rng.shuffle(keys)
    assert canonical.pack({key: mapping[key] for key in keys}) == canonical.pack(mapping)


@settings(max_examples=500)
@given(values)
def test_unpack_returns_what_was_packed(value):
    assert canonical.unpack(canonical.pack(value), CAP) == value


@settings(max_examples=2000)
@given(st.binary(max_size=200))
def test_bytes_that_unpack_are_exactly_the_canonical_encoding(data):
    try:
        value = canonical.unpack(data, CAP)
    except ProtocolError:
        return
    assert canonical.pack(value) == data


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x82\xa1b\x01\xa1a\x02", "keys out of order"),
        (b"\x82\xa1a\x01\xa1a\x02", "a repeated key"),
        (b"\x81\xc4\x01a\x01", "a byte-string key"),
        (b"\x81\x01\x01", "an integer key"),
        (b"\xd3" + struct.pack(">q", 1), "an integer wider than it needs"),
        (b"\xcc\x05", "a small integer in a uint8"),
        (b"\xca" + struct.pack(">f", 0.5), "a float32"),
        (b"\xd9\x01a", "a short string in str8"),
        (b"\xdc\x00\x01\x01", "a short array in array16"),
        (b"\xd4\x01\x00", "an extension type"),
        (b"\xd6\xff\x00\x00\x00\x00", "a timestamp"),
        (b"\x01\x02", "trailing bytes"),
        (b"\x92\x01", "a truncated array"),
        (b"\xc1", "a reserved byte"),
        (b"\xa2\xff\xfe", "invalid UTF-8"),
        (b"", "nothing at all"),
    ],
)
def test_non_canonical_bytes_are_rejected(data, why):
    with pytest.raises(ProtocolError):
        canonical.unpack(data, CAP)


def test_bytes_over_the_cap_are_rejected_before_parsing():
    with pytest.raises(ProtocolError, match="over the cap"):
        canonical.unpack(canonical.pack("x" * 100), 50)


def test_nesting_limit_is_the_same_for_pack_and_unpack():
    deepest = nested_lists(canonical.MAX_DEPTH)
    assert canonical.unpack(canonical.pack(deepest), CAP) == deepest
    too_deep = nested_lists(canonical.MAX_DEPTH + 1)
    with pytest.raises(ProtocolError, match="nested too deeply"):
        canonical.pack(too_deep)
    with pytest.raises(ProtocolError, match="nested too deeply"):
        canonical.unpack(msgpack.packb(too_deep), CAP)


def test_very_deep_nesting_is_rejected_with_our_error():
    with pytest.raises(ProtocolError):
        canonical.unpack(b"\x91" * 5000 + b"\x01", CAP)


@pytest.mark.parametrize(
    "value",
    [{1: "a"}, {b"k": 1}, {1, 2}, 2**64, -(2**63) - 1, object(), "lone \ud800 surrogate"],
    ids=["int key", "bytes key", "set", "big int", "small int", "object", "surrogate"],
)
def test_pack_refuses_values_it_cannot_carry(value):
    with pytest.raises(ProtocolError):
        canonical.pack(value)


def test_tuples_and_lists_encode_alike():
    assert canonical.pack((1, "a")) == canonical.pack([1, "a"])


def test_floats_are_always_float64():
    assert canonical.pack(0.5) == b"\xcb" + struct.pack(">d", 0.5)


def test_digest_depends_on_the_tag_and_not_on_insertion_order():
    first = canonical.digest(b"tag/1\n", {"a": 1, "b": 2})
    assert first == canonical.digest(b"tag/1\n", {"b": 2, "a": 1})
    assert first != canonical.digest(b"tag/2\n", {"a": 1, "b": 2})
    assert len(first) == 64 and set(first) <= set("0123456789abcdef")


def test_a_shuffled_large_map_packs_identically():
    mapping = {f"key{index}": index for index in range(200)}
    items = list(mapping.items())
    random.Random(7).shuffle(items)
    assert canonical.pack(dict(items)) == canonical.pack(mapping)
