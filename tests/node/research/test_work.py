import random

from node.research.work import NOISE_DF_TARGET, WorkWeights, choose_work
from protocol.acceptance import UBPB, Run, assess
from protocol.config import apply, config_hash, default_config
from protocol.policy import Policy
from protocol.track import Track

TRACK = Track("cpu-x1", "steps", 30, "shakespeare", "bpe4096", 1)
ROOT = config_hash(default_config("small"))
CHILD_DIFF = {"depth": 5}
CHILD = config_hash(apply(default_config("small"), CHILD_DIFF))
POLICY = Policy(min_runs=2, min_authors=2, sigma_floor_ubpb=2000)


def run(i: int, config: str, bpb: float, author: str, replicates: bytes | None = None) -> Run:
    diff = {} if config == ROOT else CHILD_DIFF
    return Run(bytes([i]) * 32, i, author, TRACK, config, ROOT, diff, "ok", round(bpb * UBPB), replicates)


DEFAULT_WEIGHTS = WorkWeights()


def choose(runs, me="me", claimed=(), weights=DEFAULT_WEIGHTS, seed=0):
    view = assess(runs, POLICY).get(TRACK.key)
    return choose_work(view, ROOT, me, set(claimed), POLICY, weights, random.Random(seed))


def test_an_empty_track_starts_with_the_baseline():
    assert choose([]).kind == "baseline"


def test_the_baseline_is_left_to_others_once_only_their_authorship_is_missing():
    runs = [run(1, ROOT, 2.0, "me"), run(2, ROOT, 2.001, "me")]
    assert choose(runs, me="me").kind != "baseline"
    assert choose(runs, me="other").kind == "baseline"


def test_a_candidate_of_another_author_gets_verified_and_not_by_its_author():
    baseline = [run(1, ROOT, 2.0, "a"), run(2, ROOT, 2.0, "b")]
    runs = [*baseline, run(3, CHILD, 1.98, "a")]
    verify_only = WorkWeights(verify=1.0, explore=0.0, noise=0.0)
    work = choose(runs, me="b", weights=verify_only)
    assert work.kind == "verify" and work.target.config == CHILD and work.is_replication
    assert choose(runs, me="a", weights=verify_only).kind == "explore"


def test_a_claimed_candidate_is_not_verified_twice():
    runs = [run(1, ROOT, 2.0, "a"), run(2, ROOT, 2.0, "b"), run(3, CHILD, 1.98, "a")]
    verify_only = WorkWeights(verify=1.0, explore=0.0, noise=0.0)
    assert choose(runs, me="b", claimed={CHILD}, weights=verify_only).kind == "explore"


def test_noise_is_measured_while_the_pooled_estimate_is_rough():
    runs = [run(1, ROOT, 2.0, "a"), run(2, ROOT, 2.0, "b")]
    view = assess(runs, POLICY)[TRACK.key]
    assert view.sigma_df < NOISE_DF_TARGET
    work = choose(runs, me="c", weights=WorkWeights(verify=0.0, explore=0.0, noise=1.0))
    assert work.kind == "noise" and work.target.config == ROOT


def test_the_choice_is_a_function_of_the_state_and_the_seed():
    runs = [run(1, ROOT, 2.0, "a"), run(2, ROOT, 2.0, "b"), run(3, CHILD, 1.98, "a")]
    kinds = {seed: choose(runs, me="c", seed=seed).kind for seed in range(20)}
    assert kinds == {seed: choose(list(reversed(runs)), me="c", seed=seed).kind for seed in range(20)}
    assert set(kinds.values()) == {"explore", "verify", "noise"}
