import hashlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import canonical, records
from protocol.config import KNOB, apply, config_hash, default_config
from protocol.envelope import VERSION
from protocol.errors import RecordError
from protocol.identity import Identity
from protocol.records import MAX_FUTURE_MS, MAX_RECORD_BYTES, METRICS, Record, decode, sign
from protocol.track import Track
from tests.protocol.test_canonical import values

NOW = 1_700_000_000_000
ALICE = Identity.from_seed(b"\x01" * 32)
BOB = Identity.from_seed(b"\x02" * 32)
TRACK = Track("cpu-x1", "seconds", 300, "shakespeare", "bpe4096", 1)
ROOT = config_hash(default_config("small"))
DIFF = {"matrix_lr": 0.05}
CONFIG = config_hash(apply(default_config("small"), DIFF))


def result_body(**changes: Any) -> dict[str, Any]:
    """A valid result body; keyword arguments replace fields."""
    body = {
        "track": TRACK.to_wire(),
        "parent": ROOT,
        "diff": DIFF,
        "config": CONFIG,
        "seed": 1,
        "outcome": "ok",
        "val_bpb": 1_234_567,
        "metrics": dict.fromkeys(METRICS, 1),
        "hypothesis": "a higher matrix learning rate\nconverges faster",
        "proposer": "builtin",
        "code": "c" * 64,
        "log": "d" * 64,
        "error": "",
        "replicates": None,
    }
    body = {**body, **changes}
    return {"test_bpb": 1_250_000 if body["outcome"] == "ok" else None, **body}


def hypothesis_body(**changes: Any) -> dict[str, Any]:
    body = {"track": TRACK.to_wire(), "parent": ROOT, "diff": DIFF, "rationale": "deeper is better"}
    return {**body, **changes}


def envelope(body: Any, **changes: Any) -> dict[str, Any]:
    fields = {"v": VERSION, "kind": "result", "author": ALICE.peer_id, "ts_ms": NOW, "body": body}
    return {**fields, **changes}


def signed_by_hand(signer: Identity, value: Any) -> bytes:
    """Wire bytes of any envelope, signed by ``signer`` without the checks ``sign`` makes."""
    payload = canonical.pack(value)
    return canonical.pack([payload, signer.sign(records._SIGNING_TAG + payload)])


VALID = sign(ALICE, "result", result_body(), NOW).raw


def assert_rejected(data: Any, reason: str = "") -> None:
    with pytest.raises(RecordError) as caught:
        decode(data, NOW)
    message = str(caught.value)
    assert message and "\n" not in message and "\r" not in message
    assert reason in message


# --- round trips ---


def test_a_signed_result_decodes_to_the_same_record():
    record = sign(ALICE, "result", result_body(), NOW)
    decoded = decode(record.raw, NOW)
    assert decoded == record
    assert (decoded.kind, decoded.author, decoded.ts_ms, decoded.track) == ("result", ALICE.peer_id, NOW, TRACK)
    assert decoded.body == result_body()
    assert decoded.id == hashlib.sha256(decoded.raw).digest()
    assert decoded.hex_id == decoded.id.hex()


def test_a_hypothesis_round_trips():
    record = sign(BOB, "hypothesis", hypothesis_body(), NOW)
    assert decode(record.raw, NOW) == record
    assert record.kind == "hypothesis" and record.body == hypothesis_body()


def test_the_same_logical_record_has_the_same_bytes():
    body = result_body()
    reversed_body = dict(reversed(list(body.items())))
    assert sign(ALICE, "result", reversed_body, NOW).raw == sign(ALICE, "result", body, NOW).raw


def test_a_replication_names_the_record_it_reruns():
    original = sign(ALICE, "result", result_body(), NOW)
    rerun = sign(BOB, "result", result_body(seed=2, replicates=original.id), NOW + 1)
    assert decode(rerun.raw, NOW).body["replicates"] == original.id


def test_failed_runs_carry_no_val_bpb():
    record = sign(ALICE, "result", result_body(outcome="crash", val_bpb=None, error="CUDA out of memory"), NOW)
    assert record.body["val_bpb"] is None


