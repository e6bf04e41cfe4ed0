"""What `arnode results`, `best` and `export` show: rows derived from the ledger's views."""

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from node.progress import accepted_configs, run_status
from protocol.acceptance import ConfigStats, TrackView, bpb
from protocol.config import PROFILES, ROOTS, default_config, diff_between
from protocol.errors import ProtocolError
from protocol.records import Record

TSV_HEADER = ("commit", "val_bpb", "memory_gb", "status", "description")


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
    return ", ".join(f"{name} {base[name]}->{value}" for name, value in changes.items()) or "default"


def leaderboard_rows(view: TrackView, resolve, limit: int | None) -> list[dict[str, Any]]:
    rows = []
    for rank, stats in enumerate(view.leaderboard[:limit], start=1):
        rows.append(
            {
                "rank": rank,
                "config_hash": stats.config,
                "val_bpb": stats.evidence_mean,
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


def best_summary(view: TrackView, resolve) -> dict[str, Any] | None:
    best: ConfigStats | None = view.best
    if best is None:
        return None
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
    }


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
        rows.append((record.hex_id[:12], score, memory_gb, status, " ".join(_description(body).split())))
    return rows


def _description(body: Mapping[str, Any]) -> str:
    """What was tried; a run that did not finish says how it ended first ("killed: ...")."""
    tried = body["hypothesis"] or ("baseline" if body["config"] in ROOTS else "")
    if body["outcome"] == "ok":
        return tried or "ok"
    return f"{body['outcome']}: " + "; ".join(part for part in (body["error"], tried) if part)


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)
