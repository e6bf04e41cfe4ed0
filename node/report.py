"""What `arnode results`, `best`, `export` and `hypotheses` show: rows derived from the ledger's views.

The words, the same on every screen (these commands, the dashboard, the LLM prompt):

- ``val_bpb`` / ``test_bpb``: what one run measured on the validation / holdout split.
- ``estimate``: the lineage model's posterior estimate of a config's true val_bpb. It is every
  config table's score, shown and sorted by (lowest first), beside the ``runs`` and ``authors``
  behind it: the ok runs of the config and of its descendants whose change probably did nothing.
- ``mean_val_bpb`` / ``mean_test_bpb``: means over the config's own ok runs (val_bpb as clipped,
  where the policy clips runs, like every number the acceptance rule reads).
- ``accepted``: a config the acceptance rule took; ``best``: the accepted config with the lowest
  estimate; ``candidate``: an unaccepted config estimated ahead of the best, being re-run.
  (``keep``/``discard``/``crash`` are autoresearch's status words, kept only in its results.tsv.)

The holdout score (test_bpb) is shown here, to people, and nowhere else: the acceptance rule, the
work chooser and the proposers never see it, so it stays an honest check on the validation split.
"""

import dataclasses
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from node.progress import accepted_configs, run_status
from protocol.acceptance import ConfigStats, TrackView, bpb
from protocol.config import PROFILES, ROOTS, Config, apply, config_hash, default_config, diff_between
from protocol.errors import ProtocolError
from protocol.policy import Policy
from protocol.records import Record

TSV_HEADER = ("commit", "val_bpb", "memory_gb", "status", "description", "test_bpb")


def record_row(record: Record) -> dict[str, Any]:
    """One record as plain JSON-ready data."""
    body = record.body
    result = record.kind == "result"
    return {
        "id": record.hex_id,
        "kind": record.kind,
        "author": record.author,
        "ts_ms": record.ts_ms,
        "track": record.track.key,
        "config_hash": body["config"] if result else None,
        "parent": body["parent"],
        "diff": body["diff"],
        "outcome": body["outcome"] if result else None,
        "val_bpb": bpb(body["val_bpb"]) if result else None,
        "test_bpb": bpb(body["test_bpb"]) if result else None,
        "replicates": body["replicates"].hex() if result and body["replicates"] else None,
        "seed": body["seed"] if result else None,
        "proposer": body["proposer"] if result else None,
        "hypothesis": body["hypothesis"] if result else body["rationale"],
        "error": body["error"] if result else "",
        "metrics": body["metrics"] if result else None,
    }


def diff_in_words(config: str, resolve) -> str:
    """The config's changes against its profile default, e.g. 'depth 4->6, matrix_lr 0.04->0.05'."""
    if config in ROOTS:
        return "default"
    try:
        full = resolve(config)
    except ProtocolError:
        return "(lineage incomplete)"
    # the profile default it differs from least: display only, so the heuristic is harmless
    base = min((default_config(profile) for profile in PROFILES), key=lambda d: len(diff_between(d, full)))
    changes = diff_between(base, full)
    changes.pop("seed", None)
    return _in_words(base, changes) or "default"


def _in_words(base: Mapping[str, Any], diff: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} {base[name]}->{value}" for name, value in diff.items())


def holdout_scores(ledger, track_key: str, configs: Iterable[str]) -> dict[str, tuple[float, float]]:
    """Per config, (mean val_bpb, mean test_bpb) over the same ok runs: those that measured the holdout.

    Configs whose runs all predate the holdout are absent. ``ledger`` is a node.store.ledger.Ledger:
    the scores come from its stored columns, no record is decoded again.
    """
    pairs = ledger.holdout_pairs(track_key, configs)
    return {
        config: (bpb(sum(v for v, _ in runs)) / len(runs), bpb(sum(t for _, t in runs)) / len(runs))
        for config, runs in pairs.items()
    }


def score_header(policy: Policy) -> str:
    """What a config table's score is, in one line; where the policy clips runs, by how much."""
    header = (
        "estimate: the lineage model's estimate of the config's true val_bpb, lowest first; runs, authors: "
        "the ok runs behind it (the config's and its null descendants')"
    )
    if not policy.clip_floors:
        return header
    reach = bpb(policy.clip_floors * policy.sigma_floor_ubpb)
    return header + f"; each run's val_bpb counts at most {reach:.6f} from its config's median"


HYPOTHESIS_HEADER = (
    "newest first; estimate: the answering config's, from its runs, as on the leaderboard; "
    "vs_parent: that estimate minus its parent's, in bpb and in sigma"
)


@dataclass(frozen=True)
class Score:
    """A config's score, as every screen shows it: its estimate and the runs and authors behind it.

    Off a true lineage a config has no estimate; its own ok runs are then all that speaks for it.
    """

    estimate: float | None
    runs: int
    authors: int

    @classmethod
    def of(cls, stats: ConfigStats) -> "Score":
        if stats.estimate is None:
            return cls(None, stats.runs, stats.authors)
        # its null cluster's authors: the evidence's, plus whoever ran the discovery
        return cls(stats.estimate, stats.pooled_runs, len(stats.evidence_contributors | stats.contributors))


