"""A sync responder fed garbage, lies and endless input ends that session, says why, and keeps only valid records."""

import os
import tempfile
from pathlib import Path

import msgpack
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.net.sync import FINGERPRINT, IDS, MAX_MESSAGE_BYTES, MAX_ROUNDS, SyncReport, reconcile
from node.store.ledger import Ledger
from protocol.fingerprint import MAX_TS
from tests.node.net.test_sync import ids, signed
from tests.node.store.test_ledger import POLICY, T0, person, result

HELD = signed(80)  # what the responder holds before every session
NEWCOMER = result(person(7), T0 + 500, seed=1)  # a valid record the peer may give us
FULL = [0, b"", MAX_TS, b""]  # bounds of the whole key space


def pack(*messages) -> bytes:
    return b"".join(msgpack.packb(message, use_bin_type=True) for message in messages)


def hello() -> bytes:
    return pack(["hello", 1])


@pytest.fixture
def ledger(tmp_path: Path):
    opened = Ledger.open(tmp_path / "ledger.sqlite", POLICY)
    opened.add_many(r.raw for r in HELD)
    yield opened
    opened.close()


async def respond_to(ledger: Ledger, script: bytes, deadline_s: float = 5.0) -> SyncReport:
    """The responder's report when the peer sends ``script`` and then closes its side."""
    ours, theirs = trio.testing.memory_stream_pair()  # buffers without limit: the script never blocks
    await ours.send_all(script)
    await ours.send_eof()
    return await reconcile(theirs, ledger.gate(), initiator=False, deadline_s=deadline_s)


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        (b"", "closed the stream"),
        (b"\xc1" * 10, "not msgpack"),
        (pack({"hello": 1}), "array that starts with its name"),
        (pack(["ranges", [], [], True]), "expected hello"),
        (pack(["hello", 2]), "version 2"),
        (hello() + pack(["ranges", [[*FULL, FINGERPRINT, b"short"]], [], True]), "fingerprint is 16 bytes"),
        (hello() + pack(["ranges", [[MAX_TS, b"", 0, b"", FINGERPRINT, bytes(16)]], [], True]), "ends before"),
        (hello() + pack(["ranges", [[*FULL, IDS, [bytes(32)] * 33]], [], True]), "at most 32"),
        (hello() + pack(["ranges", [[*FULL, 7, b""]], [], True]), "unknown range mode"),
        (hello() + pack(["ranges", [[-1, b"", 5, b"", IDS, []]], [], True]), "timestamp"),
        (hello() + pack(["ranges", [[0, b"x" * 40, 5, b"", IDS, []]], [], True]), "prefix"),
        (hello() + pack(["ranges", [[*FULL, IDS, []], [*FULL, IDS, []]], [], True]), "overlap"),
        (hello() + pack(["ranges", [], [b"tiny"], True]), "not 32 bytes"),
        (hello() + pack(["ranges", [], [os.urandom(32) for _ in range(200)], True]), "more records than we hold"),
        (hello() + pack(["ranges", [], [], False]), "empty message in the middle"),
        (hello() + pack(["ranges", [], [], True], ["records", [b"x" * 70_000]]), "under the size cap"),
        (hello() + pack(["ranges", [], [], True], ["records", "nope"]), "expected records or done"),
        (
            hello() + b"\xc6" + (MAX_MESSAGE_BYTES + 1).to_bytes(4, "big") + bytes(MAX_MESSAGE_BYTES + 1),
            "over 1048576 bytes",
        ),
        (hello() + pack(["error", "bored"]), "peer gave up: 'bored'"),
        (hello() + pack(["ranges", [], [], True])[:-3], "ended inside a message"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_messages_end_the_session_with_a_reason(ledger, script, reason):
    report = trio.run(respond_to, ledger, script)
    assert not report.ok and reason in report.reason
    assert ids(ledger) == {r.id for r in HELD}


def test_invalid_records_end_the_session_but_valid_ones_are_kept(ledger):
    forged = bytearray(result(person(8), T0 + 600).raw)
    forged[-1] ^= 1
    script = hello() + pack(["ranges", [[*FULL, IDS, []]], [], True], ["records", [NEWCOMER.raw, bytes(forged)]])
    report = trio.run(respond_to, ledger, script)
    assert not report.ok and "1 invalid records: bad signature" in report.reason and report.rejected == 1
    assert ids(ledger) == {r.id for r in HELD} | {NEWCOMER.id}


def test_a_peer_that_lists_records_and_never_sends_them_is_caught(ledger):
    script = hello() + pack(["ranges", [[*FULL, IDS, [os.urandom(32), os.urandom(32)]]], [], True], ["done"])
    report = trio.run(respond_to, ledger, script)
    assert not report.ok and "listed 2 records it did not send" in report.reason


def test_a_round_that_never_ends_is_cut_off(ledger):
    endless = pack(*(["ranges", [[t, b"", t + 1, b"", IDS, []]], [], False] for t in range(70_000)))
    report = trio.run(respond_to, ledger, hello() + endless)
    assert not report.ok and "more than 65536 ranges" in report.reason


def test_a_silent_peer_meets_the_deadline(ledger):
    async def silent() -> SyncReport:
        _, theirs = trio.testing.memory_stream_pair()
        return await reconcile(theirs, ledger.gate(), initiator=False, deadline_s=0.2)

    report = trio.run(silent)
    assert not report.ok and "deadline" in report.reason


def test_a_peer_with_lying_fingerprints_is_dropped_after_max_rounds(ledger):
    # every round the liar claims the whole key space differs again, forever
    async def liar(stream) -> None:
        unpacker = msgpack.Unpacker(raw=False)
        await stream.send_all(hello())
        while True:
            await stream.send_all(pack(["ranges", [[*FULL, FINGERPRINT, os.urandom(16)]], [], True]))
            while not any(
                message[0] in ("ranges", "error") and message[-1] is not False for message in _drain(unpacker)
            ):
                data = await stream.receive_some()
                if not data:
                    return
                unpacker.feed(data)

    async def main() -> SyncReport:
        ours, theirs = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(liar, ours)
            report = await reconcile(theirs, ledger.gate(), initiator=False, deadline_s=10)
            nursery.cancel_scope.cancel()
        return report

    report = trio.run(main)
    assert not report.ok and f"no agreement after {MAX_ROUNDS} rounds" in report.reason
    assert ids(ledger) == {r.id for r in HELD}


def _drain(unpacker: msgpack.Unpacker) -> list:
    return list(unpacker)


def _anything() -> st.SearchStrategy:
    leaves = (
        st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=40) | st.text(max_size=12)
    )
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=6), max_leaves=20)


