import contextlib
import random
from itertools import combinations

import pytest

from node.research.agent import AgentContext, OpenHypothesis, ProposerExhausted
from node.research.builtin_proposer import BuiltinProposer, single_changes
from node.research.space import SearchSpace
from protocol.acceptance import ConfigStats
from protocol.config import apply, check_config, config_hash, default_config, diff_between
from protocol.errors import ConfigError
from tests.node.research.test_space import BENCHMARK


def context(profile: str = "small", **fields) -> AgentContext:
    best = default_config(profile)
    return AgentContext(f"{profile}-x1/300s/shakespeare/bpe8192/eval1", best, config_hash(best), **fields)


def verified_row(best_hash: str, diff: dict, verified: bool = True) -> ConfigStats:
    config = config_hash(apply(default_config("small"), diff))
    return ConfigStats(config, best_hash, diff, 2, 0, 2, 1.5, 1, 1.5, None, verified, verified)


def hashes(changes) -> set[str]:
    best = default_config("small")
    return {config_hash(apply(best, diff)) for diff in changes}


@pytest.mark.parametrize("profile", ["small", "gpu"])
def test_proposals_are_valid_untried_and_never_repeat(profile):
    proposer, rng, ctx = BuiltinProposer(), random.Random(1), context(profile)
    tried = {ctx.best_hash}
    for _ in range(150):
        proposal = proposer.propose(
            AgentContext(ctx.track_key, ctx.best_config, ctx.best_hash, tried=frozenset(tried)), rng
        )
        assert proposal.config == check_config(proposal.config)
        assert proposal.diff == diff_between(ctx.best_config, proposal.config) != {}
        assert "seed" not in proposal.diff and proposal.config["seed"] == ctx.best_config["seed"]
        assert proposal.config_hash == config_hash(proposal.config) not in tried
        assert proposal.proposer == "builtin" and proposal.fell_back_reason is None
        tried.add(proposal.config_hash)


def test_same_context_and_seed_give_the_same_proposals():
    ctx = context(leaderboard=(verified_row("0" * 64, {"depth": 5}), verified_row("0" * 64, {"matrix_lr": 0.05})))
    runs = [[BuiltinProposer().propose(ctx, rng) for _ in range(20)] for rng in (random.Random(7), random.Random(7))]
    assert runs[0] == runs[1]


def test_batch_changes_keep_the_batch_divisible():
    best = {**default_config("small"), "total_batch_tokens": 2048}  # exactly one forward pass of 8 x 256
    diffs = single_changes(best)
    assert {"seq_len": 512, "device_batch_size": 4} in diffs  # longer rows, fewer of them
    assert {"total_batch_tokens": 1024, "device_batch_size": 4} in diffs
    assert {"device_batch_size": 16} not in diffs  # would not divide the batch, and is not repaired
    for diff in diffs:
        apply(best, diff)


def test_recombines_only_verified_diffs_of_the_leaderboard():
    ctx = context()
    rows = (
        verified_row(ctx.best_hash, {"depth": 5}),
        verified_row(ctx.best_hash, {"matrix_lr": 0.05}),
        verified_row(ctx.best_hash, {"activation": "gelu"}, verified=False),
    )
    ctx = context(leaderboard=rows)
    recombined = []
    for seed in range(40):
        proposal = BuiltinProposer().propose(ctx, random.Random(seed))
        if "recombine" in proposal.hypothesis:
            recombined.append(proposal.diff)
    assert recombined and all(diff == {"depth": 5, "matrix_lr": 0.05} for diff in recombined)


def test_adopts_open_hypotheses_on_the_best_config_only():
    ctx = context()
    ctx = context(
        hypotheses=(
            OpenHypothesis(ctx.best_hash, {"mlp_ratio": 3}, "narrower MLP, more steps", "12D3KooWpeer"),
            OpenHypothesis("f" * 64, {"activation": "silu"}, "for another parent", "12D3KooWpeer"),
        )
    )
    adopted = [BuiltinProposer().propose(ctx, random.Random(seed)) for seed in range(60)]
    adopted = [p for p in adopted if p.hypothesis.startswith("peer hypothesis")]
    assert adopted and all(p.diff == {"mlp_ratio": 3} and "narrower MLP" in p.hypothesis for p in adopted)


def test_changes_two_knobs_once_every_single_change_is_tried():
    ctx = context()
    tried = frozenset(hashes(single_changes(ctx.best_config)))
    for seed in range(5):
        proposal = BuiltinProposer().propose(context(tried=tried), random.Random(seed))
        assert len(proposal.diff) >= 2 and proposal.config_hash not in tried


