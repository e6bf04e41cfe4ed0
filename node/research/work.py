"""What to run next: the baseline, a verification, a noise measurement, or an exploration.

A deterministic function of the ledger's view of the track, the live claims, the weights and a
seeded random generator, so a node's choices can be replayed from its state.

Exploring from the frontier is also verification: most changes do nothing, so most children's runs
are runs of the frontier (protocol/evidence.py). A plain re-run is spent only where its value of
information beats an exploration's: where one more run may flip a verdict worth more than what a
new change is expected to find.
"""

import math
import random
from dataclasses import dataclass

import numpy as np

from protocol.acceptance import ConfigStats, Run, TrackView, accepts
from protocol.evidence import Prior, edge_posterior
from protocol.policy import Policy

# Below this many degrees of freedom the pooled noise estimate is too rough to lean on. A swarm's
# first baselines, one per node, already give a few; beyond them a noise run costs an exploration, and
# the policy's floor (a hard one, or a prior of several degrees of freedom) keeps a rough estimate sane.
NOISE_DF_TARGET = 3
# A config whose own runs beat the best's evidence by this many sigmas gets runs of its own until
# min_runs back it, on a track where an exploration seldom verifies the config it starts from (less
# than EXPLORING_VERIFIES of the time). Exploring verifies a config only through children whose change
# did nothing; a global sampler's jumps across many knobs (node/research/sampler_proposer.py) almost
# never do, so its finds would otherwise wait while the frontier runs ahead of the accepted best.
# Where changes mostly do nothing (one knob at a time), exploring verifies for free and these re-runs
# only cost explorations: at a fitted null share near 0.5 (bench/swarm_sim's easy regime) 2.6 sigma.
PROMISING_SIGMAS = 2.0
EXPLORING_VERIFIES = 0.1
# A run that was stopped says nothing about its config; a crash, timeout or divergence does.
NOT_A_VERDICT = "killed"
# Three-point Gauss-Hermite rule over the next run's outcome: offsets in predictive sd, and weights.
NEXT_RUN = ((-math.sqrt(3), 1 / 6), (0.0, 2 / 3), (math.sqrt(3), 1 / 6))


@dataclass(frozen=True)
class WorkWeights:
    """Relative weights of exploring and measuring noise while the noise is rough (the `[work]` settings)."""

    explore: float = 5.0
    noise: float = 1.0


@dataclass(frozen=True)
class Work:
    kind: str  # baseline, verify, noise, explore
    target: ConfigStats | None = None  # the config re-run by verify and noise, or the parent explore starts from

    @property
    def is_replication(self) -> bool:
        return self.kind in ("verify", "noise")


def choose_work(
    view: TrackView | None,
    root: str,
    me: str,
    claimed_by_others: set[str],
    policy: Policy,
    weights: WorkWeights,
    rng: random.Random,
) -> Work:
    """The next kind of work on a track whose default config hashes to ``root``.

    Exploration follows the frontier (the config with the best estimate, verified or not), so a
    step up a chain of improvements need not wait for verification; the accepted best stays the
    honest claim. A verification runs when it is worth more than an exploration; noise runs share
    the work with exploration by the weights while the track's seed noise is still rough. While
    nothing is accepted the default is re-run until verified: explorations verify it only through
    children whose change did nothing, and a track whose first children all moved would otherwise
    never accept anything, with no reference left to verify others against.
    """
    stats = {s.config: s for s in view.leaderboard} if view else {}
    baseline = stats.get(root)
    if baseline is None or baseline.runs == 0:
        return Work("baseline")
    if view.best is None and _root_needs(baseline, me, claimed_by_others, policy):
        return Work("verify", baseline)
    explore = Work("explore", view.frontier)
    worth = _worth_verifying(view, stats, me, claimed_by_others, policy)
    if worth is not None:
        return worth
    promising = _promising(view, me, claimed_by_others, policy)
    if promising is not None and _exploring_verifies(view) < EXPLORING_VERIFIES:
        return Work("verify", promising)
    options = [(weights.explore, explore)]
    if view.best is not None and view.sigma_df < NOISE_DF_TARGET and _may_run(view.best, me, claimed_by_others, policy):
        options.append((weights.noise, Work("noise", view.best)))
    options = [(weight, work) for weight, work in options if weight > 0] or [(1.0, explore)]
    return rng.choices([work for _, work in options], weights=[weight for weight, _ in options])[0]


