"""The research loop's record body, its hardware check, and what its proposer is shown."""

import dataclasses

import pytest

from node.home import Home
from node.research.agent import AgentContext
from node.research.llm_prompt import user_prompt
from node.research.loop import HardwareMismatch, Plan, ResearchLoop, check_measured_hardware
from node.research.runner import TrainerOutcome
from node.research.space import SearchSpace
from node.settings import WorkWeights
from node.store.ledger import Ledger
from protocol.config import apply, config_hash, default_config
from protocol.identity import Identity
from protocol.policy import Policy
from protocol.records import METRICS, sign
from protocol.track import Track
from tests.trainer.test_result import distinct_result

ALICE = Identity.from_seed(b"\x05" * 32)
TRACK = Track("cpu-test-x2", "seconds", 300, "shakespeare", "bpe4096", 1)
SMALL = default_config("small")
ROOT = config_hash(SMALL)
CHILD_DIFF = {"matrix_lr": 0.05}
HOLDOUT_MARK = 1.777777  # a test_bpb no other number in these records comes near


def signed_result(plan: Plan, result, ts_ms: int):
    outcome = TrainerOutcome(result.outcome, result, result.error, "0" * 64, 1.0)
    return sign(ALICE, "result", plan.body(TRACK, outcome), ts_ms)


def test_a_signed_record_carries_every_score_and_metric_of_the_trainer_result():
    result = distinct_result(hardware=TRACK.hardware)
    record = signed_result(Plan("baseline", {**SMALL, "seed": 3}, ROOT, {}, "baseline", "builtin"), result, 1)
    assert record.body["metrics"] == {name: getattr(result, name) for name in METRICS}
    assert None not in record.body["metrics"].values()
    assert (record.body["val_bpb"], record.body["test_bpb"]) == (result.val_bpb_ubpb, result.test_bpb_ubpb)
    assert record.body["code"] == result.code


def test_a_run_without_a_result_file_signs_nil_metrics():
    plan = Plan("baseline", {**SMALL, "seed": 3}, ROOT, {}, "baseline", "builtin")
    body = plan.body(TRACK, TrainerOutcome("timeout", None, "killed after 900 s", "0" * 64, 900.0))
    assert sign(ALICE, "result", body, 1).body["metrics"] == dict.fromkeys(METRICS)


@pytest.mark.parametrize(
    ("hardware", "reason"),
    [
        ("nvidia-h100-80gb-hbm3-x1", "ran on nvidia-h100-80gb-hbm3-x1, but this node's track is cpu-test-x2"),
        (None, "could not open"),
    ],
)
def test_a_result_measured_on_other_hardware_is_refused_in_one_line(hardware, reason):
    result = distinct_result(hardware=hardware, outcome="crash", val_bpb=None, test_bpb=None, error="no GPU")
    with pytest.raises(HardwareMismatch, match=reason) as caught:
        check_measured_hardware(TRACK, TrainerOutcome("crash", result, "", "0" * 64, 1.0))
    assert "\n" not in str(caught.value)


def test_a_result_measured_on_the_track_hardware_or_unmeasured_is_signed():
    check_measured_hardware(TRACK, TrainerOutcome("ok", distinct_result(hardware=TRACK.hardware), "", "0" * 64, 1.0))
    check_measured_hardware(TRACK, TrainerOutcome("timeout", None, "killed", "0" * 64, 900.0))


def ledger_with_holdout(tmp_path, holdout: float) -> Ledger:
    """Four default runs and two of a child, every ok run scoring ``holdout`` on the holdout split."""
    ledger = Ledger.open(tmp_path / f"ledger-{holdout}.db", Policy(min_authors=1))
    child = apply(SMALL, CHILD_DIFF)
    plans = [Plan("baseline", {**SMALL, "seed": s}, ROOT, {}, "baseline", "builtin") for s in range(4)]
    plans += [Plan("explore", {**child, "seed": s}, ROOT, CHILD_DIFF, "a higher LR", "builtin") for s in range(2)]
    for i, plan in enumerate(plans):
        result = distinct_result(hardware=TRACK.hardware, val_bpb=1.5 - i / 1000, test_bpb=holdout)
        ledger.add(signed_result(plan, result, 1000 + i).raw, now_ms=10_000)
    return ledger


def test_the_holdout_never_reaches_the_acceptance_rule(tmp_path):
    views = [ledger_with_holdout(tmp_path, holdout).view(TRACK.key) for holdout in (HOLDOUT_MARK, 3.5)]
    # the records differ, so their IDs do: everything the rule decides must not
    decided = [
        (view.sigma, view.best.config, [dataclasses.replace(s, discovery=None) for s in view.leaderboard])
        for view in views
    ]
    assert decided[0] == decided[1] and views[0].best.config == ROOT


def test_the_holdout_never_reaches_what_the_proposer_receives(tmp_path):
    ledger = ledger_with_holdout(tmp_path, HOLDOUT_MARK)
    home = Home(tmp_path, tmp_path, tmp_path / "cache")
    loop = ResearchLoop(
        name="cpu", identity=ALICE, reader=None, swarm=None, policy=ledger.policy, track=TRACK, device="cpu",
        home=home, proposer=None, weights=WorkWeights(),
    )  # fmt: skip
    view = ledger.view(TRACK.key)
    ctx = loop._context(ledger, view, view.best, set())  # exploring from the best, as the work chooser would
    assert isinstance(ctx, AgentContext) and ctx.recent, "the child's runs are in the context"
    received = f"{ctx!r}\n{[dataclasses.asdict(r) for r in ctx.recent]}\n{user_prompt(ctx)}"
    assert "1.7777" not in received and "1777777" not in received and "test_bpb" not in received
    assert "1.49" in received  # the val scores are there: the check above would notice a leak


def test_the_search_space_of_the_settings_reaches_what_the_proposer_receives(tmp_path):
    ledger = ledger_with_holdout(tmp_path, HOLDOUT_MARK)
    space = SearchSpace.parse({"depth": [2, 8]})
    loop = ResearchLoop(
        name="cpu", identity=ALICE, reader=None, swarm=None, policy=ledger.policy, track=TRACK, device="cpu",
        home=Home(tmp_path, tmp_path, tmp_path / "cache"), proposer=None, weights=WorkWeights(), space=space,
    )  # fmt: skip
    view = ledger.view(TRACK.key)
    assert loop._context(ledger, view, view.best, set()).space == space