def ranked(view: TrackView) -> list[ConfigStats]:
    """The view's configs by estimate, lowest first; those without one last, by hash."""
    return sorted(view.leaderboard, key=lambda s: (s.estimate is None, s.estimate or 0.0, s.config))


def standing(view: TrackView, stats: ConfigStats) -> str:
    """best, accepted, candidate, or nothing."""
    if view.best is not None and stats.config == view.best.config:
        return "best"
    if stats.accepted:
        return "accepted"
    return "candidate" if stats in view.candidates else ""


def leaderboard_rows(
    view: TrackView, resolve, limit: int | None, holdout: Mapping[str, tuple[float, float]]
) -> list[dict[str, Any]]:
    """The track's configs by estimate, each with the runs and authors behind it, then its own runs' figures."""
    rows = []
    for rank, stats in enumerate(ranked(view)[:limit], start=1):
        score = Score.of(stats)
        rows.append(
            {
                "rank": rank,
                "config_hash": stats.config,
                "estimate": score.estimate,
                "runs": score.runs,
                "authors": score.authors,
                "own_runs": stats.runs,
                "failed": stats.failures,
                "mean_val_bpb": stats.mean,
                "mean_test_bpb": holdout[stats.config][1] if stats.config in holdout else None,
                "standing": standing(view, stats),
                "diff": diff_in_words(stats.config, resolve),
                "contributors": sorted(stats.contributors),
            }
        )
    return rows


def best_brief(view: TrackView | None) -> dict[str, Any] | None:
    """The best config in one line's worth: its hash and score (the node's status, the live view)."""
    if view is None or view.best is None:
        return None
    return {"config": view.best.config, **dataclasses.asdict(Score.of(view.best))}


def best_in_words(brief: Mapping[str, Any] | None) -> str:
    """``best_brief``'s answer as people read it, e.g. in `arnode status` and the live view."""
    if brief is None:
        return "no accepted best yet"
    return f"{brief['config'][:10]} estimate {brief['estimate']:.6f} ({brief['runs']} runs, {brief['authors']} authors)"


def best_summary(view: TrackView, resolve, holdout: Mapping[str, tuple[float, float]]) -> dict[str, Any] | None:
    """The best config and its score, with its val-vs-holdout gap beside the default's.

    A gap that grows from the default's to the best's says the swarm is fitting the validation split.
    """
    best: ConfigStats | None = view.best
    if best is None:
        return None
    default = next((s.config for s in view.leaderboard if s.is_default), None)
    gap = _gap(holdout.get(best.config))
    default_gap = _gap(holdout.get(default))
    return {
        "track": view.track.key,
        "config_hash": best.config,
        "config": resolve(best.config),
        **dataclasses.asdict(Score.of(best)),
        "own_runs": best.runs,
        "mean_val_bpb": best.mean,
        "sigma": view.sigma,
        "sigma_df": view.sigma_df,
        "changes": diff_in_words(best.config, resolve),
        "mean_test_bpb": holdout[best.config][1] if best.config in holdout else None,
        "holdout_gap": gap,  # mean test_bpb - mean val_bpb over the same runs
        "default_holdout_gap": default_gap,
        "gap_growth": gap - default_gap if gap is not None and default_gap is not None else None,
    }


def _gap(scores: tuple[float, float] | None) -> float | None:
    return scores[1] - scores[0] if scores else None


def export_rows(records: Iterable[Record], views: Mapping[str, TrackView]) -> list[tuple[str, ...]]:
    """autoresearch's results.tsv rows: the record ID stands in for the commit."""
    rows = []
    accepted = defaultdict(frozenset, {key: accepted_configs(view) for key, view in views.items()})
    for record in records:
        if record.kind != "result":
            continue
        body = record.body
        status = run_status(body["outcome"], body["config"], accepted[record.track.key])
        score = f"{bpb(body['val_bpb']):.6f}" if body["val_bpb"] is not None else "0.000000"
        memory = body["metrics"]["peak_mem_mb"]
        memory_gb = f"{memory / 1024:.1f}" if memory is not None else "0.0"
        test = f"{bpb(body['test_bpb']):.6f}" if body["test_bpb"] is not None else "0.000000"
        rows.append((record.hex_id[:12], score, memory_gb, status, " ".join(_description(body).split()), test))
    return rows


def _description(body: Mapping[str, Any]) -> str:
    """What was tried; a run that did not finish says how it ended first ("killed: ...")."""
    tried = body["hypothesis"] or ("baseline" if body["config"] in ROOTS else "")
    if body["outcome"] == "ok":
        return tried or "ok"
    return f"{body['outcome']}: " + "; ".join(part for part in (body["error"], tried) if part)


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)


