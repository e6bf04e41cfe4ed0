"""Findings: what the swarm has learnt about each kind of change, from every node's results.

A change is a knob and a direction (``matrix_lr up``, ``depth +2``, ``window_pattern -> SSSL``;
several, for a change of several knobs). Every config on a lineage is its parent plus such a change,
and the lineage model (protocol/evidence.py) already weighs each of those edges: the posterior that
it helped, did nothing or hurt, from the lead of the config's subtree over its parent's other runs.
Here the edges of one change are gathered, per track:

- how often it was made (configs), and how its edges landed, each by its most probable verdict;
- the pooled lead: the edges' leads weighted by their precision, with a 95% interval, in bpb and in
  the track's sigma (edges from nested configs share runs, so the interval is a little narrow);
- the same model's posterior for the pooled lead, under the track's fitted prior: a change is said
  to help (or hurt, or do nothing) on a track only with ACCEPT_POSTERIOR, the bar a config is
  accepted by, so a change that does nothing is not claimed;
- failures: runs that crashed, timed out, diverged or ran out of memory (a killed run was stopped by
  its owner, not by its config), and configs whose every run failed.

Across tracks the pooled leads combine in sigma, the unit tracks share. A dead end is a change that
hurt, or failed outright, on some track: listed so nobody repeats it. Derived from the views and the
runs alone, each sum in a fixed order, so every node holding the same records shows the same findings.
"""

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from protocol.acceptance import ACCEPT_POSTERIOR, ConfigStats, Run, TrackView
from protocol.config import KNOB, Config, Value
from protocol.evidence import edge_posterior
from protocol.metrics import OUTCOMES

FAILED = tuple(outcome for outcome in OUTCOMES if outcome not in ("ok", "killed"))  # the config's fault
INTERVAL = 0.95
_Z = NormalDist().inv_cdf(0.5 + INTERVAL / 2)
VERDICTS = ("helps", "mixed", "open", "nothing", "hurts", "failed")  # the order findings are listed in
HEADER = (
    "per change (knob and direction), over every node's results: tried = configs that made it, runs = their ok"
    " runs; helped/nothing/hurt/failed = how each config's change landed (lineage model); lead = pooled val_bpb"
    " change over the parent, in bpb and in sigma, [95% interval], negative is better; held_on = tracks where"
    f" it helps with {ACCEPT_POSTERIOR:.0%} posterior"
)

DEAD_END_HEADER = (
    f"dead ends: changes that hurt on a track (the pooled lead's posterior, the same {ACCEPT_POSTERIOR:.0%} bar),"
    " or with a config whose every run failed (crash, timeout, diverged, oom); hurt_on, failed_on = where"
)


@dataclass(frozen=True)
class Lead:
    """A pooled lead over the parent (negative helps) and its 95% interval, in bpb and in sigma."""

    bpb: float
    bpb_low: float
    bpb_high: float
    sigmas: float
    sigmas_low: float
    sigmas_high: float
    bpb_error: float  # standard errors, what the intervals are made of
    sigmas_error: float

    @classmethod
    def of(cls, bpb: float, bpb_error: float, sigmas: float, sigmas_error: float) -> "Lead":
        bpb_half, sigmas_half = _Z * bpb_error, _Z * sigmas_error
        return cls(
            bpb,
            bpb - bpb_half,
            bpb + bpb_half,
            sigmas,
            sigmas - sigmas_half,
            sigmas + sigmas_half,
            bpb_error,
            sigmas_error,
        )


@dataclass(frozen=True)
class TrackFinding:
    """One change on one track."""

    track: str
    sigma: float  # the track's seed noise, bpb
    tried: int  # configs that made the change
    runs: int  # their ok runs
    authors: int  # members who ran them
    helped: int  # configs whose change most probably lowered val_bpb
    nothing: int
    hurt: int
    failed: int  # configs whose every run failed
    failures: Mapping[str, int]  # failed runs by outcome
    lead: Lead | None  # None until an edge has runs on both sides
    helps: float | None  # posterior probabilities of the pooled lead
    null: float | None
    hurts: float | None
    verdict: str  # helps, hurts, nothing (each at ACCEPT_POSTERIOR), failed, or open


