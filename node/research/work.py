"""What to run next: the baseline, a verification, a noise measurement, or an exploration.

A deterministic function of the ledger's view of the track, the live claims, the weights and a
seeded random generator, so a node's choices can be replayed from its state.
"""

import random
from dataclasses import dataclass

from protocol.acceptance import K_ACCEPT, ConfigStats, TrackView, lead_z
from protocol.policy import Policy

# Below this many degrees of freedom the pooled noise estimate is too rough to lean on.
NOISE_DF_TARGET = 6
MAX_RUNS_FACTOR = 2  # an unaccepted frontier or a narrowly accepted best gets at most this many times min_runs runs
CONFIRM_MARGIN = 2.0  # standard errors above K_ACCEPT past which an accepted best counts as a clear winner


@dataclass(frozen=True)
class WorkWeights:
    """Relative weights of the kinds of work once the baseline is measured (the `[work]` settings)."""

    verify: float = 3.0
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
    honest claim. Runs toward acceptance (of the default, a narrowly accepted best, the frontier)
    share the work with exploration by the weights.
    """
    stats = {s.config: s for s in view.leaderboard} if view else {}
    baseline = stats.get(root)
    if baseline is None or baseline.runs == 0:
        return Work("baseline")
    frontier = view.frontier
    explore = Work("explore", frontier)
    if len(stats) == 1:
        return explore  # nothing explored yet: the default's other runs can come alongside
    needing_runs = [
        s for s in _toward_acceptance(view, baseline, frontier, policy) if _may_run(s, me, claimed_by_others, policy)
    ]
    options: list[tuple[float, Work]] = [(weights.explore, explore)]
    if needing_runs:
        target = needing_runs[0]
        options.append((weights.verify, Work("baseline" if target is baseline else "verify", target)))
    if view.best is not None and view.sigma_df < NOISE_DF_TARGET:
        options.append((weights.noise, Work("noise", view.best)))
    options = [(weight, work) for weight, work in options if weight > 0] or [(1.0, explore)]
    return rng.choices([work for _, work in options], weights=[weight for weight, _ in options])[0]


def _toward_acceptance(
    view: TrackView, baseline: ConfigStats, frontier: ConfigStats, policy: Policy
) -> list[ConfigStats]:
    """Configs whose runs bring the frontier closer to acceptance, most needed first.

    A config whose verification has begun is run to ``min_runs`` whatever its runs show: stopping
    when they disappoint would keep only the lucky ones, and their claims would be too large.
    """
    needed = []
    if not baseline.verified:
        needed.append(baseline)  # nothing is accepted before the default is
    best = view.best
    if best is not None and not best.is_default and _worth_confirming(view, best, policy):
        needed.append(best)
    if frontier is not baseline and not frontier.accepted and frontier.runs < MAX_RUNS_FACTOR * policy.min_runs:
        needed.append(frontier)
    return needed


def _worth_confirming(view: TrackView, best: ConfigStats, policy: Policy) -> bool:
    """Whether more runs of the accepted best may still change its verdict or its claim much.

    A best accepted early or by a narrow margin is re-run up to MAX_RUNS_FACTOR x ``min_runs``: the
    runs that got it accepted were the lucky side of its noise, and fresh ones pull its claim back
    to its true size (or withdraw it). A clear winner with ``min_runs`` runs is left alone.
    """
    if best.runs < policy.min_runs:
        return True
    reference = next((s for s in view.leaderboard if s.config == best.reference), None)
    narrow = reference is not None and lead_z(best, reference, view.sigma) < K_ACCEPT + CONFIRM_MARGIN
    return narrow and best.runs < MAX_RUNS_FACTOR * policy.min_runs


def _may_run(stats: ConfigStats, me: str, claimed_by_others: set[str], policy: Policy) -> bool:
    if stats.config in claimed_by_others:
        return False
    return _needs_my_runs(stats, me, policy) if stats.is_default else _may_verify(stats, me, policy)


def _may_verify(candidate: ConfigStats, me: str, policy: Policy) -> bool:
    """Verification is by others, except in a swarm whose policy lets one author verify alone."""
    return policy.min_authors == 1 or me not in candidate.contributors


def _needs_my_runs(stats: ConfigStats | None, me: str, policy: Policy) -> bool:
    """Whether a run by us would move this config toward verification."""
    if stats is None:
        return True
    if stats.verified:
        return False
    missing_authors = policy.min_authors - stats.authors
    if missing_authors > 0 and me in stats.contributors:
        # our runs can't supply the missing authors; leave room for them unless runs are short too
        return stats.runs + missing_authors < policy.min_runs
    return True
