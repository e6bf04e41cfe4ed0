import random

from node.research.work import (
    EXPLORING_VERIFIES,
    NOISE_DF_TARGET,
    Work,
    WorkWeights,
    _exploring_verifies,
    choose_work,
    tried_configs,
)
from protocol.acceptance import ACCEPT_POSTERIOR, UBPB, Run, assess
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


def test_an_unverified_default_is_re_run_by_a_node_whose_run_counts():
    runs = [run(1, ROOT, 2.0, "me")]  # min_authors = 2: only another node's run brings it closer
    assert all(choose(runs, me="other", seed=seed) == Work("verify", _root(runs)) for seed in range(10))
    assert choose(runs, me="other", claimed={ROOT}).kind == "explore"  # one re-run at a time


def test_a_default_whose_only_child_moved_is_re_run_not_left_unverified():
    # the child's large effect keeps its runs out of the default's evidence: explorations never verify it
    runs = [run(1, ROOT, 2.0, "me"), run(2, CHILD, 1.9, "me"), run(3, CHILD, 1.9, "other")]
    assert assess(runs, POLICY)[TRACK.key].best is None
    assert choose(runs, me="other") == Work("verify", _root(runs))
    assert choose(runs, me="me").kind == "explore"  # my runs of it cannot meet min_authors
    solo = Policy(min_runs=2, min_authors=1, sigma_floor_ubpb=2000)
    view = assess(runs, solo)[TRACK.key]
    assert choose_work(view, ROOT, "me", set(), solo, DEFAULT_WEIGHTS, random.Random(0)).kind == "verify"


def _root(runs):
    return next(s for s in assess(runs, POLICY)[TRACK.key].leaderboard if s.config == ROOT)


def test_a_fresh_discovery_is_explored_from_while_changes_mostly_do_nothing():
    runs = [run(1, ROOT, 2.0, "a"), run(2, ROOT, 2.0, "b"), run(3, CHILD, 1.98, "a")]
    for seed in range(10):
        work = choose(runs, me="b", weights=WorkWeights(explore=1.0, noise=0.0), seed=seed)
        assert work.kind == "explore" and work.target.config == CHILD  # its children's runs are its evidence


def global_jumps(count: int) -> list[Run]:
    """Children of the default that each move three knobs at once, all of them for the worse."""
    runs = []
    for i in range(count):
        diff = {"depth": 6, "matrix_lr": round(0.05 + 0.001 * i, 3), "warmdown_ratio": 0.3}
        config = config_hash(apply(default_config("small"), diff))
        ubpb = round((2.05 + 0.01 * i) * UBPB)
        runs.append(Run(bytes([100 + i]) * 32, 100 + i, "a", TRACK, config, ROOT, diff, "ok", ubpb, None))
    return runs


def test_a_promising_find_is_re_run_where_changes_seldom_do_nothing():
    runs = [run(1, ROOT, 2.0, "a"), run(2, ROOT, 2.0, "b"), run(3, ROOT, 2.0, "a"), *global_jumps(24)]
    runs.append(run(200, CHILD, 1.99, "a"))
    view = assess(runs, POLICY)[TRACK.key]
    assert _exploring_verifies(view) < EXPLORING_VERIFIES  # a three-knob jump seldom does nothing
    assert view.frontier.config == CHILD and not view.frontier.accepted
    for seed in range(10):
        work = choose(runs, me="b", weights=WorkWeights(explore=1.0, noise=0.0), seed=seed)
        assert work.kind == "verify" and work.target.config == CHILD


def test_a_claimed_frontier_is_not_run_twice_and_exploration_builds_on_it():
    runs = [run(1, ROOT, 2.0, "a"), run(2, ROOT, 2.0, "b"), run(3, CHILD, 1.99, "a"), run(4, CHILD, 1.993, "b")]
    assert choose(runs, me="c").kind == "verify"
    work = choose(runs, me="c", claimed={CHILD}, weights=WorkWeights(explore=1.0, noise=0.0))
    assert work.kind == "explore" and work.target.config == CHILD


def test_a_re_run_is_spent_only_where_it_may_flip_a_verdict():
    baseline = [run(1, ROOT, 2.0, "a"), run(2, ROOT, 2.0, "b")]
    close = [*baseline, run(3, CHILD, 1.99, "a"), run(4, CHILD, 1.993, "b")]
    target = assess(close, POLICY)[TRACK.key].frontier
    assert target.config == CHILD and not target.accepted and 0.5 < target.confidence < ACCEPT_POSTERIOR
    work = choose(close, me="c")
    assert work.kind == "verify" and work.target.config == CHILD
    # evidence from two authors besides the discovery's run: min_authors = 2 counts the evidence only
    clear = [*baseline, run(3, CHILD, 1.95, "a"), run(4, CHILD, 1.95, "b"), run(5, CHILD, 1.95, "a")]
    assert assess(clear, POLICY)[TRACK.key].best.config == CHILD
    assert choose(clear, me="c", weights=WorkWeights(explore=1.0, noise=0.0)).kind == "explore"


def test_noise_is_measured_while_the_pooled_estimate_is_rough():
    runs = [run(1, ROOT, 2.0, "a"), run(2, ROOT, 2.0, "b"), run(3, CHILD, 2.01, "a")]
    view = assess(runs, POLICY)[TRACK.key]
    assert view.sigma_df < NOISE_DF_TARGET
    work = choose(runs, me="c", weights=WorkWeights(explore=0.0, noise=1.0))
    assert work.kind == "noise" and work.target.config == ROOT


def test_the_choice_is_a_function_of_the_state_and_the_seed():
    runs = [run(1, ROOT, 2.0, "a"), run(2, ROOT, 2.0, "b"), run(3, CHILD, 1.998, "a"), run(4, CHILD, 1.997, "b")]
    kinds = {seed: choose(runs, me="c", seed=seed) for seed in range(20)}
    assert kinds == {seed: choose(list(reversed(runs)), me="c", seed=seed) for seed in range(20)}
    assert {work.kind for work in kinds.values()} == {"explore", "noise"}


def _failed(i: int, config: str, author: str, outcome: str = "crash") -> Run:
    return Run(bytes([i]) * 32, i, author, TRACK, config, ROOT, {}, outcome, None, None)


def test_one_members_crash_reports_never_close_a_config_for_the_swarm():
    hostile = [_failed(i, f"{i:064x}", "mallory") for i in range(1, 30)]  # every neighbour "crashed"
    assert tried_configs(hostile, "me", POLICY) == set()


def test_a_config_closes_on_an_ok_run_on_our_own_failure_or_on_failures_from_min_authors_members():
    a, b, c, d = (f"{n:064x}" for n in (1, 2, 3, 4))
    runs = [
        run(1, a, 0.99, "alice"),
        _failed(2, b, "me"),
        _failed(3, c, "alice"),
        _failed(4, c, "bob"),
        _failed(5, d, "alice"),
        _failed(6, d, "me", outcome="killed"),  # a stopped run says nothing about its config
    ]
    assert tried_configs(runs, "me", POLICY) == {a, b, c}