@dataclass(frozen=True)
class Finding:
    """One change over every track it was made on."""

    change: str  # knobs and directions, e.g. "depth +2, matrix_lr up"
    knobs: int
    tried: int
    runs: int
    helped: int
    nothing: int
    hurt: int
    failed: int
    failures: Mapping[str, int]  # failed runs by outcome, over its tracks
    lead: Lead | None  # pooled over tracks: sigma by precision, bpb alike
    held_on: tuple[str, ...]  # tracks where it helps
    hurt_on: tuple[str, ...]
    failed_on: tuple[str, ...]  # tracks where one of its configs never ran to the end
    verdict: str  # helps, hurts, mixed (helps somewhere, hurts elsewhere), nothing, failed or open
    tracks: tuple[TrackFinding, ...]

    @property
    def dead_end(self) -> bool:
        return bool(self.hurt_on or self.failed_on)

    @property
    def only_a_dead_end(self) -> bool:
        """Whether it hurt or failed wherever it was judged: listed with the dead ends alone."""
        return self.verdict in ("hurts", "failed")


@dataclass(frozen=True)
class _Edge:
    """One config as its parent plus a change."""

    stats: ConfigStats
    failures: Counter
    authors: frozenset[str]

    @property
    def verdict(self) -> str:
        if self.stats.null is None:
            return "failed" if self.failures and not self.stats.runs else "open"
        helps, null = self.stats.helps, self.stats.null
        return max((null, "nothing"), (helps, "helped"), (1.0 - null - helps, "hurt"))[1]


def findings(
    views: Mapping[str, TrackView], runs: Mapping[str, Sequence[Run]], resolve: Callable[[str], Config]
) -> list[Finding]:
    """Every change made on the tracks of ``views``, best first: its edges' verdicts, pooled lead and
    posterior per track. ``runs`` are each track's runs (as the views saw them); ``resolve`` gives the
    full config of a hash on a true lineage."""
    by_change: dict[tuple[str, ...], dict[str, list[_Edge]]] = defaultdict(lambda: defaultdict(list))
    for key, view in views.items():
        failures: dict[str, Counter] = defaultdict(Counter)
        authors: dict[str, set[str]] = defaultdict(set)
        for run in {run.id: run for run in runs.get(key, ())}.values():  # a set: a duplicate counts once
            authors[run.config].add(run.author)
            if run.outcome in FAILED:
                failures[run.config][run.outcome] += 1
        for stats in view.leaderboard:
            if stats.is_default or not stats.linked:
                continue
            change = describe(resolve(stats.parent), stats.diff)
            if change:
                edge = _Edge(stats, failures[stats.config], frozenset(authors[stats.config]))
                by_change[change][key].append(edge)
    found = [_finding(change, tracks, views) for change, tracks in sorted(by_change.items())]
    return sorted(found, key=_rank)


def describe(parent: Mapping[str, Value], diff: Mapping[str, Any]) -> tuple[str, ...]:
    """A change in words, one knob a word, in the config table's order: ("depth +2", "matrix_lr up");
    empty when it changes nothing a config is named by (a seed alone)."""
    return tuple(
        f"{name} {direction(name, parent[name], diff[name])}"
        for name in KNOB
        if name in diff and KNOB[name].hashed and diff[name] != parent[name]
    )


def direction(knob: str, before: Value, after: Value) -> str:
    """How a knob moved: a step for whole numbers, up or down for real ones, the new value otherwise."""
    kind = KNOB[knob].kind
    if kind is bool:
        return f"-> {str(after).lower()}"
    if kind is int:
        return f"{after - before:+d}"
    if kind is float:
        return "up" if after > before else "down"
    return f"-> {after}"


