"""The acceptance rule: from a set of result records to each track's best config.

A pure function of the set (order and duplicates don't matter; ties go by hash), so every node
holding the same records names the same best. The statistics, per track:

- verified: a config whose null cluster holds ``min_runs`` ok runs from ``min_authors`` authors
  (off a true lineage: its own runs).
- sigma: pooled seed noise of the configs replicated by ``min_authors`` authors, never below the
  policy's floor; or, where the policy gives the floor ``sigma_prior_df`` degrees of freedom, the
  floor as a prior the track's own noise outweighs as its runs accrue.
- clipping: where the policy sets ``clip_floors``, each ok run counts at most that many floors from
  its config's median, in sigma and in every mean.
- lineage: a record's claim that its config is ``parent`` plus ``diff`` is re-hashed, not trusted;
  the earliest true link is the config's lineage.
- discovery run: a config's earliest ok run. It was picked out of many explorations because it
  looked good (the winner's curse), so it is never evidence for its own config.
- evidence (protocol/evidence.py): a config's null cluster, its own runs and those of descendants
  whose change probably did nothing, less its discovery run; so exploring from a config verifies it.
- accepted: a default config once its cluster holds ``min_runs`` runs; any other config on a true
  lineage once the posterior probability that its evidence beats its reference (its nearest accepted
  ancestor) reaches ACCEPT_POSTERIOR with ``min_runs`` runs in its cluster, or ACCEPT_EARLY_POSTERIOR
  before that, and its evidence comes from ``min_authors`` authors.
- best: the accepted config with the lowest posterior estimate.
- candidate: an unaccepted config estimated ahead of the best whose change probably helped; the
  work chooser re-runs one only where a run may flip its verdict (node/research/work.py).
  bench/acceptance.py measures false promotions and power for one change; bench/swarm_sim.py the
  swarm's false discovery rate and real gain.
"""

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from protocol.config import ROOTS, Config, apply, config_hash, default_config
from protocol.errors import ProtocolError
from protocol.evidence import Node, Prior, depths, edge_posterior, fit_prior, pool
from protocol.metrics import UBPB
from protocol.policy import Policy
from protocol.records import Record
from protocol.track import Track

# The posterior probability a config must beat its reference by: each accepted change is false with
# probability at most 1 - ACCEPT_POSTERIOR, so the swarm's false discovery rate stays below it
# (bench/swarm_sim.py measures it against the truth).
ACCEPT_POSTERIOR = 0.97
# Before ``min_runs`` runs back a config only overwhelming evidence decides, a sequential rule: a large
# effect is accepted at its first replication, a small one waits for all its runs.
ACCEPT_EARLY_POSTERIOR = 0.9999
CANDIDATE_POSTERIOR = 0.5  # an unaccepted config ahead of the best whose change this probably helped


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
    mean: float | None  # bpb over all ok runs, as clipped where the policy clips
    evidence_runs: int
    evidence_mean: float | None
    discovery: bytes | None
    verified: bool
    accepted: bool = False
    contributors: frozenset[str] = frozenset()  # authors of its ok runs
    linked: bool = True  # a chain of true (parent, diff) links leads back to a default config
    reference: str | None = None  # the accepted config its evidence is tested against (None for a default)
    estimate: float | None = None  # posterior mean of its true bpb, from its lineage's runs
    confidence: float | None = None  # posterior probability its evidence beats its reference's
    helps: float | None = None  # posterior probability its change lowered val_bpb, from all its lineage's runs
    null: float | None = None  # posterior probability its change did nothing, from all its lineage's runs
    # its subtree's lead over its parent's other runs (bpb) and the lead's variance: what ``helps`` and ``null`` weigh
    change_lead: tuple[float, float] | None = None
    # its evidence's lead over its reference's (bpb), and the variances of the two sides
    lead: tuple[float, float, float] | None = None
    pooled_runs: int = 0  # ok runs of its null cluster (itself and descendants whose change did nothing)
    evidence_contributors: frozenset[str] = frozenset()  # authors of its evidence runs

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
    prior: Prior | None = None  # how the track's changes have landed: fitted to its own edges


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
    by_config = {config: _clipped(config_runs, policy) for config, config_runs in by_config.items()}
    stats = {config: _config_stats(config, config_runs, links, policy) for config, config_runs in by_config.items()}
    replicated = [by_config[c] for c, s in stats.items() if s.runs >= 2 and s.authors >= policy.min_authors]
    noise = _pooled_sigma(replicated, policy)
    sigma = noise.sigma
    order = _lineage_order(stats)
    nodes, prior = _pooled(by_config, stats, order, sigma)
    tests = _tested(stats, nodes, order, sigma, prior, policy)
    stats = {config: _with_evidence(s, nodes.get(config), tests.get(config), policy) for config, s in stats.items()}
    ranked = sorted(stats.values(), key=_rank_key)
    best = next((s for s in ranked if s.accepted), None)
    # ties go to the config with more runs: a child whose lead is within noise does not displace its parent
    frontier = min(
        (s for s in ranked if s.estimate is not None), key=lambda s: (s.estimate, -s.runs, s.config), default=None
    )
    return TrackView(track, sigma, noise.df, best, tuple(ranked), _candidates(ranked, best), frontier, prior)


