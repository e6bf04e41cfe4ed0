import random

from protocol.evidence import Node, Prior, edge_posterior, fit_prior, pool

SIGMA = 0.002
PRIOR = Prior(0.86, 0.034, 0.106, 12 * SIGMA, 20 * SIGMA)


def tree(runs: dict[str, list[float]], parents: dict[str, str | None]) -> dict[str, Node]:
    return {
        config: Node(
            [(value, f"{config}-author-{i}") for i, value in enumerate(values)],
            parents[config],
            parents[config] is not None,
        )
        for config, values in runs.items()
    }


def test_a_lead_within_noise_is_most_probably_nothing_and_a_large_one_helps():
    small = edge_posterior(-0.5 * SIGMA, 2 * SIGMA**2, PRIOR)
    large = edge_posterior(-15 * SIGMA, 2 * SIGMA**2, PRIOR)
    assert small.null > 0.8 and large.helps > 0.999
    assert -15 * SIGMA < large.effect < -13 * SIGMA  # shrunk a little toward nothing, not to it
    assert abs(small.effect) < 0.2 * SIGMA


def test_descendants_that_change_nothing_are_evidence_for_their_parent():
    parents = {"root": None, "a": "root", "b": "a", "c": "a", "d": "a"}
    nodes = tree({"root": [1.0], "a": [0.97], "b": [0.9702], "c": [0.9699], "d": [0.9701]}, parents)
    pool(nodes, list(parents), SIGMA, PRIOR)
    alone = tree({"root": [1.0], "a": [0.97]}, {"root": None, "a": "root"})
    pool(alone, ["root", "a"], SIGMA, PRIOR)
    assert nodes["a"].evidence.precision > 2.5 / SIGMA**2  # three children's runs, its discovery left out
    assert alone["a"].evidence.precision == 0  # a lone discovery run is no evidence for its own config
    assert len(nodes["a"].evidence_authors) == 3


def test_a_child_that_hurts_does_not_drag_its_parent_down():
    parents = {"root": None, "a": "root", "bad": "a", "b": "a"}
    nodes = tree({"root": [1.0], "a": [1.0, 1.0], "bad": [1.1], "b": [1.0]}, parents)
    pool(nodes, list(parents), SIGMA, PRIOR)
    assert nodes["bad"].weight < 1e-6 and nodes["b"].weight > 0.8
    assert abs(nodes["a"].subtree.mean - 1.0) < 0.1 * SIGMA


def test_a_jump_across_many_knobs_never_passes_for_its_parent():
    parents = {"root": None, "a": "root", "near": "a", "jump": "a"}
    nodes = tree({"root": [1.0], "a": [0.99, 0.99], "near": [0.9901], "jump": [0.9899]}, parents)
    nodes["jump"].knobs = 10  # a global sampler's point, ten knobs away from its parent
    half_null = Prior(0.5, 0.1, 0.4, 12 * SIGMA, 20 * SIGMA)  # half of one-knob changes do nothing
    pool(nodes, list(parents), SIGMA, half_null)
    assert nodes["near"].weight > 0.8 and nodes["jump"].weight < 0.05  # 0.5 ** 10 before the runs
    one, ten = edge_posterior([-0.5 * SIGMA] * 2, [2 * SIGMA**2] * 2, PRIOR, [1, 10]).null.tolist()
    assert one > 0.8 and ten < one - 0.1


def test_the_shares_of_a_many_knob_change_keep_the_ratio_of_gain_to_harm():
    null, helps, hurts = PRIOR.shares([1, 3]).T.tolist()[1]
    assert abs(null - PRIOR.null**3) < 1e-12 and abs(null + helps + hurts - 1) < 1e-12
    assert abs(helps / hurts - PRIOR.helps / PRIOR.hurts) < 1e-12
    assert PRIOR.shares([1]).ravel().tolist() == [PRIOR.null, PRIOR.helps, PRIOR.hurts]  # one knob: the prior


def test_the_prior_fitted_to_edges_finds_how_often_changes_do_nothing():
    rng = random.Random(0)
    leads = []
    for _ in range(400):
        effect = 0.0 if rng.random() < 0.8 else rng.uniform(5, 30) * SIGMA
        leads.append((effect + rng.gauss(0, SIGMA * 2**0.5), 2 * SIGMA**2))
    prior = fit_prior(leads, SIGMA)
    assert 0.72 < prior.null < 0.88 and prior.hurts > 0.12 and prior.helps < 0.05
    assert prior.help_scale >= SIGMA and prior.hurt_scale > 5 * SIGMA