def _finding(change: tuple[str, ...], tracks: Mapping[str, list[_Edge]], views: Mapping[str, TrackView]) -> Finding:
    knobs = len(change)
    per_track = tuple(_track_finding(key, tracks[key], views[key], knobs) for key in sorted(tracks))
    held_on = tuple(t.track for t in per_track if t.verdict == "helps")
    hurt_on = tuple(t.track for t in per_track if t.verdict == "hurts")
    failed_on = tuple(t.track for t in per_track if t.failed)
    judged = {t.verdict for t in per_track} - {"open"}
    if held_on:
        verdict = "mixed" if hurt_on else "helps"
    elif hurt_on:
        verdict = "hurts"
    elif judged == {"nothing"}:
        verdict = "nothing"
    elif judged == {"failed"}:
        verdict = "failed"
    else:
        verdict = "open"
    return Finding(
        change=", ".join(change),
        knobs=knobs,
        tried=sum(t.tried for t in per_track),
        runs=sum(t.runs for t in per_track),
        helped=sum(t.helped for t in per_track),
        nothing=sum(t.nothing for t in per_track),
        hurt=sum(t.hurt for t in per_track),
        failed=sum(t.failed for t in per_track),
        failures=_outcomes(t.failures for t in per_track),
        lead=_across(per_track),
        held_on=held_on,
        hurt_on=hurt_on,
        failed_on=failed_on,
        verdict=verdict,
        tracks=per_track,
    )


def _track_finding(key: str, edges: list[_Edge], view: TrackView, knobs: int) -> TrackFinding:
    edges = sorted(edges, key=lambda edge: edge.stats.config)  # a fixed order for every sum
    verdicts = Counter(edge.verdict for edge in edges)
    measured = [edge.stats.change_lead for edge in edges if edge.stats.change_lead is not None]
    lead, helps, null, hurts = None, None, None, None
    verdict = "failed" if verdicts["failed"] and not any(edge.stats.runs for edge in edges) else "open"
    if measured:
        mean, error = _pooled(measured)
        lead = Lead.of(mean, error, mean / view.sigma, error / view.sigma)
        posterior = edge_posterior([mean], [error * error], view.prior, [knobs])
        helps, null = float(posterior.helps[0]), float(posterior.null[0])
        hurts = max(0.0, 1.0 - helps - null)
        verdict = next(
            (word for word, p in (("helps", helps), ("hurts", hurts), ("nothing", null)) if p >= ACCEPT_POSTERIOR),
            verdict,
        )
    return TrackFinding(
        track=key,
        sigma=view.sigma,
        tried=len(edges),
        runs=sum(edge.stats.runs for edge in edges),
        authors=len(frozenset().union(*(edge.authors for edge in edges))),
        helped=verdicts["helped"],
        nothing=verdicts["nothing"],
        hurt=verdicts["hurt"],
        failed=verdicts["failed"],
        failures=_outcomes(edge.failures for edge in edges),
        lead=lead,
        helps=helps,
        null=null,
        hurts=hurts,
        verdict=verdict,
    )


def _outcomes(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Run counts by outcome, added up, in the outcomes' order."""
    total = Counter()
    for count in counts:
        total.update(count)
    return {outcome: total[outcome] for outcome in FAILED if total[outcome]}


def _across(tracks: Iterable[TrackFinding]) -> Lead | None:
    """The tracks' pooled leads pooled again by precision: in sigma, the unit tracks share, and in bpb alike."""
    leads = [t.lead for t in tracks if t.lead is not None]
    if not leads:
        return None
    bpb, bpb_error = _pooled([(lead.bpb, lead.bpb_error**2) for lead in leads])
    sigmas, sigmas_error = _pooled([(lead.sigmas, lead.sigmas_error**2) for lead in leads])
    return Lead.of(bpb, bpb_error, sigmas, sigmas_error)


def _pooled(values: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The precision-weighted mean of (value, variance) pairs, and its standard error."""
    precision = sum(1.0 / variance for _, variance in values)
    return sum(value / variance for value, variance in values) / precision, math.sqrt(1.0 / precision)


def _rank(finding: Finding) -> tuple:
    """Helping changes first, those holding on more tracks and leading by more sigma first; then the rest."""
    sigmas = finding.lead.sigmas if finding.lead else math.inf
    return VERDICTS.index(finding.verdict), -len(finding.held_on), sigmas, finding.change
