"""Signed records: the only thing nodes tell each other about experiments.

Wire form: canonical msgpack ``[payload, signature]`` where ``payload`` is the canonical msgpack
of the envelope ``{v, kind, author, ts_ms, body}`` and the signature is Ed25519 over a
domain tag plus ``payload``. A record's ID is the SHA-256 of its wire bytes. Because every
layer must be canonical, one logical record has exactly one wire form and one ID.
"""

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from protocol import envelope
from protocol.config import KNOB, check_diff
from protocol.errors import ProtocolError, RecordError
from protocol.identity import Identity, public_from_peer_id
from protocol.metrics import ERROR_CHARS, MAX_BPB_UBPB, METRICS, OUTCOMES
from protocol.track import Track

MAX_RECORD_BYTES = 64 * 1024
MAX_FUTURE_MS = 5 * 60 * 1000
_SIGNING_TAG = b"arnode/record/1\n"
_HEX64 = re.compile(r"[0-9a-f]{64}")
# C0 controls other than tab and newline, DEL, C1 controls, bidi overrides: text from peers
# ends up on terminals and in prompts.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

_METRIC_NAMES = frozenset(METRICS)


@dataclass(frozen=True)
class Record:
    id: bytes
    raw: bytes
    kind: str
    author: str
    ts_ms: int
    body: dict[str, Any]
    track: Track | None  # None for the roster kinds, which belong to no track

    @property
    def hex_id(self) -> str:
        return self.id.hex()


# --- field checks: each takes the untrusted value and returns it, or raises RecordError ---


def _text(limit: int):
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise RecordError(f"expected text, got {type(value).__name__}")
        if len(value) > limit:
            raise RecordError(f"text of {len(value)} chars is over the limit of {limit}")
        if CONTROL_CHARS.search(value):
            raise RecordError("text contains control characters")
        return value

    return check


def _hex64(value: Any) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise RecordError("expected 64 lowercase hex digits")
    return value


def _record_id_or_none(value: Any) -> bytes | None:
    if value is not None and (not isinstance(value, bytes) or len(value) != 32):
        raise RecordError("expected a 32-byte record id or nil")
    return value


def _peer_id(value: Any) -> str:
    try:
        public_from_peer_id(value)
    except ProtocolError:
        raise RecordError("expected an Ed25519 peer ID") from None
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise RecordError("expected true or false")
    return value


def _seed(value: Any) -> int:
    return KNOB["seed"].check(value)


def _outcome(value: Any) -> str:
    if value not in OUTCOMES or not isinstance(value, str):
        raise RecordError(f"outcome must be one of {', '.join(OUTCOMES)}")
    return value


def _ubpb(value: Any) -> int | None:
    if value is not None and (type(value) is not int or not 0 < value <= MAX_BPB_UBPB):
        raise RecordError(f"expected nil or an integer in (0, {MAX_BPB_UBPB}] micro-bpb")
    return value


def _metrics(value: Any) -> dict[str, int | None]:
    if not isinstance(value, Mapping) or value.keys() != _METRIC_NAMES:
        raise RecordError(f"metrics has exactly the fields {', '.join(METRICS)}")
    for name, number in value.items():
        if number is not None and (type(number) is not int or not 0 <= number < 2**63):
            raise RecordError(f"metric {name} must be nil or a non-negative integer")
    return dict(value)


def _diff(value: Any) -> dict[str, Any]:
    diff = check_diff(value)
    if any(not KNOB[name].hashed for name in diff):
        raise RecordError("a diff names the config; per-run knobs such as the seed go elsewhere")
    return diff


MAX_HYPOTHESIS_CHARS = 1000  # why a result was run, as its proposer put it