def _worth_verifying(
    view: TrackView, stats: dict[str, ConfigStats], me: str, claimed_by_others: set[str], policy: Policy
) -> Work | None:
    """A re-run of the frontier or the best, where it is worth more than an exploration.

    An exploration from the frontier brings a run of the frontier itself with the probability that
    its change does nothing, so a re-run adds only the rest of a run's information; it pays when that
    share of its value of information exceeds the gain a new change is expected to bring.
    """
    prior = view.prior
    if prior is None:
        return None
    expected_find = prior.helps * prior.help_scale * math.sqrt(2 / math.pi)  # a half-normal gain's mean
    best_estimate = view.best.estimate if view.best is not None else math.inf
    frontier, best = view.frontier, view.best
    for target in (frontier, best) if best is not frontier else (frontier,):
        if target is None or target.is_default or not _may_run(target, me, claimed_by_others, policy):
            continue
        reference = stats.get(target.reference) if target.reference else None
        if reference is None or reference.estimate is None or target.estimate is None:
            continue
        # accepting a config moves the claim to it from the best; withdrawing one moves it back to its reference
        stake = abs((best_estimate if not target.accepted else reference.estimate) - target.estimate)
        value = stake * _chance_of_flip(target, me, view.sigma, prior, policy)
        if (1 - prior.null) * value > expected_find:
            return Work("verify", target)
    return None


def _promising(view: TrackView, me: str, claimed_by_others: set[str], policy: Policy) -> ConfigStats | None:
    """The unaccepted config on a true lineage whose own mean beats the best's evidence by
    PROMISING_SIGMAS, with fewer than min_runs runs and open to ``me``: the best-looking one."""
    best = view.best
    if best is None:
        return None
    bar = (best.evidence_mean if best.evidence_mean is not None else best.mean) - PROMISING_SIGMAS * view.sigma
    found = [
        s
        for s in view.leaderboard
        if not s.accepted and s.reference is not None and s.mean is not None and s.mean < bar
        and s.runs < policy.min_runs and _may_run(s, me, claimed_by_others, policy)
    ]  # fmt: skip
    return min(found, key=lambda s: (s.mean, s.config), default=None)


def _exploring_verifies(view: TrackView) -> float:
    """The chance that an exploration brings a run of the config it starts from: that its change does
    nothing, for a change of as many knobs as the track's explored configs set (the median)."""
    knobs = sorted(len(s.diff) for s in view.leaderboard if not s.is_default)
    if view.prior is None or not knobs:
        return 1.0
    return float(view.prior.shares(np.array([knobs[len(knobs) // 2]]))[0, 0])


def _chance_of_flip(target: ConfigStats, me: str, sigma: float, prior: Prior, policy: Policy) -> float:
    """The probability that one more run by ``me`` of ``target`` turns its verdict around."""
    if target.lead is None:
        return 0.0
    lead, evidence_variance, reference_variance = target.lead
    run_precision = 1 / sigma**2
    new_variance = 1 / (1 / evidence_variance + run_precision)
    authors = len(target.evidence_contributors | {me})
    predictive_sd = math.sqrt(sigma**2 + evidence_variance + reference_variance)
    # the new run's lead over the reference at each point of the rule, pooled with the evidence so far
    new_leads = [
        new_variance * (lead / evidence_variance + (lead + offset * predictive_sd) * run_precision)
        for offset, _ in NEXT_RUN
    ]
    confidences = edge_posterior(new_leads, [new_variance + reference_variance] * len(NEXT_RUN), prior).helps
    return sum(
        weight
        for (_, weight), confidence in zip(NEXT_RUN, confidences.tolist(), strict=True)
        if accepts(confidence, target.pooled_runs + 1, authors, policy) != target.accepted
    )


def _root_needs(root: ConfigStats, me: str, claimed_by_others: set[str], policy: Policy) -> bool:
    """Whether a run of the unverified default by ``me`` brings it closer to verified."""
    if root.config in claimed_by_others:
        return False
    authors = root.evidence_contributors
    if len(authors) < policy.min_authors:
        return me not in authors  # only a new author's run counts towards min_authors
    return root.pooled_runs < policy.min_runs


def _may_run(stats: ConfigStats, me: str, claimed_by_others: set[str], policy: Policy) -> bool:
    """Not claimed by others, and, unless one author may verify alone, not already ours."""
    if stats.config in claimed_by_others:
        return False
    return policy.min_authors == 1 or me not in stats.contributors


def tried_configs(runs: list[Run], me: str, policy: Policy) -> set[str]:
    """Configs closed to exploration: run to an ok result, or failed for this node or for ``min_authors`` members.

    One member's failure reports alone never close a config: a member who reports crashes for every
    neighbour of the best would otherwise leave the others nothing to explore until it is revoked.
    """
    closed: set[str] = set()
    failed_by: dict[str, set[str]] = {}
    for run in runs:
        if run.outcome == "ok":
            closed.add(run.config)
        elif run.outcome != NOT_A_VERDICT:
            failed_by.setdefault(run.config, set()).add(run.author)
    trusted = max(policy.min_authors, 2)  # a solo swarm's one author is this node, and counts below
    closed.update(config for config, authors in failed_by.items() if me in authors or len(authors) >= trusted)
    return closed


def teaches(stats: ConfigStats, tried: set[str]) -> bool:
    """Whether a config's result is something to learn from: an ok mean, or failures that closed it
    (``tried_configs``); one member's crash reports alone teach nothing."""
    return stats.mean is not None or stats.config in tried
