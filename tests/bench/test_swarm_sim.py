import random

from bench.swarm_sim import REGIMES, ROOT, SIGMA, TRACK, simulate_greedy, simulate_ours
from node.research.work import WorkWeights, choose_work
from protocol.acceptance import UBPB, assess
from protocol.policy import Policy

POLICY = Policy(sigma_floor_ubpb=round(SIGMA * UBPB))


def test_a_small_swarm_decides_the_same_from_any_order_of_its_records():
    outcome, records = simulate_ours(REGIMES["easy"], seed=1, runs=80, nodes=3, policy=POLICY)
    assert len(records) == 80 and outcome.accepted >= 1  # it explored, verified and accepted something
    rng = random.Random(0)
    derivations = {}  # shared across the growing prefixes, as the simulation shares it
    for prefix in (1, 10, 40, 80):
        ordered = assess(records[:prefix], POLICY)[TRACK.key]
        assert assess(records[:prefix], POLICY, derivations)[TRACK.key] == ordered
        shuffled = records[:prefix]
        rng.shuffle(shuffled)
        view = assess(shuffled + shuffled[:5], POLICY)[TRACK.key]  # and duplicates
        assert view == ordered
        for seed in range(5):
            work = [
                choose_work(v, ROOT, "node-1", set(), POLICY, WorkWeights(), random.Random(seed))
                for v in (ordered, view)
            ]
            assert work[0] == work[1]


def test_the_simulation_is_seeded():
    first = simulate_ours(REGIMES["hard"], seed=5, runs=40, nodes=2, policy=POLICY)[0]
    assert first == simulate_ours(REGIMES["hard"], seed=5, runs=40, nodes=2, policy=POLICY)[0]
    assert simulate_greedy(REGIMES["hard"], 5, 40, 2, 0.0) == simulate_greedy(REGIMES["hard"], 5, 40, 2, 0.0)


def test_noiseless_greedy_never_accepts_a_change_that_did_not_help():
    assert simulate_greedy(REGIMES["middle"], 1, 100, 2, 0.0).false == 0


def test_staggered_nodes_join_one_by_one():
    _, records = simulate_ours(REGIMES["hard"], seed=2, runs=30, nodes=4, policy=POLICY, stagger=True)
    first = {run.author: i for i, run in reversed(list(enumerate(records)))}
    assert first["node-0"] == 0 and all(first[f"node-{k}"] >= k for k in range(1, 4))  # node k after k runs