def _message() -> st.SearchStrategy:
    bound = st.tuples(st.integers(0, 2**64 - 1), st.binary(max_size=33))
    entry = st.tuples(
        bound,
        bound,
        st.sampled_from([FINGERPRINT, IDS, 2]),
        st.binary(max_size=17) | st.lists(st.binary(min_size=32, max_size=32), max_size=3),
    )
    return st.one_of(
        st.just(["hello", 1]),
        st.builds(
            lambda es, wants, last: ["ranges", [[*a, *b, m, p] for a, b, m, p in es], wants, last],
            st.lists(entry, max_size=4),
            st.lists(st.binary(min_size=31, max_size=33), max_size=3),
            st.booleans(),
        ),
        st.builds(
            lambda raws: ["records", raws], st.lists(st.sampled_from([NEWCOMER.raw, b"", b"\x92\xc4"]), max_size=3)
        ),
        st.just(["done"]),
        st.lists(_anything(), min_size=1, max_size=4),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(_message(), max_size=8), tail=st.binary(max_size=64))
def test_fuzzed_message_sequences_never_crash_the_responder(messages, tail):
    with tempfile.TemporaryDirectory() as directory:
        ledger = Ledger.open(Path(directory) / "ledger.sqlite", POLICY)
        ledger.add_many(r.raw for r in HELD[:20])
        report = trio.run(respond_to, ledger, pack(*messages) + tail, 2.0)
        assert isinstance(report, SyncReport) and report.reason
        assert ids(ledger) <= {r.id for r in HELD[:20]} | {NEWCOMER.id}
        ledger.close()


def test_a_message_cut_by_the_end_of_the_stream_is_a_fault_and_a_plain_goodbye_is_not(ledger):
    cut = trio.run(respond_to, ledger, hello() + pack(["ranges", [], [], True])[:-3])
    goodbye = trio.run(respond_to, ledger, hello())
    assert cut.peer_fault and not goodbye.peer_fault  # the caller resets the first stream and closes the second
