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


def test_a_solo_node_explores_from_its_second_run():
    runs = [run(1, ROOT, 2.0, "me")]
    for seed in range(10):
        work = choose(runs, me="me", seed=seed)
        assert work.kind == "explore" and work.target.config == ROOT


def test_the_baseline_is_left_to_others_once_only_their_authorship_is_missing():
    runs = [run(1, ROOT, 2.0, "me"), run(2, ROOT, 2.001, "me"), run(3, CHILD, 2.01, "me")]
    verify_only = WorkWeights(verify=1.0, explore=0.0, noise=0.0)
    assert choose(runs, me="me", weights=verify_only).kind == "explore"
    assert choose(runs, me="other", weights=verify_only).kind == "baseline"


def test_the_frontier_is_verified_by_others_and_explored_from_before_it_is_accepted():
    baseline = [run(1, ROOT, 2.0, "a"), run(2, ROOT, 2.0, "b")]
    runs = [*baseline, run(3, CHILD, 1.98, "a")]
    kinds = {(w.kind, w.target.config) for w in (choose(runs, me="b", seed=seed) for seed in range(20))}
    assert kinds == {("verify", CHILD), ("explore", CHILD), ("noise", ROOT)}
    verify_only = WorkWeights(verify=1.0, explore=0.0, noise=0.0)
    work = choose(runs, me="a", weights=verify_only)  # min_authors = 2: its author's runs cannot verify it
    assert work.kind == "explore" and work.target.config == CHILD


def test_a_claimed_frontier_is_not_run_twice_and_exploration_builds_on_it():
    runs = [run(1, ROOT, 2.0, "a"), run(2, ROOT, 2.0, "b"), run(3, CHILD, 1.98, "a")]
    verify_only = WorkWeights(verify=1.0, explore=0.0, noise=0.0)
    work = choose(runs, me="b", claimed={CHILD}, weights=verify_only)
    assert work.kind == "explore" and work.target.config == CHILD


def test_a_narrowly_accepted_best_is_re_run_and_a_clear_winner_is_not():
    baseline = [run(1, ROOT, 2.0, "a"), run(2, ROOT, 2.0, "b")]
    verify_only = WorkWeights(verify=1.0, explore=0.0, noise=0.0)
    narrow = [*baseline, run(3, CHILD, 1.995, "a"), run(4, CHILD, 1.994, "b")]
    assert assess(narrow, POLICY)[TRACK.key].best.config == CHILD
    work = choose(narrow, me="c", weights=verify_only)
    assert work.kind == "verify" and work.target.config == CHILD
    clear = [*baseline, run(3, CHILD, 1.95, "a"), run(4, CHILD, 1.95, "b")]
    assert choose(clear, me="c", weights=verify_only).kind == "explore"


def test_noise_is_measured_while_the_pooled_estimate_is_rough():
    runs = [run(1, ROOT, 2.0, "a"), run(2, ROOT, 2.0, "b"), run(3, CHILD, 2.01, "a")]
    view = assess(runs, POLICY)[TRACK.key]
    assert view.sigma_df < NOISE_DF_TARGET
    work = choose(runs, me="c", weights=WorkWeights(verify=0.0, explore=0.0, noise=1.0))
    assert work.kind == "noise" and work.target.config == ROOT


def test_the_choice_is_a_function_of_the_state_and_the_seed():
    runs = [run(1, ROOT, 2.0, "a"), run(2, ROOT, 2.0, "b"), run(3, CHILD, 1.998, "a"), run(4, CHILD, 1.997, "b")]
    kinds = {seed: choose(runs, me="c", seed=seed) for seed in range(20)}
    assert kinds == {seed: choose(list(reversed(runs)), me="c", seed=seed) for seed in range(20)}
    assert {work.kind for work in kinds.values()} == {"explore", "verify", "noise"}
