"""The acceptance rule: from a set of result records to each track's best config.

A pure function of the set (order and duplicates don't matter; ties go by hash), so every node
holding the same records names the same best. The statistics, per track:

- verified: a config with at least ``min_runs`` ok runs from at least ``min_authors`` authors.
- sigma: pooled seed noise of the verified configs, never below the policy's floor.
- lineage: a record's claim that its config is ``parent`` plus ``diff`` is re-hashed, not trusted;
  the earliest true link is the config's lineage.
- discovery run: a config's earliest ok run. It was picked out of many explorations because it
  looked good (the winner's curse), so it is never evidence for its own config: a config's
  *evidence* is its other ok runs (all of them for a profile default, and the lone run of a
  config that has only one, which only a policy of ``min_runs = 1`` accepts).
- accepted: a default config once verified; any other config once verified, with a true lineage
  to an accepted parent, and with evidence beating that parent by more than K_ACCEPT standard
  errors.
- best: the accepted config with the lowest evidence mean.
- candidate: an unverified config whose runs beat the best by more than K_CANDIDATE standard
  errors; verifiers re-run these first. Screening is deliberately lenient and acceptance strict:
  bench/acceptance.py shows the pair keeps false promotions under 1% while finding a real
  3-sigma gain within 4 runs more than 90% of the time.
"""

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from protocol.config import ROOTS, Config, apply, config_hash, default_config
from protocol.errors import ProtocolError
from protocol.metrics import UBPB
from protocol.policy import Policy
from protocol.records import Record
from protocol.track import Track

K_CANDIDATE = 0.5  # standard errors a candidate must lead the best by: lenient, replication is cheap
K_ACCEPT = 2.1  # standard errors replication evidence must lead the parent by: strict
SHRINK_RUNS = 2  # a config's estimate keeps runs / (runs + SHRINK_RUNS) of its lead over its parent


def bpb(ubpb: int | None) -> float | None:
    """A record's integer micro-bpb as bits per byte (None stays None)."""
    return ubpb / UBPB if ubpb is not None else None


@dataclass(frozen=True)
class Run:
    """The fields of a result record that the rule reads."""

    id: bytes
    ts_ms: int
    author: str
    track: Track
    config: str
    parent: str
    diff: Mapping[str, Any]
    outcome: str
    val_bpb_ubpb: int | None
    replicates: bytes | None

    @classmethod
    def from_record(cls, record: Record) -> "Run":
        body = record.body
        return cls(
            record.id,
            record.ts_ms,
            record.author,
            record.track,
            body["config"],
            body["parent"],
            body["diff"],
            body["outcome"],
            body["val_bpb"],
            body["replicates"],
        )


@dataclass(frozen=True)
class ConfigStats:
    config: str
    parent: str
    diff: Mapping[str, Any]
    runs: int  # ok runs
    failures: int  # runs that crashed, timed out, diverged or were killed
    authors: int
    mean: float | None  # bpb over all ok runs
    evidence_runs: int
    evidence_mean: float | None
    discovery: bytes | None
    verified: bool
    accepted: bool = False
    contributors: frozenset[str] = frozenset()  # authors of its ok runs
    linked: bool = True  # a chain of true (parent, diff) links leads back to a default config
    reference: str | None = None  # the accepted config its evidence was tested against (None for a default)
    estimate: float | None = None  # best estimate of its true bpb: its runs, shrunk toward its parent's estimate

    @property
    def is_default(self) -> bool:
        return self.config in ROOTS


@dataclass(frozen=True)
class TrackView:
    track: Track
    sigma: float  # bpb
    sigma_df: int  # degrees of freedom behind the pooled estimate; 0 means the floor alone
    best: ConfigStats | None
    leaderboard: tuple[ConfigStats, ...]  # every config, best evidence first
    candidates: tuple[ConfigStats, ...] = field(default=())
    frontier: ConfigStats | None = None  # the config with the best estimate: where exploration goes on