def test_says_so_when_every_single_and_pair_change_is_tried():
    best = default_config("small")
    singles = single_changes(best)
    taken = set(hashes(singles))
    for first, second in combinations(singles, 2):
        with contextlib.suppress(ConfigError):  # pairs that break a cross-knob rule are never proposed
            taken.add(config_hash(apply(best, {**first, **second})))
    with pytest.raises(ProposerExhausted, match="every single and pair change"):
        BuiltinProposer().propose(context(tried=frozenset(taken)), random.Random(0))


def test_pushes_the_change_that_made_the_best_one_step_further():
    parent = default_config("small")
    best = apply(parent, {"matrix_lr": 0.056, "warmdown_ratio": 0.6})
    ctx = AgentContext(track_key="t", best_config=best, best_hash=config_hash(best), parent_config=parent)
    proposals = {BuiltinProposer().propose(ctx, random.Random(seed)).hypothesis for seed in range(40)}
    pushed = [text for text in proposals if "push further" in text]
    assert pushed and "matrix_lr=0.0784" in pushed[0] and "warmdown_ratio=0.7" in pushed[0]


def gpu_row(best: dict, diff: dict) -> ConfigStats:
    return ConfigStats(config_hash(apply(best, diff)), config_hash(best), diff, 2, 0, 2, 1.5, 1, 1.5, None, True, True)


def test_proposals_in_the_benchmark_space_never_leave_it_and_keep_finding_moves():
    space, parent = SearchSpace.parse(BENCHMARK), default_config("gpu")
    best = apply(parent, {"matrix_lr": 0.05})  # so the extension of the last change is a move too
    # moves the space does not allow: a peer's hypothesis and a verified donor outside it
    rows = (gpu_row(best, {"activation": "gelu"}), gpu_row(best, {"depth": 10}), gpu_row(best, {"depth": 30}))
    hint = OpenHypothesis(config_hash(best), {"window_pattern": "L"}, "full attention only", "12D3KooWpeer")
    tried: set[str] = {config_hash(best)}
    for seed in range(200):
        ctx = AgentContext("gpu-x1/300s/climbmix/bpe8192/eval1", best, config_hash(best), leaderboard=rows,
                           hypotheses=(hint,), parent_config=parent, tried=frozenset(tried), space=space)  # fmt: skip
        proposal = BuiltinProposer().propose(ctx, random.Random(seed))
        assert proposal.config == check_config(proposal.config) and proposal.config_hash not in tried
        assert space.allows(proposal.config, best), proposal.diff
        tried.add(proposal.config_hash)


def test_a_space_restricts_single_changes_to_its_knobs_ranges_and_choices():
    space = SearchSpace.parse(BENCHMARK)
    best = default_config("gpu")
    diffs = single_changes(best, space)
    assert {name for diff in diffs for name in diff} <= set(BENCHMARK)
    assert all(space.allows(apply(best, diff), best) for diff in diffs)
    patterns = {diff["window_pattern"] for diff in diffs if "window_pattern" in diff}
    assert patterns == {"SSLL", "SLSL", "LLLL", "SSSS", "LSSL"}  # the space's choices, not the built-in grid


def test_a_smaller_batch_inside_the_space_repairs_the_rows_per_pass():
    space = SearchSpace.parse({"device_batch_size": [32, 256], "total_batch_tokens": [65536, 2097152]})
    best = {**default_config("gpu"), "total_batch_tokens": 131072, "device_batch_size": 64}  # rows x 2048 tokens
    assert {"total_batch_tokens": 65536, "device_batch_size": 32} in single_changes(best, space)
    assert {"total_batch_tokens": 262144} in single_changes(best, space)


def test_a_repair_outside_the_space_is_not_a_move():
    space = SearchSpace.parse({"device_batch_size": [64, 256], "total_batch_tokens": [65536, 2097152]})
    best = {**default_config("gpu"), "total_batch_tokens": 131072, "device_batch_size": 64}
    assert not any(diff.get("total_batch_tokens") == 65536 for diff in single_changes(best, space))


def test_exhaustion_inside_a_restricted_space_says_so():
    space = SearchSpace.parse({"value_embeds": [False]})
    best = default_config("small")
    tried = frozenset({config_hash(apply(best, {"value_embeds": False}))})
    with pytest.raises(ProposerExhausted, match="within the search space"):
        BuiltinProposer().propose(context(tried=tried, space=space), random.Random(0))