BODIES: dict[str, dict[str, Any]] = {
    "result": {
        "track": Track.from_wire,
        "parent": _hex64,
        "diff": _diff,
        "config": _hex64,
        "seed": _seed,
        "outcome": _outcome,
        "val_bpb": _ubpb,
        "metrics": _metrics,
        "hypothesis": _text(MAX_HYPOTHESIS_CHARS),
        "proposer": _text(64),
        "code": _hex64,
        "log": _hex64,
        "error": _text(ERROR_CHARS),
        "replicates": _record_id_or_none,
        "test_bpb": _ubpb,  # the holdout split's score: shown to people, never read by the acceptance rule
    },
    "hypothesis": {
        "track": Track.from_wire,
        "parent": _hex64,
        "diff": _diff,
        "rationale": _text(2000),
    },
    # The roster (protocol/roster.py): only an admin's count, and they name no track.
    "membership": {"member": _peer_id, "admin": _flag},
    "revocation": {"member": _peer_id, "reason": _text(200)},
}
ROSTER_KINDS = frozenset({"membership", "revocation"})
# Fields added after the first release, with the value they have in a record that predates them:
# an older record lacks them, keeps its bytes and ID, and reads as if it carried the default.
LATER_FIELDS: dict[str, dict[str, Any]] = {"result": {"test_bpb": None}}


def _checked_body(kind: str, body: Any) -> tuple[dict[str, Any], Track | None]:
    """The body of ``kind`` checked field by field (RecordError names the first bad one), and its track.

    The track is built here once: decoding is the ledger's hot path.
    """
    if kind not in BODIES:
        raise RecordError(f"unknown kind {kind!r}")
    schema = BODIES[kind]
    if not isinstance(body, Mapping):
        raise RecordError("body must be a map")
    body = {**LATER_FIELDS.get(kind, {}), **body}
    if body.keys() != schema.keys():
        _raise_field_mismatch(kind, body, schema)
    checked = {}
    for name, check in schema.items():
        try:
            checked[name] = check(body[name])
        except ProtocolError as err:
            raise RecordError(f"{name}: {err}") from None
    if kind == "result" and (body["outcome"] == "ok") != (body["val_bpb"] is not None):
        raise RecordError("val_bpb is set exactly when the outcome is ok")
    if kind == "result" and body["outcome"] != "ok" and body["test_bpb"] is not None:
        raise RecordError("test_bpb is nil unless the outcome is ok")
    return body, checked.get("track")


def _raise_field_mismatch(kind: str, body: Mapping[str, Any], schema: Mapping[str, Any]) -> NoReturn:
    unknown = sorted(body.keys() - schema.keys(), key=str)
    if unknown:
        raise RecordError(f"unknown field {str(unknown[0])[:40]!r} in a {kind}: from a newer arnode? upgrade this node")
    missing = [name for name in schema if name not in body]
    raise RecordError(f"a {kind} lacks {missing[0]}")


def sign(identity: Identity, kind: str, body: Mapping[str, Any], ts_ms: int) -> Record:
    """Make a record of ours; the body is checked exactly as a peer's would be, and only once.

    The signature is not verified again: we just made it. The body is read back from the bytes,
    so the Record is the one ``decode`` would give any peer (tests hold the two equal).
    """
    checked, track = _checked_body(kind, body)
    raw = envelope.seal(identity, _SIGNING_TAG, kind, checked, ts_ms)
    if len(raw) > MAX_RECORD_BYTES:
        raise RecordError(f"record of {len(raw)} bytes is over the cap of {MAX_RECORD_BYTES}")
    return Record(hashlib.sha256(raw).digest(), raw, kind, identity.peer_id, ts_ms, envelope.body_of(raw), track)


def decode(data: bytes, now_ms: int) -> Record:
    """Parse and verify untrusted bytes; RecordError with a one-line reason is the only failure."""
    kind, author, ts_ms, body = envelope.open_sealed(
        data, tag=_SIGNING_TAG, kinds=BODIES, max_bytes=MAX_RECORD_BYTES, now_ms=now_ms,
        max_future_ms=MAX_FUTURE_MS, error=RecordError, noun="a record",
    )  # fmt: skip
    body, track = _checked_body(kind, body)
    return Record(hashlib.sha256(data).digest(), data, kind, author, ts_ms, body, track)
