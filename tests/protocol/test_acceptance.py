import dataclasses
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.acceptance import ACCEPT_EARLY_POSTERIOR, ACCEPT_POSTERIOR, UBPB, Lineage, Run, assess
from protocol.config import apply, config_hash, default_config
from protocol.identity import Identity
from protocol.policy import NEW_SWARM_NOISE, Policy
from protocol.records import Record, sign
from tests.protocol.test_records import NOW, TRACK, hypothesis_body, result_body

ALICE, BOB = Identity.from_seed(b"\x0a" * 32), Identity.from_seed(b"\x0b" * 32)
CAROL, MALLORY = Identity.from_seed(b"\x0c" * 32), Identity.from_seed(b"\x0d" * 32)
POLICY = Policy(min_runs=2, min_authors=1, sigma_floor_ubpb=2000)
FLOOR = POLICY.sigma_floor_ubpb / UBPB
CLEAR_LEAD = 8 * POLICY.sigma_floor_ubpb  # micro-bpb: far outside the noise
SMALL = default_config("small")
ROOT = config_hash(SMALL)
DEEPER = {"depth": 6}
CHILD = config_hash(apply(SMALL, DEEPER))
GRANDCHILD_DIFF = {"matrix_lr": 0.05}
GRANDCHILD = config_hash(apply(apply(SMALL, DEEPER), GRANDCHILD_DIFF))
OTHER_TRACK = dataclasses.replace(TRACK, hardware="nvidia-a100-x1")


