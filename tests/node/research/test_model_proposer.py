import dataclasses
import random

from node.research.agent import AgentContext, Observation, OpenHypothesis
from node.research.builtin_proposer import BuiltinProposer, single_changes
from node.research.model_proposer import MIN_RESULTS, ModelProposer
from node.research.space import SearchSpace
from protocol.config import apply, check_config, config_hash, default_config, diff_between
from tests.node.research.test_space import BENCHMARK

BASE = default_config("small")


def context(observations: list[Observation], claimed: frozenset[str] = frozenset()) -> AgentContext:
    tried = frozenset(config_hash(o.config) for o in observations) | claimed
    return AgentContext("small-x1/300s/shakespeare/bpe4096/eval1", BASE, config_hash(BASE), tried=tried,
                        observations=tuple(observations))  # fmt: skip


def peers_results(better_lr: float) -> list[Observation]:
    """Results other nodes published: every single change does nothing, except a higher matrix_lr helps a lot."""
    found = [Observation(BASE, 3.0)]
    for i, diff in enumerate(single_changes(BASE)):
        lr = diff.get("matrix_lr", BASE["matrix_lr"])
        found.append(
            Observation(apply(BASE, diff), 3.0 + 0.001 * (i % 3) - (better_lr if lr > BASE["matrix_lr"] else 0))
        )
    return found


def test_proposals_are_valid_diffs_and_never_repeat_a_tried_or_claimed_config():
    observations = peers_results(0.05)
    claimed = frozenset({config_hash(apply(BASE, {"matrix_lr": 0.08, "unembedding_lr": 0.008}))})
    rng = random.Random(1)
    for step in range(12):
        proposal = ModelProposer().propose(context(observations, claimed), rng)
        assert proposal.proposer == "model" and proposal.config == check_config(proposal.config)
        assert proposal.diff == diff_between(BASE, proposal.config) != {}
        assert proposal.config_hash not in {config_hash(o.config) for o in observations} | claimed
        observations.append(Observation(proposal.config, 3.0 + step * 1e-4))


def test_peers_results_steer_the_proposals():
    helped = [ModelProposer().propose(context(peers_results(0.05)), random.Random(seed)).diff for seed in range(8)]
    neutral = [ModelProposer().propose(context(peers_results(0.0)), random.Random(seed)).diff for seed in range(8)]
    raises_lr = sum(diff.get("matrix_lr", 0) > BASE["matrix_lr"] for diff in helped)
    assert raises_lr >= 6 and raises_lr > sum(diff.get("matrix_lr", 0) > BASE["matrix_lr"] for diff in neutral)


def test_a_failed_direction_is_avoided():
    observations = peers_results(0.0)
    bad = [Observation(apply(BASE, diff), None) for diff in single_changes(BASE) if "depth" in diff]
    proposals = [ModelProposer().propose(context(observations + bad), random.Random(s)).diff for s in range(8)]
    assert not any("depth" in diff for diff in proposals)


def test_too_few_results_fall_back_to_the_builtin_search():
    observations = peers_results(0.05)[: MIN_RESULTS - 1]
    proposal = ModelProposer().propose(context(observations), random.Random(4))
    assert proposal == BuiltinProposer().propose(context(observations), random.Random(4))


def test_an_open_hypothesis_from_a_peer_is_picked_up():
    # the results do not argue against it: the runs nearest the idea, longer warmdowns, did no harm
    observations = [
        dataclasses.replace(o, val_bpb=min(o.val_bpb, 3.0))
        if o.config["warmdown_ratio"] > BASE["warmdown_ratio"]
        else o
        for o in peers_results(0.0)
    ]
    ctx = context(observations)
    idea = OpenHypothesis(ctx.best_hash, {"warmdown_ratio": 0.65}, "a longer warmdown", author="peer-b")
    ctx = dataclasses.replace(ctx, hypotheses=(idea,))
    proposal = ModelProposer().propose(ctx, random.Random(0))
    assert proposal.diff == {"warmdown_ratio": 0.65} and "a longer warmdown" in proposal.hypothesis


def test_a_change_that_hurt_points_the_other_way():
    # only lower matrix rates were tried, and they hurt: the slope says a higher rate should help
    observations = [Observation(BASE, 3.0)]
    for i, diff in enumerate(single_changes(BASE)):
        lr = diff.get("matrix_lr", BASE["matrix_lr"])
        if lr <= BASE["matrix_lr"]:
            observations.append(
                Observation(apply(BASE, diff), 3.0 + 0.001 * (i % 3) + (0.05 if lr < BASE["matrix_lr"] else 0))
            )
    proposals = [ModelProposer().propose(context(observations), random.Random(seed)).diff for seed in range(8)]
    assert sum(diff.get("matrix_lr", 0) > BASE["matrix_lr"] for diff in proposals) >= 6


def test_a_few_crippled_configs_do_not_hide_a_real_effect():
    observations = peers_results(0.02)
    observations += [Observation(apply(BASE, diff), 9.0) for diff in single_changes(BASE) if "depth" in diff]
    proposals = [ModelProposer().propose(context(observations), random.Random(seed)).diff for seed in range(8)]
    assert sum(diff.get("matrix_lr", 0) > BASE["matrix_lr"] for diff in proposals) >= 6


def test_proposals_in_the_benchmark_space_never_leave_it_and_keep_finding_moves():
    space, best = SearchSpace.parse(BENCHMARK), default_config("gpu")
    # peers without a space explored every knob: the model learns from those results all the same
    explored = [apply(best, diff) for diff in single_changes(best)]
    observations = [Observation(best, 3.0), *(Observation(c, 3.0 - 0.001 * (i % 5)) for i, c in enumerate(explored))]
    tried = {config_hash(o.config) for o in observations}
    for seed in range(100):  # each proposal fits the model: 100 keep the test to seconds
        ctx = AgentContext("gpu-x1/300s/climbmix/bpe8192/eval1", best, config_hash(best), space=space,
                           tried=frozenset(tried), observations=tuple(observations))  # fmt: skip
        proposal = ModelProposer().propose(ctx, random.Random(seed))
        assert proposal.config == check_config(proposal.config) and space.allows(proposal.config, best), proposal.diff
        assert proposal.proposer == "model" and proposal.config_hash not in tried
        tried.add(proposal.config_hash)  # claimed: the next proposal must find another move
