"""Findings on simulated swarms whose true effects are known: what helps is found helping, what does
nothing is not claimed, what hurts or fails is listed as a dead end, and every node agrees."""

import random

from bench.findings_swarm import DOES_NOTHING, HELPS, HURTS, SIGMA, Swarm, found, track
from protocol.config import default_config
from protocol.findings import describe


def test_a_change_is_named_by_its_knobs_and_directions():
    parent = default_config("gpu")
    assert describe(parent, {"depth": 10, "matrix_lr": 0.06}) == ("depth +2", "matrix_lr up")
    assert describe(parent, {"window_pattern": "SSLL", "value_embeds": False}) == (
        "window_pattern -> SSLL",
        "value_embeds -> false",
    )
    assert describe(parent, {"seed": 3, "depth": 8}) == ()  # a seed, and a knob left as it was


def test_a_simulated_swarm_finds_the_helping_change_claims_no_null_one_and_lists_the_harmful_and_failing_ones():
    swarm = Swarm(track("gpu-a"), seed=1)
    swarm.explore(rounds=6)
    result = found(swarm.runs)
    helping = result[HELPS]
    assert helping.verdict == "helps" and helping.held_on == ("gpu-a/300s/shakespeare/bpe8192/eval1",)
    assert helping.lead.bpb_low < -3.0 * SIGMA < helping.lead.bpb_high
    assert not helping.dead_end
    null = result[DOES_NOTHING]
    assert null.verdict in ("nothing", "open") and not null.held_on and not null.dead_end
    assert null.lead.bpb_low < 0.0 < null.lead.bpb_high
    harmful = result[HURTS]
    assert harmful.dead_end and harmful.verdict == "hurts"
    failing = result["head_dim +64"]
    assert failing.dead_end and failing.verdict == "failed" and failing.failures == {"oom": 6} and failing.tried == 6


def test_a_change_that_helps_on_two_tracks_holds_on_both_in_each_tracks_own_sigma():
    quiet, loud = Swarm(track("gpu-a"), seed=2), Swarm(track("gpu-b"), seed=3, noise=2 * SIGMA)
    quiet.explore(rounds=5)
    loud.explore(rounds=5)
    helping = found(quiet.runs + loud.runs)[HELPS]
    assert helping.held_on == (quiet.track.key, loud.track.key) and helping.tried == 10
    on_quiet, on_loud = helping.tracks
    for on_track, swarm in zip(helping.tracks, (quiet, loud), strict=True):
        assert on_track.lead.bpb_low < -3.0 * swarm.noise < on_track.lead.bpb_high  # the truth, in bpb
    on_quiet, on_loud = helping.tracks
    assert on_loud.sigma > on_quiet.sigma  # each track's lead in its own sigma, pooled in sigma across them
    assert helping.lead.sigmas_high < 0 and helping.lead.sigmas_low > min(t.lead.sigmas_low for t in helping.tracks)
    assert helping.lead.sigmas_error < min(t.lead.sigmas_error for t in helping.tracks)


def test_every_node_finds_the_same_whatever_order_and_duplicates_its_records_came_in():
    swarm = Swarm(track("gpu-a"), seed=4)
    swarm.explore(rounds=4)
    shuffled = swarm.runs + swarm.runs[:10]
    random.Random(5).shuffle(shuffled)
    assert list(found(shuffled).values()) == list(found(swarm.runs).values())


def test_a_killed_run_is_no_failure_of_its_change():
    swarm = Swarm(track("gpu-a"), seed=6)
    root = next(iter(swarm.configs))
    swarm.run(root, {"depth": 10}, outcome="killed")
    swarm.run(root, {"depth": 12}, outcome="crash")
    result = found(swarm.runs)
    assert not result["depth +2"].dead_end and result["depth +2"].verdict == "open"
    assert result["depth +4"].failed_on == (swarm.track.key,) and result["depth +4"].tracks[0].failures == {"crash": 1}


def test_a_change_of_two_knobs_is_a_finding_of_its_own_named_by_both():
    swarm = Swarm(track("gpu-a"), seed=7)
    root = next(iter(swarm.configs))
    for _ in range(2):
        swarm.run(root, {"matrix_lr": 0.06, "depth": 10}, effect=3.0)
    result = found(swarm.runs)
    assert set(result) == {"depth +2, matrix_lr up"} and result["depth +2, matrix_lr up"].knobs == 2
    assert result["depth +2, matrix_lr up"].tried == 1 and result["depth +2, matrix_lr up"].runs == 2
