"""Holdout scores come from a stored column, filled at insert; a ledger from before the column gains it once."""

import sqlite3

from node import report
from node.store.ledger import Ledger
from tests.node.store.test_ledger import POLICY, T0, person, result

RUNS = [
    result(person(0), T0, bpb=1.0, test_bpb=1.1),
    result(person(1), T0 + 1, bpb=1.2, test_bpb=1.4),
    result(person(2), T0 + 2, bpb=1.1),  # from before the holdout: no test_bpb
    result(person(0), T0 + 3, {"depth": 12}, bpb=0.9, test_bpb=1.0),
    result(person(1), T0 + 4, {"depth": 12}, bpb=None),  # a crash measures nothing
]
CONFIGS = sorted({record.body["config"] for record in RUNS})


def decoded_pairs(ledger: Ledger) -> dict[str, list[tuple[int, int]]]:
    """What holdout scores were before the column: every ok result decoded again."""
    pairs: dict[str, list[tuple[int, int]]] = {}
    for record in ledger.records("result"):
        if record.body["outcome"] == "ok" and record.body["test_bpb"] is not None:
            pairs.setdefault(record.body["config"], []).append((record.body["val_bpb"], record.body["test_bpb"]))
    return pairs


def test_holdout_scores_are_read_from_the_stored_column(tmp_path):
    with Ledger.open(tmp_path / "ledger.sqlite", POLICY) as ledger:
        ledger.add_many(record.raw for record in RUNS)
        track = RUNS[0].track.key
        assert ledger.holdout_pairs(track, CONFIGS) == decoded_pairs(ledger)
        scores = report.holdout_scores(ledger, track, CONFIGS)
    root = RUNS[0].body["config"]
    assert scores[root] == (1.1, 1.25)  # over the two runs that measured the holdout


def test_a_ledger_from_before_the_column_is_migrated_once_and_read_only_readers_carry_on(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger.open(path, POLICY) as ledger:
        ledger.add_many(record.raw for record in RUNS)
        expected = decoded_pairs(ledger)
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE records DROP COLUMN test_bpb")  # as the previous release made it
    db.commit()
    db.close()
    track = RUNS[0].track.key
    with Ledger.open(path, POLICY, read_only=True) as reader:  # cannot migrate: shows no holdout, nothing fails
        assert reader.holdout_pairs(track, CONFIGS) == {} and len(reader) == len(RUNS)
    with Ledger.open(path, POLICY) as ledger:
        assert ledger.holdout_pairs(track, CONFIGS) == expected
        ledger.add(result(person(3), T0 + 5, bpb=1.0, test_bpb=1.2).raw)
    with Ledger.open(path, POLICY, read_only=True) as reader:
        assert reader.holdout_pairs(track, CONFIGS)[RUNS[0].body["config"]][-1] == (1_000_000, 1_200_000)
