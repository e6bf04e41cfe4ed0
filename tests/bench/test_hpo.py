"""The race on the published trials: the swarm runs the node's own decision code inside the benchmark's box."""

from bench.hpo import NODES, ROOT, RaceResult, SimulatedSwarm, baseline_result, search_space
from bench.hpo_landscape import BOX, default_params, in_box
from node.research.sampler_proposer import SamplerProposer
from protocol.policy import NEW_SWARM_NOISE, Policy

SIGMA = 0.0007
POLICY = Policy(**NEW_SWARM_NOISE)


def race(landscape, seed: int, hours: float = 3.0) -> tuple[SimulatedSwarm, RaceResult]:
    swarm = SimulatedSwarm(landscape, SIGMA, seed, SamplerProposer(), POLICY)
    return swarm, swarm.race([hours / 2, hours])


def test_the_benchmark_box_is_a_search_space_a_user_could_write():
    space = search_space()
    assert set(space.ranges) == {knob.name for knob in BOX}
    assert space.ranges["window_pattern"].choices == ("SSSL", "SSLL", "SLSL", "LLLL", "SSSS", "LSSL")
    assert (space.ranges["depth"].lo, space.ranges["depth"].hi) == (4, 24)


def test_a_swarm_race_is_deterministic_stays_in_the_box_and_within_budget(landscape):
    (first, result), (again, same) = race(landscape, seed=5), race(landscape, seed=5)
    assert result == same and [r.id for r in first.records] == [r.id for r in again.records]
    assert race(landscape, seed=6)[0].records != first.records
    # every node's last run ends within its share of the GPU-hours
    assert max(run.ts_ms for run in first.records) / 1000 <= 3.0 * 3600 / NODES
    assert {run.author for run in first.records} == {f"node-{i}" for i in range(NODES)}
    assert all(in_box({knob.name: first.full[run.config][knob.name] for knob in BOX}) for run in first.records)


def test_the_swarm_hands_its_accepted_best_and_claims_its_evidence(landscape):
    swarm, result = race(landscape, seed=7)
    best = swarm.view.best
    assert best is not None  # the default at least: a swarm always has an accepted best
    handed = result.handed[3.0]
    assert handed.true_bpb == swarm._true(best.config) <= landscape.true_bpb(default_params()) + 3 * SIGMA
    assert handed.claimed_bpb == best.evidence_mean
    assert swarm.records[0].config == ROOT  # every node starts from the default, as the baselines do


def test_a_baseline_hands_its_best_single_run(landscape):
    result = baseline_result("random", landscape, SIGMA, [1.0, 2.0], seed=1)
    assert set(result.handed) == {1.0, 2.0}
    assert result.handed[2.0].claimed_bpb <= result.handed[1.0].claimed_bpb  # a later best run is no worse