Derivations = dict[tuple[str, tuple], tuple[Config, str] | None]  # (parent, typed diff items) -> (config, hash)


def assess(
    runs: Iterable[Run | Record], policy: Policy, derivations: Derivations | None = None
) -> dict[str, TrackView]:
    """Each track's view of the record set, keyed by track key.

    A caller that assesses a growing record set again and again (the swarm simulation) may pass the
    same ``derivations`` dict each time: re-deriving every config from its parent dominates the cost
    otherwise, and a derivation depends only on the parent's hash and the diff, so the views are the same.
    """
    unique: dict[bytes, Run] = {}
    for run in runs:
        if isinstance(run, Record):
            if run.kind != "result":
                continue
            run = Run.from_record(run)
        unique[run.id] = run
    ordered = sorted(unique.values(), key=lambda run: (run.ts_ms, run.id))
    links = Lineage(ordered, derivations)
    by_track: dict[Track, list[Run]] = defaultdict(list)
    for run in ordered:
        by_track[run.track].append(run)
    return {track.key: _assess_track(track, by_track[track], links, policy) for track in sorted(by_track)}


class Lineage:
    """Which (parent, diff) link really produces each config: the earliest one that re-hashes right.

    A record's claim that ``config`` is ``parent`` plus ``diff`` is checked, not trusted, so a
    backdated record with a false link cannot cut a config off from its real parent.
    """

    def __init__(self, ordered: list[Run], derivations: Derivations | None = None) -> None:
        # distinct claims per config, earliest first: many runs repeat the same link
        self._claims: dict[str, dict[tuple[str, tuple], tuple[str, Mapping[str, Any]]]] = defaultdict(dict)
        for run in ordered:
            self._claims[run.config].setdefault((run.parent, tuple(sorted(run.diff.items()))), (run.parent, run.diff))
        self._full: dict[str, Config | None] = {}
        self.link: dict[str, tuple[str, Mapping[str, Any]]] = {}  # config -> its true (parent, diff)
        self._derived: Derivations = {} if derivations is None else derivations

    def resolve(self, config: str) -> Config | None:
        """The full config, or None when no chain of true links leads back to a default."""
        pending, waiting = [config], {config}
        while pending:  # iterative depth-first: lineages can be long
            current = pending[-1]
            if current in ROOTS:
                self._full[current] = default_config(ROOTS[current])
            if current in self._full:
                waiting.discard(pending.pop())
                continue
            parents = (parent for parent, _ in self._claims.get(current, {}).values())
            unresolved = next((p for p in parents if p not in self._full and p not in waiting), None)
            if unresolved is not None:
                pending.append(unresolved)
                waiting.add(unresolved)
                continue
            self._full[current] = self._first_true_link(current)
            waiting.discard(pending.pop())
        return self._full[config]

    def _first_true_link(self, config: str) -> Config | None:
        for (parent, items), (_, diff) in self._claims.get(config, {}).items():
            base = self._full.get(parent)
            if base is None:
                continue
            derived = self._derive(base, parent, items, diff)
            if derived is not None and derived[1] == config:
                self.link[config] = (parent, diff)
                return derived[0]
        return None

    def _derive(self, base: Config, parent: str, items: tuple, diff: Mapping[str, Any]) -> tuple[Config, str] | None:
        """``base`` (the config hashing to ``parent``) plus ``diff``, and its hash; None if the diff is invalid."""
        key = (parent, tuple((name, type(value), value) for name, value in items))  # 1, 1.0 and True differ
        if key not in self._derived:
            try:
                full = apply(base, diff)
            except ProtocolError:
                self._derived[key] = None
            else:
                self._derived[key] = (full, config_hash(full))
        return self._derived[key]