def test_val_bpb_is_integer_micro_bpb():
    assert decode(VALID, NOW).body["val_bpb"] == 1_234_567
    with pytest.raises(RecordError, match="val_bpb"):
        sign(ALICE, "result", result_body(val_bpb=1.234567), NOW)


def test_a_timestamp_exactly_at_the_skew_limit_is_accepted():
    record = sign(ALICE, "result", result_body(), NOW + MAX_FUTURE_MS)
    assert decode(record.raw, NOW).ts_ms == NOW + MAX_FUTURE_MS


# --- rejection ---


@pytest.mark.parametrize("flip", [0x01, 0x80])
def test_tampering_any_byte_of_a_signed_record_is_rejected(flip):
    for index in range(len(VALID)):
        tampered = bytearray(VALID)
        tampered[index] ^= flip
        assert_rejected(bytes(tampered))


def test_a_record_signed_by_a_but_claiming_author_b_is_rejected():
    forged = signed_by_hand(ALICE, envelope(result_body(), author=BOB.peer_id))
    assert_rejected(forged, "bad signature")
    assert decode(signed_by_hand(BOB, envelope(result_body(), author=BOB.peer_id)), NOW).author == BOB.peer_id


def payload_of_valid() -> bytes:
    return canonical.unpack(VALID, MAX_RECORD_BYTES)[0]


