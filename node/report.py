"""What `arnode results`, `best`, `export` and `hypotheses` show: rows derived from the ledger's views.

The holdout score (test_bpb) is shown here, to people, and nowhere else: the acceptance rule, the
work chooser and the proposers never see it, so it stays an honest check on the validation split.
"""

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from node.progress import accepted_configs, run_status
from protocol.acceptance import ConfigStats, TrackView, bpb
from protocol.config import PROFILES, ROOTS, Config, apply, config_hash, default_config, diff_between
from protocol.errors import ProtocolError
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

    Configs whose runs all predate the holdout are absent. ``ledger`` is a node.ledger.Ledger.
    """
    wanted = set(configs)
    ids = [run.id for run in ledger.runs(track_key) if run.config in wanted and run.outcome == "ok"]
    pairs: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for record in ledger.records_by_id(ids):
        if record.body["test_bpb"] is not None:
            pairs[record.body["config"]].append((record.body["val_bpb"], record.body["test_bpb"]))
    return {
        config: (bpb(sum(v for v, _ in runs)) / len(runs), bpb(sum(t for _, t in runs)) / len(runs))
        for config, runs in pairs.items()
    }


def leaderboard_rows(
    view: TrackView, resolve, limit: int | None, holdout: Mapping[str, tuple[float, float]]
) -> list[dict[str, Any]]:
    rows = []
    for rank, stats in enumerate(view.leaderboard[:limit], start=1):
        rows.append(
            {
                "rank": rank,
                "config_hash": stats.config,
                "val_bpb": stats.evidence_mean,
                "test_bpb": holdout[stats.config][1] if stats.config in holdout else None,
                "mean_all_runs": stats.mean,
                "runs": stats.runs,
                "failures": stats.failures,
                "authors": stats.authors,
                "verified": stats.verified,
                "accepted": stats.accepted,
                "best": view.best is not None and stats.config == view.best.config,
                "candidate": stats in view.candidates,
                "diff": diff_in_words(stats.config, resolve),
                "contributors": sorted(stats.contributors),
            }
        )
    return rows


def best_summary(view: TrackView, resolve, holdout: Mapping[str, tuple[float, float]]) -> dict[str, Any] | None:
    """The best config and its evidence, with its val-vs-holdout gap beside the default's.

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
        "val_bpb": best.evidence_mean,
        "runs": best.runs,
        "evidence_runs": best.evidence_runs,
        "authors": best.authors,
        "sigma": view.sigma,
        "sigma_df": view.sigma_df,
        "changes": diff_in_words(best.config, resolve),
        "test_bpb": holdout[best.config][1] if best.config in holdout else None,
        "holdout_gap": gap,  # test_bpb - val_bpb over the same runs
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
        """How the config that answered a hypothesis did: its runs, and its mean against its parent's."""
        stats = self.stats.get(config)
        if stats is None:  # matched on (parent, diff), but no member's run of it counts in the view
            return {"config_hash": config, "outcomes": {}, "val_bpb": None, "verdict": "no counted runs"}
        base = self.stats.get(parent)
        base_mean = base.mean if base else None
        # rounded to what a run can tell apart: float noise in the sixth decimal is not a result
        delta = round(stats.mean - base_mean, 6) if stats.mean is not None and base_mean is not None else None
        outcomes = self.outcomes[config]
        return {
            "config_hash": config,
            "outcomes": dict(outcomes),  # e.g. {"ok": 3, "crash": 1}
            "authors": stats.authors,
            "val_bpb": stats.mean,  # over its ok runs
            "parent_val_bpb": base_mean,
            "delta": delta,
            "delta_sigma": round(delta / self.view.sigma, 2) if delta is not None else None,
            "accepted": stats.accepted,
            "verdict": _verdict(self.view, stats, delta, outcomes),
        }


def _verdict(view: TrackView, stats: ConfigStats, delta: float | None, outcomes: Counter) -> str:
    """In words: kept (accepted), candidate, how it failed, not better, not significant, ahead but unverified."""
    if stats.accepted:
        return "kept"
    if stats in view.candidates:
        return "candidate: being re-run"
    if stats.runs == 0:
        return "every run failed: " + ", ".join(sorted(outcomes))
    if delta is None:
        return "its parent has no ok run"
    if delta >= 0:
        return "not better"
    return "not significant" if stats.verified else "ahead, unverified"
