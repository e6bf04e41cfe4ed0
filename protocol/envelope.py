"""Signed envelopes: the layer that records and announcements share.

Wire form: canonical msgpack ``[payload, signature]``; the payload is the canonical msgpack of
``{v, kind, author, ts_ms, body}``; the signature is Ed25519 by the author over a domain tag and
the payload. Each message family has its own tag, so one can never pass for another.
"""

from collections.abc import Mapping
from typing import Any

from protocol import canonical
from protocol.errors import ProtocolError
from protocol.identity import Identity, public_from_peer_id, verify

VERSION = 1
FIELDS = frozenset({"v", "kind", "author", "ts_ms", "body"})


def seal(identity: Identity, tag: bytes, kind: str, body: Mapping[str, Any], ts_ms: int) -> bytes:
    """The wire bytes of an envelope signed by ``identity``."""
    envelope = {"v": VERSION, "kind": kind, "author": identity.peer_id, "ts_ms": ts_ms, "body": body}
    payload = canonical.pack(envelope)
    return canonical.pack([payload, identity.sign(tag + payload)])


def body_of(sealed: bytes) -> Any:
    """The body of an envelope we sealed ourselves, as a reader unpacks it (not verified: it is ours)."""
    payload, _signature = canonical.unpack(sealed, len(sealed))
    return canonical.unpack(payload, len(payload))["body"]


def open_sealed(
    data: Any, *, tag: bytes, kinds: Mapping[str, Any], max_bytes: int, now_ms: int, max_future_ms: int,
    error: type[ProtocolError], noun: str,
) -> tuple[str, str, int, Any]:  # fmt: skip
    """(kind, author, ts_ms, body) of verified untrusted bytes; else ``error`` with a one-line reason.

    The body is returned unchecked: its schema is the caller's.
    """
    if not isinstance(data, bytes):
        raise error(f"{noun} is bytes")
    try:
        outer = canonical.unpack(data, max_bytes)
        if not (isinstance(outer, list) and len(outer) == 2 and all(isinstance(part, bytes) for part in outer)):
            raise error(f"{noun} is [payload, signature]")
        payload, signature = outer
        envelope = canonical.unpack(payload, max_bytes)
    except error:
        raise
    except ProtocolError as err:
        raise error(str(err)) from None
    if not isinstance(envelope, Mapping) or set(envelope) != FIELDS:
        raise error("an envelope has exactly v, kind, author, ts_ms, body")
    if type(envelope["v"]) is not int or envelope["v"] != VERSION:
        raise error(f"version {envelope['v']!r:.20} is unknown")
    kind, author, ts_ms = envelope["kind"], envelope["author"], envelope["ts_ms"]
    if not isinstance(kind, str) or kind not in kinds:
        raise error(f"unknown kind {str(kind)[:20]!r}")
    try:
        public_from_peer_id(author)
    except ProtocolError:
        raise error("author is not an Ed25519 peer ID") from None
    if type(ts_ms) is not int or ts_ms < 0:
        raise error("ts_ms must be a non-negative integer")
    if ts_ms > now_ms + max_future_ms:
        raise error(f"timestamp is {(ts_ms - now_ms) // 1000} s in the future")
    if not verify(author, tag + payload, signature):
        raise error("bad signature")
    return kind, author, ts_ms, envelope["body"]