REJECTIONS = {
    "size over cap": (signed_by_hand(ALICE, envelope(result_body(hypothesis="x" * MAX_RECORD_BYTES))), "over the cap"),
    "not msgpack": (b"\xc1\x00", "not msgpack"),
    "not bytes": ("a string", "a record is bytes"),
    "not canonical": (b"\x92" + VALID[1:] + b"\x00", ""),
    "not a pair": (canonical.pack([payload_of_valid()]), "[payload, signature]"),
    "signature not bytes": (canonical.pack([payload_of_valid(), "sig"]), "[payload, signature]"),
    "payload not msgpack": (canonical.pack([b"\xc1", b"\x00" * 64]), "not msgpack"),
    "envelope not a map": (signed_by_hand(ALICE, [1, 2]), "an envelope has exactly"),
    "envelope field missing": (signed_by_hand(ALICE, {"v": 1, "kind": "result"}), "an envelope has exactly"),
    "envelope field extra": (signed_by_hand(ALICE, envelope(result_body(), extra=1)), "an envelope has exactly"),
    "version unknown": (signed_by_hand(ALICE, envelope(result_body(), v=2)), "version 2 is unknown"),
    "version as text": (signed_by_hand(ALICE, envelope(result_body(), v="1\nforged")), "is unknown"),
    "version as bool": (signed_by_hand(ALICE, envelope(result_body(), v=True)), "is unknown"),
    "unknown kind": (signed_by_hand(ALICE, envelope(result_body(), kind="claim")), "unknown kind 'claim'"),
    "kind not text": (signed_by_hand(ALICE, envelope(result_body(), kind=["result"])), "unknown kind"),
    "author not a peer id": (signed_by_hand(ALICE, envelope(result_body(), author="alice")), "peer ID"),
    "negative timestamp": (signed_by_hand(ALICE, envelope(result_body(), ts_ms=-1)), "non-negative"),
    "float timestamp": (signed_by_hand(ALICE, envelope(result_body(), ts_ms=float(NOW))), "non-negative"),
    "timestamp in the future": (
        signed_by_hand(ALICE, envelope(result_body(), ts_ms=NOW + MAX_FUTURE_MS + 1)),
        "in the future",
    ),
    "bad signature": (canonical.pack([payload_of_valid(), b"\x00" * 64]), "bad signature"),
    "short signature": (canonical.pack([payload_of_valid(), b"\x00" * 10]), "bad signature"),
    "author mismatch": (signed_by_hand(ALICE, envelope(result_body(), author=BOB.peer_id)), "bad signature"),
    "body not a map": (signed_by_hand(ALICE, envelope("body")), "body must be a map"),
    "unknown field": (signed_by_hand(ALICE, envelope({**result_body(), "extra": 1})), "unknown field 'extra'"),
    "missing field": (
        signed_by_hand(ALICE, envelope({k: v for k, v in result_body().items() if k != "seed"})),
        "lacks seed",
    ),
    "hypothesis kind lacking rationale": (
        signed_by_hand(ALICE, envelope({**hypothesis_body(), "rationale": None}, kind="hypothesis")),
        "rationale",
    ),
    "string too long": (signed_by_hand(ALICE, envelope(result_body(hypothesis="x" * 1001))), "over the limit"),
    "control characters": (signed_by_hand(ALICE, envelope(result_body(proposer="\x1b[31m"))), "control"),
    "bidi override": (signed_by_hand(ALICE, envelope(result_body(error="\u202eevil"))), "control"),
    "wrong type: text for int": (signed_by_hand(ALICE, envelope(result_body(seed="1"))), "seed"),
    "wrong type: float val_bpb": (signed_by_hand(ALICE, envelope(result_body(val_bpb=1.5))), "val_bpb"),
    "wrong type: bool val_bpb": (signed_by_hand(ALICE, envelope(result_body(val_bpb=True))), "val_bpb"),
    "val_bpb out of range": (signed_by_hand(ALICE, envelope(result_body(val_bpb=0))), "val_bpb"),
    "val_bpb on a crash": (signed_by_hand(ALICE, envelope(result_body(outcome="crash"))), "val_bpb is set exactly"),
    "no val_bpb on ok": (signed_by_hand(ALICE, envelope(result_body(val_bpb=None))), "val_bpb is set exactly"),
    "unknown outcome": (signed_by_hand(ALICE, envelope(result_body(outcome="great"))), "outcome"),
    "hash not hex": (signed_by_hand(ALICE, envelope(result_body(parent="X" * 64))), "parent"),
    "hash upper case": (signed_by_hand(ALICE, envelope(result_body(code="C" * 64))), "code"),
    "metrics missing one": (signed_by_hand(ALICE, envelope(result_body(metrics={"steps": 1}))), "metrics"),
    "metric negative": (
        signed_by_hand(ALICE, envelope(result_body(metrics={**dict.fromkeys(METRICS, 1), "steps": -1}))),
        "metric steps",
    ),
    "replicates not an id": (signed_by_hand(ALICE, envelope(result_body(replicates=b"\x00" * 31))), "replicates"),
    "diff unknown knob": (signed_by_hand(ALICE, envelope(result_body(diff={"lr": 1.0}))), "unknown knob"),
    "diff out of bounds": (signed_by_hand(ALICE, envelope(result_body(diff={"depth": 999}))), "outside"),
    "diff bool for int": (signed_by_hand(ALICE, envelope(result_body(diff={"depth": True}))), "expected int"),
    "diff names the seed": (signed_by_hand(ALICE, envelope(result_body(diff={"seed": 3}))), "per-run"),
    "track field missing": (signed_by_hand(ALICE, envelope(result_body(track={"hardware": "x"}))), "track"),
    "track budget kind unhashable": (
        signed_by_hand(ALICE, envelope(result_body(track={**TRACK.to_wire(), "budget_kind": []}))),
        "budget kind",
    ),
    "track slug with newline": (
        signed_by_hand(ALICE, envelope(result_body(track={**TRACK.to_wire(), "dataset": "a\nb"}))),
        "slug",
    ),
}


@pytest.mark.parametrize("name", REJECTIONS)
def test_each_reason_is_one_record_error_on_one_line(name):
    data, reason = REJECTIONS[name]
    assert_rejected(data, reason)


def test_sign_refuses_a_body_a_peer_would_refuse():
    with pytest.raises(RecordError, match="unknown field"):
        sign(ALICE, "result", {**result_body(), "extra": 1}, NOW)
    with pytest.raises(RecordError, match="unknown kind"):
        sign(ALICE, "claim", result_body(), NOW)
    with pytest.raises(RecordError, match="body must be a map"):
        sign(ALICE, "result", [("seed", 1)], NOW)


# --- fuzzing: only RecordError may ever escape decode ---