def _assess_track(track: Track, runs: list[Run], links: Lineage, policy: Policy) -> TrackView:
    by_config: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_config[run.config].append(run)
    stats = {config: _config_stats(config, config_runs, links, policy) for config, config_runs in by_config.items()}
    sigma, sigma_df = _pooled_sigma([by_config[c] for c, s in stats.items() if s.verified], policy.sigma_floor_ubpb)
    order = _lineage_order(stats)
    accepted, estimates = _accepted(stats, order, sigma, policy), _estimates(stats, order)
    stats = {
        config: _with_verdict(s, config in accepted, accepted.get(config), estimates.get(config))
        for config, s in stats.items()
    }
    ranked = sorted(stats.values(), key=_rank_key)
    best = next((s for s in ranked if s.accepted), None)
    # ties go to the config with more runs: a child whose lead is within noise does not displace its parent
    frontier = min(
        (s for s in ranked if s.estimate is not None), key=lambda s: (s.estimate, -s.runs, s.config), default=None
    )
    return TrackView(track, sigma, sigma_df, best, tuple(ranked), _candidates(ranked, best, sigma), frontier)


def _pooled_sigma(groups: Iterable[list[Run]], floor_ubpb: int) -> tuple[float, int]:
    # Only verified configs count, so one author alone can neither shrink nor inflate the noise
    # everyone tests against; exact integer sums, so every node gets the same float.
    squares, df = 0, 0
    for group in groups:
        values = [run.val_bpb_ubpb for run in group if run.outcome == "ok"]
        if len(values) >= 2:
            n, total = len(values), sum(values)
            squares += Fraction(n * sum(v * v for v in values) - total * total, n)
            df += n - 1
    pooled_ubpb = math.sqrt(squares / df) if df else 0.0
    return max(float(floor_ubpb), pooled_ubpb) / UBPB, df


def _config_stats(config: str, runs: list[Run], links: Lineage, policy: Policy) -> ConfigStats:
    ok = [run for run in runs if run.outcome == "ok"]
    linked = links.resolve(config) is not None
    # The true link when there is one; otherwise the earliest claim, shown but never accepted.
    parent, diff = links.link.get(config, (config, {}) if config in ROOTS else (runs[0].parent, runs[0].diff))
    # The earliest ok run is the discovery, whatever its ``replicates`` field claims.
    discovery = ok[0] if ok and config not in ROOTS else None
    evidence = [run for run in ok if run is not discovery] if len(ok) > 1 else ok
    contributors = frozenset(run.author for run in ok)
    return ConfigStats(
        config=config,
        parent=parent,
        diff=diff,
        runs=len(ok),
        failures=len(runs) - len(ok),
        authors=len(contributors),
        mean=_mean(ok),
        evidence_runs=len(evidence),
        evidence_mean=_mean(evidence),
        discovery=discovery.id if discovery else None,
        verified=len(ok) >= policy.min_runs and len(contributors) >= policy.min_authors,
        contributors=contributors,
        linked=linked,
    )


def _mean(runs: list[Run]) -> float | None:
    if not runs:
        return None
    return float(Fraction(sum(run.val_bpb_ubpb for run in runs), len(runs) * UBPB))


def _lineage_order(stats: Mapping[str, ConfigStats]) -> list[str]:
    """The configs whose chain of true links reaches a default on this track, parents before children."""
    depth: dict[str, int | None] = {}
    for config in sorted(stats):
        path: list[str] = []
        node, found = config, None
        while node not in depth:
            s = stats[node]
            if node in path or not s.linked or (not s.is_default and s.parent not in stats):
                depth[node] = None  # orphaned, falsely linked, or on a cycle of lying records
                break
            if s.is_default:
                depth[node] = 0
                break
            path.append(node)
            node = s.parent
        found = depth[node]
        for child in reversed(path):
            found = None if found is None else found + 1
            depth[child] = found
    return [config for _, config in sorted((d, c) for c, d in depth.items() if d is not None)]