@dataclass(frozen=True)
class Noise:
    """A track's seed noise and the degrees of freedom measured behind it (0: the policy's floor alone)."""

    sigma: float  # bpb
    df: int


def _clipped(runs: list[Run], policy: Policy) -> list[Run]:
    """One config's runs, each ok value clipped to the config's median plus or minus ``clip_floors`` floors.

    One member's wild runs (say 0.1 and 19.9 bpb of a 1.0 config) would otherwise set the track's
    sigma and the config's mean alone; clipped, a run moves either by at most a few floors, so a
    member moves them by its share of the runs. The median is exact and the bounds integers, so
    every node clips alike.
    """
    values = sorted(run.val_bpb_ubpb for run in runs if run.outcome == "ok")
    if not policy.clip_floors or not values:
        return runs
    median = Fraction(values[(len(values) - 1) // 2] + values[len(values) // 2], 2)
    reach = policy.clip_floors * policy.sigma_floor_ubpb
    low, high = math.ceil(median - reach), math.floor(median + reach)
    return [
        dataclasses.replace(run, val_bpb_ubpb=min(max(run.val_bpb_ubpb, low), high))
        if run.outcome == "ok" and not low <= run.val_bpb_ubpb <= high
        else run  # most runs lie within the bounds: kept as they are
        for run in runs
    ]


def _pooled_sigma(groups: Iterable[list[Run]], policy: Policy) -> Noise:
    # Only configs replicated by min_authors authors count, so one author alone can neither shrink
    # nor inflate the noise everyone tests against; exact integer sums, so every node gets the same float.
    squares, df = 0, 0
    for group in groups:
        values = [run.val_bpb_ubpb for run in group if run.outcome == "ok"]
        if len(values) >= 2:
            n, total = len(values), sum(values)
            squares += Fraction(n * sum(v * v for v in values) - total * total, n)
            df += n - 1
    floor, prior_df = policy.sigma_floor_ubpb, policy.sigma_prior_df
    if prior_df:
        # a scaled-inverse-chi-square prior at the floor: a young track cannot accept on a lucky low
        # estimate, and a track quieter than the floor (one GPU model) comes to test against its own noise
        return Noise(math.sqrt(Fraction(prior_df * floor * floor + squares, prior_df + df)) / UBPB, df)
    pooled_ubpb = math.sqrt(squares / df) if df else 0.0
    return Noise(max(float(floor), pooled_ubpb) / UBPB, df)


def _config_stats(config: str, runs: list[Run], links: Lineage, policy: Policy) -> ConfigStats:
    ok = [run for run in runs if run.outcome == "ok"]
    linked = links.resolve(config) is not None
    # The true link when there is one; otherwise the earliest claim, shown but never accepted.
    parent, diff = links.link.get(config, (config, {}) if config in ROOTS else (runs[0].parent, runs[0].diff))
    # The earliest ok run is the discovery, whatever its ``replicates`` field claims.
    discovery = ok[0] if ok and config not in ROOTS else None
    evidence = [run for run in ok if run is not discovery]
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
        # off a true lineage only its own runs count; on one, its null cluster's (_with_evidence)
        verified=len(ok) >= policy.min_runs and len(contributors) >= policy.min_authors,
        contributors=contributors,
        linked=linked,
    )


def _mean(runs: list[Run]) -> float | None:
    if not runs:
        return None
    return sum(run.val_bpb_ubpb for run in runs) / (len(runs) * UBPB)  # int division: correctly rounded


def _pooled(
    by_config: Mapping[str, list[Run]], stats: Mapping[str, ConfigStats], order: list[str], sigma: float
) -> tuple[dict[str, Node], Prior]:
    """The lineage pooled twice: once under the starting prior to measure the track's edges, then
    under the prior fitted to them."""
    nodes = {
        config: Node(
            [(run.val_bpb_ubpb / UBPB, run.author) for run in by_config[config] if run.outcome == "ok"],
            None if stats[config].is_default else stats[config].parent,
            discovery=not stats[config].is_default,
            knobs=len(stats[config].diff),
        )
        for config in order
    }
    pool(nodes, order, sigma, Prior.starting(sigma), leads_only=True)
    edges = [nodes[config] for config in order if nodes[config].lead is not None]
    prior = fit_prior([node.lead for node in edges], sigma, [node.knobs for node in edges])
    pool(nodes, order, sigma, prior)
    return nodes, prior


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


@dataclass(frozen=True)
class Test:
    """A config's evidence against its reference: the nearest accepted config on its lineage."""

    reference: str | None  # None for a default config
    lead: tuple[float, float, float] | None = None  # (evidence minus reference, their variances) in bpb
    confidence: float | None = None  # posterior probability the config beats its reference
    accepted: bool = False


def _tested(
    stats: Mapping[str, ConfigStats],
    nodes: Mapping[str, Node],
    order: list[str],
    sigma: float,
    prior: Prior,
    policy: Policy,
) -> dict[str, Test]:
    """Each config on a true lineage tested against its nearest accepted ancestor, a depth at a time.

    Not only against its parent: exploration may run ahead of verification along a chain of
    promising configs, and the chain's tip is accepted once its evidence beats the last accepted
    config on the way, without verifying every step.
    """
    way: dict[str, tuple[str, str] | None] = {}  # config -> (nearest accepted config, its child on the way)
    changed: dict[str, frozenset[str]] = {}  # config -> the knobs its lineage changed since that config
    tests: dict[str, Test] = {}
    for level in depths(nodes, order):
        leads: dict[str, tuple[str, str, tuple[float, float, float] | None]] = {}
        for config in level:
            s, node = stats[config], nodes[config]
            above = None if s.is_default else way[s.parent]
            if above is None:
                accepted = s.is_default and _verified(sum(node.cluster.values()), len(node.evidence_authors), policy)
                tests[config] = Test(None, accepted=accepted)
                way[config] = (config, config) if accepted else None
                continue
            reference, branch = above[0], config if above[0] == s.parent else above[1]
            changed[config] = frozenset(s.diff) | (changed[s.parent] if reference != s.parent else frozenset())
            leads[config] = (reference, branch, _lead(node, nodes[reference], nodes[branch], sigma))
        measured = [config for config, (_, _, lead) in leads.items() if lead is not None]
        confidences = edge_posterior(
            [leads[c][2][0] for c in measured],
            [leads[c][2][1] + leads[c][2][2] for c in measured],
            prior,
            [len(changed[c]) for c in measured],
        ).helps.tolist()
        confidence = dict(zip(measured, confidences, strict=True))
        for config, (reference, branch, lead) in leads.items():
            node = nodes[config]
            # a change's evidence must lead its reference: with null ruled out (a many-knob jump) a
            # narrow gain can explain a tie better than a wide harm, and a tie is no improvement
            accepted = (
                lead is not None
                and lead[0] < 0
                and accepts(confidence.get(config), sum(node.cluster.values()), len(node.evidence_authors), policy)
            )
            tests[config] = Test(reference, lead, confidence.get(config), accepted)
            way[config] = (config, config) if accepted else (reference, branch)
    return tests


def _lead(node: Node, reference: Node, branch: Node, sigma: float) -> tuple[float, float, float] | None:
    """``node``'s evidence (its null cluster, less its discovery run) against the reference's runs off
    the branch that leads to it, and the variances of both; None while either has no run."""
    evidence = node.evidence
    outside = reference.subtree.without(branch.subtree, branch.weight)
    if not (evidence.holds_runs(sigma) and outside.holds_runs(sigma)):
        return None
    return evidence.mean - outside.mean, evidence.variance, outside.variance


def accepts(confidence: float | None, pooled_runs: int, evidence_authors: int, policy: Policy) -> bool:
    """Whether a config whose evidence beats its reference with posterior ``confidence`` is accepted."""
    if confidence is None or evidence_authors < policy.min_authors:
        return False
    return confidence >= (ACCEPT_POSTERIOR if pooled_runs >= policy.min_runs else ACCEPT_EARLY_POSTERIOR)


def _verified(pooled_runs: int, evidence_authors: int, policy: Policy) -> bool:
    return pooled_runs >= policy.min_runs and evidence_authors >= policy.min_authors


def _with_evidence(stats: ConfigStats, node: Node | None, test: Test | None, policy: Policy) -> ConfigStats:
    """A config's stats with what the pooled lineage says: its evidence, estimate and verdict."""
    if node is None or test is None:  # not on a true lineage: its own runs only, never accepted
        return stats
    evidence = node.evidence_authors
    evidence_runs, pooled_runs = sum(evidence.values()), sum(node.cluster.values())
    return dataclasses.replace(
        stats,
        evidence_runs=evidence_runs,
        evidence_mean=node.evidence.mean if evidence_runs else None,
        verified=_verified(pooled_runs, len(evidence), policy),
        accepted=test.accepted,
        reference=test.reference,
        estimate=node.estimate,
        confidence=test.confidence,
        helps=node.edge.helps if node.edge else None,
        null=node.edge.null if node.edge else None,
        change_lead=node.lead,
        lead=test.lead,
        pooled_runs=pooled_runs,
        evidence_contributors=frozenset(evidence),
    )


def _rank_key(stats: ConfigStats) -> tuple[float, float, str]:
    estimate = stats.estimate if stats.estimate is not None else math.inf
    mean = stats.evidence_mean if stats.evidence_mean is not None else math.inf
    return estimate, mean, stats.config


def _candidates(ranked: list[ConfigStats], best: ConfigStats | None) -> tuple[ConfigStats, ...]:
    """Unaccepted configs whose change probably helped and that are estimated ahead of the best, best first."""
    if best is None:
        return ()
    return tuple(
        s
        for s in ranked
        if not s.accepted
        and s.estimate is not None
        and s.estimate < best.estimate
        and (s.helps or 0.0) >= CANDIDATE_POSTERIOR
    )
