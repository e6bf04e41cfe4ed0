"""What to run next: the baseline, a verification, a noise measurement, or an exploration.

A deterministic function of the ledger's view of the track, the live claims, the weights and a
seeded random generator, so a node's choices can be replayed from its state.
"""

import random
from dataclasses import dataclass

from protocol.acceptance import ConfigStats, TrackView
from protocol.policy import Policy

# Below this many degrees of freedom the pooled noise estimate is too rough to lean on.
NOISE_DF_TARGET = 6


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
    """The next kind of work on a track whose default config hashes to ``root``."""
    stats = {s.config: s for s in view.leaderboard} if view else {}
    if _needs_my_runs(stats.get(root), me, policy):
        return Work("baseline")
    explore = Work("explore", view.best or stats[root])
    options: list[tuple[float, Work]] = [(weights.explore, explore)]
    candidates = [c for c in view.candidates if c.config not in claimed_by_others and _may_verify(c, me, policy)]
    if candidates:
        options.append((weights.verify, Work("verify", candidates[0])))
    if view.best is not None and view.sigma_df < NOISE_DF_TARGET:
        options.append((weights.noise, Work("noise", view.best)))
    options = [(weight, work) for weight, work in options if weight > 0] or [(1.0, explore)]
    return rng.choices([work for _, work in options], weights=[weight for weight, _ in options])[0]


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