def _accepted(
    stats: Mapping[str, ConfigStats], order: list[str], sigma: float, policy: Policy
) -> dict[str, str | None]:
    """Accepted configs, each with the accepted config it was tested against (None for a default).

    A config is tested against its nearest accepted ancestor, not only its parent: exploration may
    run ahead of verification along a chain of promising configs, and the chain's tip is accepted
    once its evidence beats the last accepted config on the way, without verifying every step.
    """
    anchor: dict[str, str | None] = {}  # config -> the nearest accepted config on its lineage, itself included
    accepted: dict[str, str | None] = {}
    for config in order:
        s = stats[config]
        if s.is_default:
            anchor[config] = config if s.verified else None
            if s.verified:
                accepted[config] = None
            continue
        reference = anchor[s.parent]
        if (
            reference is not None
            and _early_enough(s, policy)
            and _beats(s, stats[reference], sigma, _k_accept(s, policy))
        ):
            anchor[config], accepted[config] = config, reference
        else:
            anchor[config] = reference
    return accepted


def _estimates(stats: Mapping[str, ConfigStats], order: list[str]) -> dict[str, float]:
    """Each config's best estimate of its true bpb: its parent's estimate plus its own lead, shrunk.

    A config with n ok runs keeps n / (n + SHRINK_RUNS) of its lead over its parent, so one lucky
    run moves the estimate a little and several agreeing runs move it most of the way: exploration
    follows configs that are probably better, not the luckiest single run.
    """
    estimate: dict[str, float] = {}
    for config in order:
        s = stats[config]
        if s.mean is None:
            continue
        if s.is_default:
            estimate[config] = s.mean
        elif s.parent in estimate:
            lead = s.mean - stats[s.parent].mean
            estimate[config] = estimate[s.parent] + lead * s.runs / (s.runs + SHRINK_RUNS)
    return estimate


def _early_enough(stats: ConfigStats, policy: Policy) -> bool:
    """Sequential acceptance: evidence beyond the discovery run, from enough authors, may decide early."""
    return stats.evidence_runs >= 1 and stats.runs >= 2 and stats.authors >= policy.min_authors


def _k_accept(stats: ConfigStats, policy: Policy) -> float:
    """Standard errors the evidence must lead by: K_ACCEPT at ``min_runs`` runs, more with fewer runs.

    An O'Brien-Fleming boundary: the lead needed is about the same size whatever the number of runs,
    so a large effect is accepted after one replication and a small one needs all of them, while
    looking at every run adds little to the error rate of a single test at ``min_runs``.
    """
    full = max(policy.min_runs - 1, 1)  # evidence runs of a config verified with min_runs runs
    return K_ACCEPT * max(1.0, math.sqrt(full / stats.evidence_runs))


def _beats(challenger: ConfigStats, reference: ConfigStats, sigma: float, k: float, use_all: bool = False) -> bool:
    return lead_z(challenger, reference, sigma, use_all) > k


def lead_z(challenger: ConfigStats, reference: ConfigStats, sigma: float, use_all: bool = False) -> float:
    """How many standard errors ``challenger``'s evidence (all its runs with ``use_all``) leads ``reference``'s by."""
    n, mean = (challenger.runs, challenger.mean) if use_all else (challenger.evidence_runs, challenger.evidence_mean)
    standard_error = sigma * math.sqrt(1 / n + 1 / reference.evidence_runs)
    return (reference.evidence_mean - mean) / standard_error


def _with_verdict(stats: ConfigStats, accepted: bool, reference: str | None, estimate: float | None) -> ConfigStats:
    return ConfigStats(**{**stats.__dict__, "accepted": accepted, "reference": reference, "estimate": estimate})


def _rank_key(stats: ConfigStats) -> tuple[float, str]:
    mean = stats.evidence_mean if stats.evidence_mean is not None else math.inf
    return mean, stats.config


def _candidates(ranked: list[ConfigStats], best: ConfigStats | None, sigma: float) -> tuple[ConfigStats, ...]:
    if best is None:
        return ()
    return tuple(
        s
        for s in sorted(ranked, key=lambda s: (s.mean if s.mean is not None else math.inf, s.config))
        if not s.verified and s.runs and _beats(s, best, sigma, K_CANDIDATE, use_all=True)
    )
