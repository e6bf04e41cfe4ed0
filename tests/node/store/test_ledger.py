"""The ledger holds a grow-only set of verified records and derives every view from it alone."""

import hashlib
import sqlite3
from pathlib import Path

import pytest

from node.store.ledger import Ledger, LedgerError
from protocol.acceptance import assess
from protocol.config import Config, apply, config_hash, default_config
from protocol.errors import ConfigError, RecordError
from protocol.identity import Identity
from protocol.policy import Policy
from protocol.records import Record, sign
from protocol.track import Track
from tests.protocol.test_records import envelope, signed_by_hand

POLICY = Policy(min_runs=2, min_authors=1)  # small numbers keep the scenarios short
TRACK = Track("cpu-x1", POLICY.budget_kind, POLICY.budget, POLICY.dataset, "bpe8192", POLICY.eval_version)
DEFAULT = default_config("gpu")
ROOT = config_hash(DEFAULT)
T0 = 1_700_000_000_000
METRICS = dict.fromkeys(
    ("steps", "tokens", "train_ms", "total_ms", "tokens_per_s", "mfu_ppm", "peak_mem_mb", "params"), 1
)


def person(n: int) -> Identity:
    return Identity.from_seed(bytes([n + 1]) * 32)


def result(
    identity: Identity,
    ts_ms: int,
    diff: dict | None = None,
    *,
    base: Config = DEFAULT,
    bpb: float | None = 1.0,
    seed: int = 0,
    replicates: bytes | None = None,
    track: Track = TRACK,
    failure: str = "crash",
    test_bpb: float | None = None,
) -> Record:
    """A signed result of running ``base`` plus ``diff``; ``bpb=None`` records a ``failure``."""
    diff = diff or {}
    body = {
        "track": track.to_wire(),
        "parent": config_hash(base),
        "diff": diff,
        "config": config_hash(apply(base, diff)),
        "seed": seed,
        "outcome": "ok" if bpb is not None else failure,
        "val_bpb": round(bpb * 1_000_000) if bpb is not None else None,
        "metrics": METRICS,
        "hypothesis": "test",
        "proposer": "builtin",
        "code": "0" * 64,
        "log": "1" * 64,
        "error": "" if bpb is not None else "boom",
        "replicates": replicates,
        "test_bpb": round(test_bpb * 1_000_000) if test_bpb is not None else None,
    }
    return sign(identity, "result", body, ts_ms)


def hypothesis(identity: Identity, ts_ms: int, diff: dict, base: Config = DEFAULT) -> Record:
    body = {"track": TRACK.to_wire(), "parent": config_hash(base), "diff": diff, "rationale": "why not"}
    return sign(identity, "hypothesis", body, ts_ms)


@pytest.fixture
def ledger(tmp_path: Path):
    opened = Ledger.open(tmp_path / "ledger.sqlite", POLICY)
    yield opened
    opened.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_add_stores_a_record_once_and_it_survives_reopening(tmp_path):
    path = tmp_path / "ledger.sqlite"
    record = result(person(0), T0)
    ledger = Ledger.open(path, POLICY)
    assert ledger.add(record.raw) == record
    assert ledger.add(record.raw) is None
    ledger.close()
    ledger = Ledger.open(path, POLICY)
    assert len(ledger) == 1 and ledger.has(record.id) and ledger.get_many([record.id]) == [record.raw]
    assert ledger.get_many([bytes(32)]) == [] and not ledger.has(bytes(32))
    assert ledger.get_many([bytes(32), record.id] * 400) == [record.raw] * 2  # one per batch of 500 asked
    assert list(ledger.records()) == [record]
    ledger.close()