FUZZ = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode_or_reject(data: bytes) -> Record | None:
    try:
        record = decode(data, NOW)
    except RecordError as err:
        assert "\n" not in str(err)
        return None
    assert record.raw == data
    return record


@FUZZ
@given(st.binary(max_size=2 * len(VALID)))
def test_decode_of_arbitrary_bytes_raises_only_record_error(data):
    decode_or_reject(data)


mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "truncate"]), st.integers(0, 10_000), st.integers(0, 255)
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, steps: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for op, position, byte in steps:
        index = position % (len(out) + 1)
        if op == "flip" and index < len(out):
            out[index] ^= byte or 1
        elif op == "set" and index < len(out):
            out[index] = byte
        elif op == "insert":
            out.insert(index, byte)
        elif op == "delete" and index < len(out):
            del out[index]
        elif op == "truncate":
            del out[index:]
    return bytes(out)


@FUZZ
@given(mutations)
def test_decode_of_mutated_records_raises_only_record_error(steps):
    data = mutate(VALID, steps)
    record = decode_or_reject(data)
    assert record is None or data == VALID


NESTED_FIELDS = {"track": TRACK.to_wire(), "metrics": dict.fromkeys(METRICS, 1), "diff": DIFF}


@st.composite
def re_signed_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid body with one field, or one entry of a nested field, replaced, added or removed."""
    body = result_body()
    name = draw(st.sampled_from([*body, "extra"]))
    action = draw(st.sampled_from(["replace", "remove", "nested"]))
    if action == "remove":
        body.pop(name, None)
    elif action == "nested" and name in NESTED_FIELDS:
        inner = dict(NESTED_FIELDS[name])
        key = draw(st.sampled_from([*inner, *KNOB, "extra"]))
        inner[key] = draw(values)
        body[name] = inner
    else:
        body[name] = draw(values)
    return body


@FUZZ
@given(re_signed_bodies())
def test_decode_of_well_signed_but_malformed_bodies_raises_only_record_error(body):
    decode_or_reject(signed_by_hand(ALICE, envelope(body)))


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(["v", "kind", "author", "ts_ms", "body", "extra"]), values)
def test_decode_of_well_signed_but_malformed_envelopes_raises_only_record_error(name, value):
    decode_or_reject(signed_by_hand(ALICE, {**envelope(result_body()), name: value}))


V1_RECORD = (Path(__file__).parent / "data" / "result_v1.hex").read_text().strip()


def test_a_record_signed_before_the_holdout_existed_keeps_its_id_and_reads_as_no_holdout():
    # signed by the first release: no test_bpb field, and a diff of first-release knobs only
    raw = bytes.fromhex(V1_RECORD)
    record = decode(raw, NOW)
    assert record.hex_id == "76678abcd1032332d4311baffea293974db37448f07e47016daea7a9f3c7e1a0"
    assert record.body["test_bpb"] is None
    assert record.body["config"] == config_hash(apply(default_config("small"), record.body["diff"]))


def test_an_oom_run_is_its_own_outcome_without_scores():
    record = sign(ALICE, "result", result_body(outcome="oom", val_bpb=None, test_bpb=None), NOW)
    assert record.body["outcome"] == "oom"
    with pytest.raises(RecordError, match="test_bpb is nil unless"):
        sign(ALICE, "result", result_body(outcome="oom", val_bpb=None, test_bpb=1_250_000), NOW)


def test_a_diff_naming_a_knob_from_a_newer_arnode_is_refused_in_one_line():
    raw = signed_by_hand(ALICE, envelope(result_body(diff={"matrix_lr": 0.05, "mystery_knob": 3})))
    with pytest.raises(RecordError, match="unknown knob 'mystery_knob': from a newer arnode") as caught:
        decode(raw, NOW)
    assert "\n" not in str(caught.value)


def test_a_field_from_a_newer_arnode_is_refused_in_one_line():
    raw = signed_by_hand(ALICE, envelope(result_body(train_loss=3)))
    with pytest.raises(RecordError, match="unknown field 'train_loss' in a result: from a newer arnode"):
        decode(raw, NOW)