class Runs:
    """Signs result records with distinct timestamps, oldest first."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def add(self, config: str, val_bpb: int | None, author: Identity = ALICE, **fields) -> Record:
        fields.setdefault("parent", ROOT)
        fields.setdefault("diff", DEEPER if config != ROOT else {})
        if val_bpb is None:
            fields.setdefault("outcome", "crash")
        body = result_body(config=config, val_bpb=val_bpb, seed=len(self.records), **fields)
        record = sign(author, "result", body, NOW + len(self.records))
        self.records.append(record)
        return record

    def default_verified(self, val_bpb: int = 1_000_000) -> None:
        self.add(ROOT, val_bpb)
        self.add(ROOT, val_bpb, BOB)

    def view(self, policy: Policy = POLICY):
        return assess(self.records, policy)[TRACK.key]


def stats_of(view, config: str):
    return next(stats for stats in view.leaderboard if stats.config == config)


def test_a_verified_default_config_is_the_best():
    runs = Runs()
    runs.default_verified()
    best = runs.view().best
    assert (best.config, best.runs, best.authors, best.mean) == (ROOT, 2, 2, 1.0)
    assert best.verified and best.accepted and best.is_default


def test_nothing_is_best_before_anything_is_verified():
    runs = Runs()
    runs.add(ROOT, 1_000_000)
    runs.add(ROOT, None)  # a crash is recorded but is no evidence
    view = runs.view()
    assert view.best is None and view.candidates == ()
    assert stats_of(view, ROOT).failures == 1


def test_a_child_whose_replications_make_it_almost_surely_better_becomes_best():
    runs = Runs()
    runs.default_verified()
    discovery = runs.add(CHILD, 1_000_000 - CLEAR_LEAD)  # the floor is the sigma here: all runs agree
    runs.add(CHILD, 1_000_000 - CLEAR_LEAD, BOB, replicates=discovery.id)
    runs.add(CHILD, 1_000_000 - CLEAR_LEAD, BOB, replicates=discovery.id)
    view = runs.view()
    assert view.sigma == FLOOR
    assert view.best.config == CHILD and view.best.evidence_runs == 2
    assert view.best.confidence >= ACCEPT_POSTERIOR and view.best.reference == ROOT


def test_a_child_that_leads_by_about_the_noise_is_not_accepted():
    runs = Runs()
    runs.default_verified()
    discovery = runs.add(CHILD, 998_000)
    runs.add(CHILD, 998_000, replicates=discovery.id)
    runs.add(CHILD, 998_000, replicates=discovery.id)
    view = runs.view()
    child = stats_of(view, CHILD)
    assert child.verified and not child.accepted and child.confidence < ACCEPT_POSTERIOR
    assert view.best.config == ROOT


def test_the_discovery_run_is_not_evidence_for_its_own_config():
    runs = Runs()
    runs.default_verified()
    discovery = runs.add(CHILD, 900_000)  # lucky
    runs.add(CHILD, 999_000, replicates=discovery.id)
    runs.add(CHILD, 1_001_000, replicates=discovery.id)
    view = runs.view()
    child = stats_of(view, CHILD)
    assert child.discovery == discovery.id
    assert (child.runs, child.evidence_runs) == (3, 2) and math.isclose(child.evidence_mean, 1.0)
    assert not child.accepted and view.best.config == ROOT


def test_a_config_run_by_one_author_does_not_verify_when_two_are_required():
    two_authors = dataclasses.replace(POLICY, min_authors=2)
    runs = Runs()
    runs.default_verified()
    discovery = runs.add(CHILD, 950_000)
    runs.add(CHILD, 950_000, replicates=discovery.id)
    runs.add(CHILD, 950_000, replicates=discovery.id)
    assert not stats_of(runs.view(two_authors), CHILD).verified
    assert runs.view(two_authors).best.config == ROOT
    assert runs.view(POLICY).best.config == CHILD
    runs.add(CHILD, 950_000, BOB, replicates=discovery.id)
    assert runs.view(two_authors).best.config == CHILD


def test_a_cycle_of_lying_parent_links_never_crashes_and_is_never_accepted():
    runs = Runs()
    runs.default_verified()
    first, second, selfish = "a" * 64, "b" * 64, "c" * 64
    for config, parent in ((first, second), (second, first), (selfish, selfish), ("d" * 64, "e" * 64)):
        for author in (ALICE, BOB, BOB):
            runs.add(config, 500_000, author, parent=parent)
    view = runs.view()
    assert view.best.config == ROOT
    assert not any(stats.accepted for stats in view.leaderboard if stats.config != ROOT)


def test_a_backdated_record_with_a_false_lineage_cannot_cut_a_config_from_its_parent():
    runs = Runs()
    runs.default_verified()
    discovery = runs.add(CHILD, 1_000_000 - CLEAR_LEAD)
    runs.add(CHILD, 1_000_000 - CLEAR_LEAD, BOB, replicates=discovery.id)
    runs.add(CHILD, 1_000_000 - CLEAR_LEAD, BOB, replicates=discovery.id)
    mallory = Identity.from_seed(b"\x0c" * 32)
    body = result_body(config=CHILD, val_bpb=None, outcome="crash", parent="f" * 64, diff={})
    runs.records.insert(0, sign(mallory, "result", body, NOW - 10**9))  # claims to be the first run of CHILD
    child = stats_of(runs.view(), CHILD)
    assert (child.parent, child.diff, child.linked) == (ROOT, DEEPER, True)
    assert runs.view().best.config == CHILD


def test_a_config_whose_every_link_is_false_is_never_accepted():
    runs = Runs()
    runs.default_verified()
    for author in (ALICE, BOB, BOB):
        runs.add(CHILD, 500_000, author, diff={"depth": 7})  # ROOT plus this diff is not CHILD
    child = stats_of(runs.view(), CHILD)
    assert child.verified and not child.linked and not child.accepted
    assert runs.view().best.config == ROOT


def test_a_lucky_run_claiming_to_be_a_replication_is_still_the_discovery():
    runs = Runs()
    runs.default_verified()
    lucky = runs.add(CHILD, 900_000, replicates=b"\x99" * 32)  # points at no real run
    runs.add(CHILD, 1_000_000, BOB, replicates=lucky.id)
    child = stats_of(runs.view(), CHILD)
    assert child.discovery == lucky.id and child.evidence_runs == 1 and math.isclose(child.evidence_mean, 1.0)


def child_of(diff: dict) -> str:
    return config_hash(apply(SMALL, diff))


def test_unverified_configs_that_probably_beat_the_best_are_candidates_best_first():
    runs = Runs()
    runs.default_verified()
    for depth, val_bpb in ((7, 950_000), (8, 900_000), (9, 1_010_000), (10, 999_000)):
        runs.add(child_of({"depth": depth}), val_bpb, diff={"depth": depth})
    runs.add("1" * 64, 800_000)  # ROOT plus its diff is not this config: never worth a re-run
    candidates = [stats.config for stats in runs.view().candidates]
    assert candidates == [child_of({"depth": 8}), child_of({"depth": 7})]


def test_sigma_pools_seed_noise_across_configs_and_never_falls_below_the_floor():
    runs = Runs()
    runs.default_verified()
    runs.add(CHILD, 1_000_000)
    runs.add(CHILD, 1_020_000)
    runs.add(CHILD, None)  # failures carry no noise
    view = runs.view()
    # squares: 0 from the agreeing defaults, 2 * 10_000**2 from the child; 2 degrees of freedom
    assert view.sigma_df == 2
    assert math.isclose(view.sigma, 10_000 / UBPB)
    high_floor = dataclasses.replace(POLICY, sigma_floor_ubpb=50_000)
    assert runs.view(high_floor).sigma == 50_000 / UBPB


def test_a_sigma_prior_at_the_floor_gives_way_to_a_quiet_track_s_own_noise():
    prior = Policy(min_runs=2, min_authors=1, sigma_floor_ubpb=2000, **NEW_SWARM_NOISE)
    df0 = prior.sigma_prior_df
    runs = Runs()
    runs.default_verified()  # two agreeing runs: a lucky estimate of zero noise
    assert math.isclose(runs.view(prior).sigma, FLOOR * math.sqrt(df0 / (df0 + 1)))  # the prior holds
    for i in range(30):  # seed noise of 700 micro-bpb, a third of the floor
        runs.add(ROOT, 1_000_000 + (700 if i % 2 else -700), (ALICE, BOB)[i % 2])
    squares = sum((v - 1_000_000) ** 2 for v in [1_000_000] * 2 + [1_000_700, 999_300] * 15)
    view = runs.view(prior)
    assert view.sigma_df == 31
    assert math.isclose(view.sigma, math.sqrt((df0 * 2000**2 + squares) / (df0 + 31)) / UBPB)
    assert view.sigma < 0.5 * FLOOR and runs.view().sigma == FLOOR  # the hard floor keeps it at 0.002


def test_one_member_s_wild_runs_move_sigma_and_the_best_only_by_its_share():
    policy = Policy(min_runs=4, min_authors=2, sigma_floor_ubpb=2000, **NEW_SWARM_NOISE)
    runs = Runs()
    honest = (ALICE, BOB, CAROL)
    for i, offset in enumerate((-2000, 1500, 2500, -1000, 0, -2500, 1000, 2000, -1500, 500, -500, 3000)):
        runs.add(ROOT, 1_000_000 + offset, honest[i % 3])
    for i, offset in enumerate((0, -1500, 2000, -500, 1000, 0)):
        runs.add(CHILD, 970_000 + offset, honest[i % 3])
    before = runs.view(policy)
    assert before.best.config == CHILD and before.sigma < 1.5 * FLOOR
    for i in range(6):  # one member's six runs of the verified default, at the ends of the policy's range
        runs.add(ROOT, (100_000, 19_900_000)[i % 2], MALLORY)
    after = runs.view(policy)
    assert after.sigma < 2 * before.sigma and after.best.config == CHILD
    assert abs(stats_of(after, ROOT).estimate - stats_of(before, ROOT).estimate) < FLOOR
    assert runs.view(dataclasses.replace(policy, sigma_prior_df=0, clip_floors=0)).sigma > 1.0  # the first rule


def test_tracks_are_assessed_apart_and_hypotheses_are_ignored():
    runs = Runs()
    runs.default_verified()
    runs.add(ROOT, 800_000, track=OTHER_TRACK.to_wire())
    idea = sign(ALICE, "hypothesis", hypothesis_body(), NOW)
    views = assess([*runs.records, idea], POLICY)
    assert set(views) == {TRACK.key, OTHER_TRACK.key}
    assert views[TRACK.key].best.mean == 1.0
    assert views[OTHER_TRACK.key].best is None


def rich_record_set() -> list[Record]:
    runs = Runs()
    runs.default_verified()
    discovery = runs.add(CHILD, 990_000)
    runs.add(CHILD, 991_000, BOB, replicates=discovery.id)
    runs.add(CHILD, 989_000, replicates=discovery.id)
    runs.add(CHILD, None, BOB)
    runs.add(GRANDCHILD, 950_000, parent=CHILD, diff=GRANDCHILD_DIFF)
    runs.add("1" * 64, 950_000, parent=CHILD)
    runs.add("2" * 64, 950_000, parent="3" * 64)
    runs.add("3" * 64, 950_000, parent="2" * 64)
    runs.add("4" * 64, 995_000, BOB, track=OTHER_TRACK.to_wire())
    return [*runs.records, sign(BOB, "hypothesis", hypothesis_body(), NOW)]


RICH = rich_record_set()
EXPECTED = assess(RICH, POLICY)


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False), st.lists(st.sampled_from(RICH), max_size=len(RICH) * 2))
def test_shuffled_and_duplicated_input_gives_the_identical_answer(rng, duplicates):
    records = RICH + duplicates
    rng.shuffle(records)
    assert assess(records, POLICY) == EXPECTED
    assert assess(iter(records), POLICY) == EXPECTED


def test_derivations_shared_across_a_growing_record_set_give_the_same_views():
    derivations = {}
    for prefix in range(1, len(RICH) + 1):
        assert assess(RICH[:prefix], POLICY, derivations) == assess(RICH[:prefix], POLICY)
    assert assess(list(reversed(RICH)), POLICY, derivations) == EXPECTED
    invalid = Run(b"\x05" * 32, NOW, ALICE.peer_id, TRACK, "5" * 64, ROOT, {"no_such_knob": 1}, "ok", UBPB, None)
    for _ in range(2):  # the second time the invalid diff is remembered, not re-applied
        assert not stats_of(assess([*RICH, invalid], POLICY, derivations)[TRACK.key], "5" * 64).linked
    assert None in derivations.values()


def test_the_rich_record_set_has_an_answer_worth_comparing():
    view = EXPECTED[TRACK.key]
    assert view.best.config == CHILD
    assert [stats.config for stats in view.candidates] == [GRANDCHILD]  # the falsely linked ones never are


def lineage_of(*links: tuple[str, str, dict]) -> Lineage:
    """A Lineage over one run per (config, parent, diff) link, in the order given."""
    runs = [Run(bytes([n]) * 32, n, ALICE.peer_id, TRACK, config, parent, diff, "ok", UBPB, None)
            for n, (config, parent, diff) in enumerate(links)]  # fmt: skip
    return Lineage(runs)


def test_lineage_rebuilds_a_config_from_its_chain_of_diffs():
    child = apply(SMALL, {"depth": 6})
    grandchild = apply(child, {"matrix_lr": 0.05})
    links = lineage_of(
        (config_hash(child), ROOT, {"depth": 6}),
        (config_hash(grandchild), config_hash(child), {"matrix_lr": 0.05}),
    )
    assert links.resolve(config_hash(grandchild)) == grandchild
    assert lineage_of().resolve(ROOT) == SMALL


def test_lineage_refuses_a_link_whose_diff_does_not_produce_its_hash():
    child_hash = config_hash(apply(SMALL, {"depth": 6}))
    assert lineage_of((child_hash, ROOT, {"depth": 7})).resolve(child_hash) is None


def test_lineage_refuses_an_orphan_and_a_cycle():
    assert lineage_of().resolve("a" * 64) is None
    assert lineage_of(("a" * 64, "b" * 64, {}), ("b" * 64, "a" * 64, {})).resolve("a" * 64) is None


def test_nothing_is_accepted_on_a_discovery_run_alone():
    runs = Runs()
    runs.default_verified()
    runs.add(CHILD, 900_000)  # fifty sigma better, but one run: the discovery
    view = runs.view(Policy(min_runs=1, min_authors=1))
    assert view.best.config == ROOT and not stats_of(view, CHILD).accepted


def test_descendants_that_change_nothing_verify_a_large_effect_without_a_re_run():
    policy = Policy(min_runs=4, min_authors=2, sigma_floor_ubpb=2000)
    large, small = Runs(), Runs()
    for runs, lead in ((large, 20_000), (small, 3_000)):  # ten sigma and one and a half
        runs.default_verified()
        runs.default_verified()
        runs.add(CHILD, 1_000_000 - lead)  # the discovery: never its own evidence
        for i, author in enumerate((BOB, ALICE, BOB)):  # explorations from it that change nothing
            diff = {"matrix_lr": 0.05 + 0.01 * i}
            runs.add(config_hash(apply(apply(SMALL, DEEPER), diff)), 1_000_000 - lead, author, parent=CHILD, diff=diff)
    child = stats_of(large.view(policy), CHILD)
    assert child.runs == 1 and child.pooled_runs == 4 and child.evidence_contributors == {ALICE.peer_id, BOB.peer_id}
    assert large.view(policy).best.config == CHILD
    assert small.view(policy).best.config == ROOT  # the same evidence for a lead within the noise is not enough


def test_a_large_effect_is_accepted_at_its_first_replication_and_a_modest_one_waits_for_min_runs():
    policy = Policy(min_runs=4, min_authors=1, sigma_floor_ubpb=2000)
    large, modest = Runs(), Runs()
    for runs, lead in ((large, 20_000), (modest, 8_000)):  # ten sigma and four
        runs.default_verified()
        runs.default_verified()
        discovery = runs.add(CHILD, 1_000_000 - lead)
        runs.add(CHILD, 1_000_000 - lead, replicates=discovery.id)
    child = stats_of(large.view(policy), CHILD)
    assert child.pooled_runs == 2 and child.accepted and child.confidence >= ACCEPT_EARLY_POSTERIOR
    child = stats_of(modest.view(policy), CHILD)
    assert ACCEPT_POSTERIOR <= child.confidence < ACCEPT_EARLY_POSTERIOR and not child.accepted
    for _ in range(2):  # the same lead, now backed by min_runs runs
        modest.add(CHILD, 1_000_000 - 8_000, replicates=discovery.id)
    assert modest.view(policy).best.config == CHILD


def test_each_descendant_that_changes_nothing_raises_its_parent_s_posterior():
    runs = Runs()
    runs.default_verified()
    discovery = runs.add(CHILD, 993_000)
    runs.add(CHILD, 994_500, BOB, replicates=discovery.id)
    confidences = [stats_of(runs.view(), CHILD).confidence]
    for i in range(6):
        diff = {"matrix_lr": 0.05 + 0.01 * i}
        runs.add(config_hash(apply(apply(SMALL, DEEPER), diff)), 994_000, BOB, parent=CHILD, diff=diff)
        confidences.append(stats_of(runs.view(), CHILD).confidence)
    assert confidences == sorted(confidences) and confidences[0] < ACCEPT_POSTERIOR <= confidences[-1]
    assert runs.view().best.config == CHILD


def test_a_chain_explored_ahead_of_verification_is_accepted_at_its_tip_against_the_last_accepted_config():
    grandchild_diff = {"depth": 7}
    grandchild = config_hash(apply(apply(SMALL, DEEPER), grandchild_diff))
    runs = Runs()
    runs.default_verified()
    runs.add(CHILD, 999_000)  # one run: never verified
    for _ in range(3):
        runs.add(grandchild, 990_000, parent=CHILD, diff=grandchild_diff)
    view = runs.view()
    assert not stats_of(view, CHILD).accepted
    assert view.best.config == grandchild and view.best.reference == ROOT


def test_the_frontier_follows_the_best_estimate_with_leads_shrunk_toward_the_parent():
    runs = Runs()
    runs.default_verified()
    runs.add(CHILD, 994_000)  # one run leading by 3 sigma: its estimate keeps part of the lead
    view = runs.view()
    assert view.best.config == ROOT and view.frontier.config == CHILD
    assert 0.994 < stats_of(view, CHILD).estimate < 0.999
    runs.add(CHILD, 1_010_000)  # the second run takes the lead back: the default is the frontier again
    assert runs.view().frontier.config == ROOT


JUMP = {"depth": 6, "matrix_lr": 0.05, "embedding_lr": 0.3, "unembedding_lr": 0.008, "scalar_lr": 0.25,
        "weight_decay": 0.1, "warmdown_ratio": 0.6, "final_lr_frac": 0.1, "aspect_ratio": 48}  # fmt: skip


def test_a_many_knob_jump_that_ties_its_reference_is_never_accepted():
    runs = Runs()
    for _ in range(6):
        runs.default_verified()
    jump = config_hash(apply(SMALL, JUMP))
    for i in range(8):  # as good as the default, to within a tenth of the floor
        runs.add(jump, 1_000_000 + (100 if i % 2 else -100), ALICE if i % 2 else BOB, diff=JUMP)
    stats = {s.config: s for s in runs.view().leaderboard}[jump]
    assert stats.lead is not None and not stats.accepted
    assert runs.view().best.config == ROOT


def test_a_many_knob_jump_that_clearly_leads_is_accepted():
    runs = Runs()
    for _ in range(6):
        runs.default_verified()
    jump = config_hash(apply(SMALL, JUMP))
    for i in range(4):
        runs.add(jump, 1_000_000 - CLEAR_LEAD, ALICE if i % 2 else BOB, diff=JUMP)
    assert runs.view().best.config == jump