def test_add_refuses_forged_and_foreign_records_and_keeps_the_set(ledger):
    good = result(person(0), T0)
    ledger.add(good.raw)
    forged = bytearray(result(person(1), T0 + 1).raw)
    forged[-1] ^= 1  # the last byte belongs to the signature
    elsewhere = result(person(1), T0 + 2, track=Track("cpu-x1", "seconds", 60, "shakespeare", "bpe8192", 1))
    with pytest.raises(RecordError, match="signature"):
        ledger.add(bytes(forged))
    with pytest.raises(RecordError, match="not this swarm's"):
        ledger.add(elsewhere.raw)
    with pytest.raises(RecordError, match="future"):
        ledger.add(result(person(1), T0 + 3_600_000).raw, now_ms=T0)
    assert len(ledger) == 1 and [r.id for r in ledger.records()] == [good.id]


def test_add_many_counts_added_duplicates_and_rejections(ledger):
    first, second = result(person(0), T0), result(person(1), T0 + 5)
    ledger.add(first.raw)
    report = ledger.add_many([first.raw, second.raw, second.raw, b"\x93junk", bytes(10)])
    assert [r.id for r in report.added] == [second.id]
    assert report.duplicates == 2
    assert len(report.rejected) == 2 and all(isinstance(reason, str) for reason in report.rejected)
    assert len(ledger) == 2


def test_records_and_keys_come_in_timestamp_then_id_order(ledger):
    made = [result(person(n % 3), T0 + (n % 4), seed=n) for n in range(12)]
    ledger.add_many(record.raw for record in reversed(made))
    ordered = sorted(made, key=lambda r: (r.ts_ms, r.id))
    assert [r.id for r in ledger.records()] == [r.id for r in ordered]
    assert ledger.keys() == [(r.ts_ms, r.id) for r in ordered]
    assert [r.id for r in ledger.records("hypothesis")] == []


def scenario() -> list[Record]:
    """A small history: a verified default, an accepted improvement, a candidate, a flop, a crash."""
    alice, bob, carol = person(0), person(1), person(2)
    deeper = apply(DEFAULT, {"depth": 12})
    return [
        result(alice, T0, bpb=1.000),
        result(bob, T0 + 1, bpb=1.002, seed=1),
        result(alice, T0 + 2, {"depth": 12}, bpb=0.950),  # discovery of depth 12
        result(bob, T0 + 3, {"depth": 12}, bpb=0.951, seed=1),
        result(carol, T0 + 4, {"depth": 12}, bpb=0.949, seed=2),
        result(carol, T0 + 5, {"matrix_lr": 0.05}, base=deeper, bpb=0.900),  # a candidate
        result(bob, T0 + 6, {"weight_decay": 0.5}, base=deeper, bpb=0.990),  # worse than its parent
        result(alice, T0 + 7, {"head_dim": 64}, base=deeper, bpb=None),  # crashed
        hypothesis(bob, T0 + 8, {"adam_beta1": 0.85}, base=deeper),
        hypothesis(bob, T0 + 9, {"matrix_lr": 0.05}, base=deeper),  # already tried by carol
    ]


def test_views_equal_the_acceptance_rule_over_the_decoded_set(ledger):
    records = scenario()
    ledger.add_many(r.raw for r in records)
    assert ledger.assess() == assess(records, POLICY)
    view = ledger.assess()[TRACK.key]
    assert ledger.leaderboard(TRACK.key) == view.leaderboard
    assert ledger.leaderboard("no/such/track") == ()
    deeper = config_hash(apply(DEFAULT, {"depth": 12}))
    assert ledger.best()[TRACK.key].config == deeper
    assert [s.diff for s in ledger.candidates()[TRACK.key]] == [{"matrix_lr": 0.05}]


def test_pending_work_names_candidates_we_did_not_run_and_untried_hypotheses(ledger):
    records = scenario()
    ledger.add_many(r.raw for r in records)
    work = ledger.pending_work(person(0).peer_id)
    assert [stats.diff for _, stats in work.replicate] == [{"matrix_lr": 0.05}]
    assert [h.body["diff"] for h in work.hypotheses] == [{"adam_beta1": 0.85}]
    assert ledger.pending_work(person(2).peer_id).replicate == ()  # carol discovered it herself


def test_views_follow_the_set_as_it_grows(ledger):
    records = scenario()
    ledger.add_many(r.raw for r in records[:2])
    assert ledger.best()[TRACK.key].config == ROOT
    ledger.add_many(r.raw for r in records[2:])
    assert ledger.assess() == assess(records, POLICY)


