import random

from node.research.agent import AgentContext, Observation
from node.research.model_proposer import ModelProposer
from node.research.sampler_proposer import MIN_RESULTS, SamplerProposer, distributions
from node.research.space import SearchSpace
from protocol.config import check_config, config_hash, default_config, diff_between

BASE = default_config("gpu")
SPACE = SearchSpace.parse({
    "depth": [4, 24],
    "matrix_lr": [0.005, 0.2],
    "warmdown_ratio": [0.1, 0.8],
    "total_batch_tokens": [65536, 2097152],
    "window_pattern": ["SSSL", "SSLL", "LLLL"],
})  # fmt: skip


def landscape(config: dict) -> float | None:
    """A smooth made-up landscape: best at matrix_lr 0.08, depth 10; deep and wide batches fail."""
    if config["depth"] > 20 and config["total_batch_tokens"] > 2**20:
        return None
    return 1.0 + (config["matrix_lr"] / 0.08 - 1) ** 2 * 0.01 + abs(config["depth"] - 10) * 0.002


def results(count: int, seed: int = 0) -> list[Observation]:
    rng = random.Random(seed)
    found = [Observation(BASE, landscape(BASE))]
    while len(found) < count:
        depth, lr = rng.randint(4, 24), round(rng.uniform(0.005, 0.2), 4)
        config = check_config({**BASE, "depth": depth, "matrix_lr": lr})
        found.append(Observation(config, landscape(config)))
    return found


def context(observations: list[Observation], claimed: frozenset[str] = frozenset(), running=()) -> AgentContext:
    tried = frozenset(config_hash(o.config) for o in observations) | claimed
    return AgentContext("h200-x1/300s/climbmix/bpe8192/eval1", BASE, config_hash(BASE), tried=tried,
                        observations=tuple(observations), space=SPACE, running=tuple(running))  # fmt: skip


def test_ledger_results_in_a_valid_diff_inside_the_space_out():
    observations = results(20)
    rng = random.Random(3)
    for _ in range(6):
        proposal = SamplerProposer().propose(context(observations), rng)
        assert proposal.proposer == "tpe" and proposal.config == check_config(proposal.config)
        assert proposal.diff == diff_between(BASE, proposal.config) != {}
        assert set(proposal.diff) <= set(SPACE.ranges) and SPACE.allows(proposal.config, BASE)
        assert proposal.config_hash not in {config_hash(o.config) for o in observations}
        observations.append(Observation(proposal.config, landscape(proposal.config)))


def test_claimed_configs_are_never_proposed():
    observations = results(20)
    first = SamplerProposer().propose(context(observations), random.Random(5))
    again = SamplerProposer().propose(context(observations, claimed=frozenset({first.config_hash})), random.Random(5))
    assert again.config_hash != first.config_hash


def test_a_running_config_steers_the_sampler_elsewhere():
    observations = results(20)
    first = SamplerProposer().propose(context(observations), random.Random(7))
    beside = SamplerProposer().propose(context(observations, running=[first.config]), random.Random(7))
    assert beside.config != first.config


def test_the_same_context_and_seed_give_the_same_proposal():
    observations = results(20)
    proposals = {SamplerProposer().propose(context(observations), random.Random(11)).config_hash for _ in range(3)}
    assert len(proposals) == 1


def test_results_steer_the_sampler_toward_the_good_region():
    observations = results(60, seed=1)
    proposals = [SamplerProposer().propose(context(observations), random.Random(s)).config for s in range(8)]
    near_best = sum(0.04 <= p["matrix_lr"] <= 0.16 for p in proposals)
    assert near_best >= 6  # a uniform draw on the log range lands there a third of the time


def test_too_few_results_or_no_space_fall_back_to_the_model_proposer():
    few = results(MIN_RESULTS - 1)
    assert SamplerProposer().propose(context(few), random.Random(2)) == ModelProposer().propose(
        context(few), random.Random(2)
    )
    unrestricted = AgentContext("t", BASE, config_hash(BASE), observations=tuple(results(20)))
    assert SamplerProposer().propose(unrestricted, random.Random(2)).proposer != "tpe"


def test_the_sampler_searches_sizes_as_powers_of_two_and_rates_on_a_log_scale():
    found = distributions(SPACE)
    assert (found["total_batch_tokens"].low, found["total_batch_tokens"].high) == (16, 21)  # 2**16 to 2**21
    assert found["matrix_lr"].log and not found["warmdown_ratio"].log
    assert found["window_pattern"].choices == ("SSSL", "SSLL", "LLLL")