def accepted_holdout(ledger, views: Mapping[str, TrackView]) -> dict[str, dict[str, float]]:
    """Per track, the mean test_bpb of each accepted config: drawn for people, read by no decision."""
    return {
        key: {config: test for config, (_, test) in holdout_scores(ledger, key, accepted_configs(view)).items()}
        for key, view in views.items()
    }


def hypothesis_rows(ledger, track_key: str | None = None) -> list[dict[str, Any]]:
    """Every hypothesis by a member (on ``track_key``), newest first: open, answered or invalid, and how
    each answer did against the hypothesis's parent. ``ledger`` is a node.ledger.Ledger.

    A hypothesis is answered once its config has runs, whichever path reached it. One whose parent
    this node cannot resolve (yet) is matched on its (parent, diff) alone, as the proposers match it.
    """
    views = ledger.assess()
    tracks: dict[str, _TrackRuns] = {}
    rows = []
    for status in reversed(ledger.hypotheses(track_key)):
        record = status.record
        key = record.track.key
        if key not in tracks:
            tracks[key] = _TrackRuns.of(ledger, views.get(key))
        known = tracks[key]
        parent, diff = record.body["parent"], record.body["diff"]
        config, change, problem, runnable = _hypothesis_config(ledger.resolve_config, parent, diff)
        answers = ([config] if config in known.stats else []) if config else list(status.answers)
        rows.append(
            {
                "track": record.track.key,
                "id": record.hex_id,
                "ts_ms": record.ts_ms,
                "author": record.author,
                "parent": parent,
                "diff": diff,
                "change": change,
                "config_hash": config,
                "rationale": record.body["rationale"],
                "status": "invalid" if not runnable else "answered" if answers else "open",
                "problem": problem,
                "answers": [known.answer(answer, parent) for answer in answers],
            }
        )
    return rows


def _hypothesis_config(resolve, parent: str, diff: Config) -> tuple[str | None, str, str | None, bool]:
    """(config it names, its change in words, what is wrong with it, whether it can run at all)."""
    try:
        base = resolve(parent)
    except ProtocolError:
        change = ", ".join(f"{name}={value}" for name, value in diff.items())
        return None, change, "parent unknown here", True
    change = _in_words(base, diff) or "nothing"
    try:
        config = config_hash(apply(base, diff))
    except ProtocolError as err:
        return None, change, f"does not apply: {err}", False
    if config == parent:
        return None, change, "changes nothing in its parent", False
    return config, change, None, True


@dataclass(frozen=True)
class _TrackRuns:
    """A track's view, its configs' stats and the outcomes of their runs: what answers are judged on."""

    view: TrackView | None
    stats: Mapping[str, ConfigStats]
    outcomes: Mapping[str, Counter]

    @classmethod
    def of(cls, ledger, view: TrackView | None) -> "_TrackRuns":
        outcomes: dict[str, Counter] = defaultdict(Counter)
        for run in ledger.runs(view.track.key) if view else ():
            outcomes[run.config][run.outcome] += 1
        return cls(view, {s.config: s for s in view.leaderboard} if view else {}, outcomes)

    def answer(self, config: str, parent: str) -> dict[str, Any]:
        """How the config that answered a hypothesis did: its estimate against its parent's."""
        stats = self.stats.get(config)
        if stats is None:  # matched on (parent, diff), but no member's run of it counts in the view
            return {"config_hash": config, "outcomes": {}, "estimate": None, "verdict": "no counted runs"}
        score = Score.of(stats)
        base = self.stats.get(parent)
        base_estimate = base.estimate if base else None
        # rounded to what a run can tell apart: float noise in the sixth decimal is not a result
        delta = (
            round(score.estimate - base_estimate, 6)
            if score.estimate is not None and base_estimate is not None
            else None
        )
        outcomes = self.outcomes[config]
        return {
            "config_hash": config,
            "outcomes": dict(outcomes),  # its own runs, e.g. {"ok": 3, "crash": 1}
            "estimate": score.estimate,
            "runs": score.runs,
            "authors": score.authors,
            "parent_estimate": base_estimate,
            "delta": delta,
            "delta_sigma": round(delta / self.view.sigma, 2) if delta is not None else None,
            "standing": standing(self.view, stats),
            "verdict": _verdict(self.view, stats, delta, outcomes),
        }


def _verdict(view: TrackView, stats: ConfigStats, delta: float | None, outcomes: Counter) -> str:
    """In words: accepted, candidate, how it failed, not better, not significant, ahead but unverified."""
    if stats.accepted:
        return "accepted"
    if stats in view.candidates:
        return "candidate: being re-run"
    if stats.runs == 0:
        return "every run failed: " + ", ".join(sorted(outcomes))
    if delta is None:
        return "no estimate for it or its parent"
    if delta >= 0:
        return "not better"
    return "not significant" if stats.verified else "ahead, unverified"