def test_resolve_config_rebuilds_a_chain_and_skips_a_lying_link(ledger):
    deeper = apply(DEFAULT, {"depth": 12})
    tuned = apply(deeper, {"matrix_lr": 0.05})
    honest = result(person(0), T0 + 10, {"matrix_lr": 0.05}, base=deeper)
    liar = dict(honest.body, diff={"matrix_lr": 0.07}, seed=9)  # claims tuned's hash with another diff
    ledger.add_many([result(person(0), T0, {"depth": 12}).raw, sign(person(1), "result", liar, T0 + 1).raw, honest.raw])
    assert ledger.resolve_config(config_hash(tuned)) == tuned
    assert ledger.resolve_config(ROOT) == DEFAULT
    with pytest.raises(ConfigError, match="does not lead back"):
        ledger.resolve_config("ab" * 32)


def test_opening_a_foreign_file_names_it_and_leaves_it_untouched(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 20)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (1)")
    empty = tmp_path / "empty"
    empty.touch()
    for path, reason in ((text, "not an SQLite database"), (other, "another program"), (empty, "not an SQLite")):
        before = digest(path)
        with pytest.raises(LedgerError, match=reason) as caught:
            Ledger.open(path, POLICY)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)
        assert digest(path) == before


def test_opening_a_corrupt_ledger_names_it_and_leaves_it_untouched(tmp_path):
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger.open(path, POLICY)
    ledger.add_many(result(person(n % 3), T0 + n, seed=n).raw for n in range(40))
    ledger.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[2 * page : 3 * page] = bytes(range(256)) * 16  # scribble over a b-tree page
    path.write_bytes(bytes(data))
    before = digest(path)
    with pytest.raises(LedgerError, match="corrupt") as caught:
        Ledger.open(path, POLICY)
    assert str(path) in str(caught.value)
    assert digest(path) == before


def test_a_record_of_the_first_release_keeps_its_id_and_config_hash_in_a_ledger(tmp_path):
    raw = bytes.fromhex((Path(__file__).parents[2] / "protocol" / "data" / "result_v1.hex").read_text().strip())
    ledger = Ledger.open(tmp_path / "ledger.db", Policy(min_authors=1))
    record = ledger.add(raw, now_ms=T0)
    assert record.hex_id == hashlib.sha256(raw).hexdigest()
    assert config_hash(ledger.resolve_config(record.body["config"])) == record.body["config"]


def test_a_record_from_a_newer_arnode_is_refused_in_one_line_and_the_ledger_carries_on(tmp_path):
    ledger = Ledger.open(tmp_path / "ledger.db", POLICY)
    newer = result(person(0), T0, {"matrix_lr": 0.05}).body | {"diff": {"matrix_lr": 0.05, "knob_of_the_future": 1}}
    raw = signed_by_hand(person(0), envelope(newer, author=person(0).peer_id, ts_ms=T0))
    report = ledger.add_many([raw, result(person(1), T0).raw], now_ms=T0)
    assert len(report.added) == 1 and len(report.rejected) == 1
    assert "from a newer arnode" in report.rejected[0] and "\n" not in report.rejected[0]


def test_a_hypothesis_that_was_run_is_shown_as_answered(ledger):
    records = scenario()
    ledger.add_many(r.raw for r in records)
    statuses = {tuple(s.record.body["diff"].items()): s for s in ledger.hypotheses(TRACK.key)}
    deeper = apply(DEFAULT, {"depth": 12})
    assert not statuses[(("adam_beta1", 0.85),)].answered
    answered = statuses[(("matrix_lr", 0.05),)]
    assert answered.answered and answered.answers == (config_hash(apply(deeper, {"matrix_lr": 0.05})),)
    ledger.add(result(person(0), T0 + 20, {"adam_beta1": 0.85}, base=deeper, bpb=0.96).raw)
    assert all(s.answered for s in ledger.hypotheses())
    assert ledger.hypotheses("no/such/track") == ()
