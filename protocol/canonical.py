"""Canonical msgpack: one logical value, one byte string, on every machine.

Maps have string keys written in sorted order, strings are UTF-8, byte strings are msgpack
``bin``, floats are always float64, and nothing else (no ext types, no timestamps) exists.
"""

import hashlib
from typing import Any

import msgpack

from protocol.errors import ProtocolError

MAX_DEPTH = 8
_STR = frozenset({str})
_CONTAINERS = frozenset({dict, list})


def pack(value: Any) -> bytes:
    """Encode ``value`` canonically; raise ProtocolError on a type we don't carry."""
    try:
        return msgpack.packb(_sorted(value, 0), use_bin_type=True, use_single_float=False)
    except UnicodeEncodeError:  # a lone surrogate, e.g. from JSON's "\ud800"
        raise ProtocolError("text is not valid Unicode") from None


def unpack(data: bytes, max_len: int) -> Any:
    """Decode untrusted bytes that must be exactly the canonical encoding of their value."""
    if len(data) > max_len:
        raise ProtocolError(f"{len(data)} bytes is over the cap of {max_len}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as err:
        raise ProtocolError(f"not msgpack: {type(err).__name__}") from None
    # Checking the maps in place and re-encoding as decoded is the same test as pack(value) == data
    # (msgpack keeps a map's wire order), without rebuilding the tree in Python.
    _check_maps(value, 0)
    if msgpack.packb(value, use_bin_type=True, use_single_float=False) != data:
        raise ProtocolError("not in canonical form")
    return value


def digest(tag: bytes, value: Any) -> str:
    """Hex SHA-256 of the canonical encoding, domain-separated by ``tag``."""
    return hashlib.sha256(tag + pack(value)).hexdigest()


def _sorted(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ProtocolError("nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
            raise ProtocolError("integer out of range")
        return value
    if isinstance(value, (list, tuple)):
        return [_sorted(item, depth + 1) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ProtocolError("map keys must be strings")
        return {key: _sorted(value[key], depth + 1) for key in sorted(value)}
    raise ProtocolError(f"cannot encode {type(value).__name__}")


def _check_maps(value: Any, depth: int) -> None:
    """Raise unless every map in a decoded value has string keys in sorted order, within MAX_DEPTH."""
    if type(value) is dict:
        keys = list(value)
        if not _STR.issuperset(map(type, keys)):
            raise ProtocolError("map keys must be strings")
        if keys != sorted(keys):
            raise ProtocolError("not in canonical form")
        children = value.values()
    elif type(value) is list:
        children = value
    else:
        return
    if depth >= MAX_DEPTH and children:  # pack() refuses any value deeper than MAX_DEPTH
        raise ProtocolError("nested too deeply")
    if _CONTAINERS.isdisjoint(map(type, children)):  # most maps hold only scalars: skip the loop
        return
    for child in children:
        if type(child) in _CONTAINERS:
            _check_maps(child, depth + 1)
