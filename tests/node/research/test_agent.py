import random

import pytest

from node.errors import NodeError
from node.research.agent import DEFAULT_PROGRAM, AgentContext, clean_hypothesis, load_program
from node.research.builtin_proposer import BuiltinProposer
from protocol.config import config_hash, default_config
from protocol.identity import Identity
from protocol.records import METRICS, sign
from protocol.track import Track


def test_program_is_created_with_the_default_and_edits_are_kept(tmp_path):
    path = tmp_path / "home" / "program.md"
    assert load_program(path) == DEFAULT_PROGRAM
    path.write_text("Only try learning rates.\n", encoding="utf-8")
    assert load_program(path) == "Only try learning rates.\n"


def test_unreadable_program_is_a_one_line_error_naming_the_file(tmp_path):
    path = tmp_path / "program.md"
    path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(NodeError, match=r"program\.md") as caught:
        load_program(path)
    assert "\n" not in str(caught.value)


def test_a_proposal_with_a_hostile_hypothesis_signs_as_a_result_record():
    best = default_config("small")
    ctx = AgentContext("cpu-x1/300s/shakespeare/bpe8192/eval1", best, config_hash(best))
    proposal = BuiltinProposer().propose(ctx, random.Random(3))
    body = {
        "track": Track("cpu-x1", "seconds", 300, "shakespeare", "bpe8192", 1).to_wire(),
        "parent": ctx.best_hash,
        "diff": proposal.diff,
        "config": proposal.config_hash,
        "seed": 0,
        "outcome": "crash",
        "val_bpb": None,
        "metrics": dict.fromkeys(METRICS),
        "hypothesis": clean_hypothesis("line one\nline\x00two\u2066 " + "z" * 5000),
        "proposer": proposal.proposer,
        "code": "0" * 64,
        "log": "0" * 64,
        "error": "",
        "replicates": None,
    }
    record = sign(Identity.generate(), "result", body, ts_ms=1)
    assert record.body["hypothesis"].startswith("line one line two ")
    assert len(record.body["hypothesis"]) == 1000
