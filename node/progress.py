"""The progress picture: every run of a track, and the accepted best over time with its uncertainty.

The line is the swarm's accepted best config, not the lowest single run: a lucky seed of the
same config never draws an "improvement". It steps only when the acceptance rule, replayed over
the runs known at that point, names another best; each step sits at that config's evidence mean
as the whole ledger knows it now, with a band of +-2 standard errors (the track's pooled sigma
over the config's evidence runs). Failed and killed runs have no val_bpb, so they sit on the
bottom edge with their own markers, never at a made-up height. A dashed line shows the accepted
best's holdout score (test_bpb), so a gap opening between the two is visible at a glance.

``arnode plot`` writes it as a PNG; the dashboard serves the same drawing.
"""

import math
from collections.abc import Mapping, Set
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from protocol.acceptance import Run, TrackView, assess, bpb
from protocol.config import ROOTS
from protocol.policy import Policy

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPLAY_EVERY_RUN_UP_TO = 400  # above this, the best is replayed at REPLAY_POINTS evenly spaced runs
REPLAY_POINTS = 200
BAND_SE = 2  # the band's half-width in standard errors
MIN_Y_SPAN = 0.02  # bpb: the least height of the value axis, a few times a GPU's seed noise


def accepted_configs(view: TrackView | None) -> frozenset[str]:
    return frozenset(s.config for s in view.leaderboard if s.accepted) if view else frozenset()


def run_status(outcome: str, config: str, accepted: Set[str]) -> str:
    """autoresearch's status words: keep (the baseline or an accepted config), discard, or crash."""
    if outcome != "ok":
        return "crash"
    return "keep" if config in accepted or config in ROOTS else "discard"


@dataclass(frozen=True)
class Point:
    experiment: int  # 1-based, in record order
    outcome: str
    val_bpb: float | None
    status: str
    candidate: bool  # its config is a candidate now: verifiers will re-run it


@dataclass(frozen=True)
class BestStep:
    experiment: int  # the run after which this config became the accepted best
    config: str
    mean: float  # its evidence mean, as the whole ledger knows it now
    band: float  # BAND_SE standard errors
    holdout: float | None = None  # its mean test_bpb, for people's eyes only; None before the holdout existed


@dataclass(frozen=True)
class TrackProgress:
    track: str
    points: tuple[Point, ...]
    best: tuple[BestStep, ...]

    @property
    def kept(self) -> int:
        return sum(point.status == "keep" for point in self.points)

    @property
    def title(self) -> str:
        return f"{len(self.points)} experiments, {self.kept} kept"


def track_progress(
    runs: list[Run], view: TrackView, policy: Policy, holdout: Mapping[str, float] | None = None
) -> TrackProgress:
    """One track's picture from its runs in record order, its current view and its configs' holdout scores."""
    accepted, candidates = accepted_configs(view), {s.config for s in view.candidates}
    points = tuple(
        Point(
            n,
            run.outcome,
            bpb(run.val_bpb_ubpb),
            run_status(run.outcome, run.config, accepted),
            run.config in candidates,
        )
        for n, run in enumerate(runs, start=1)
    )
    stats = {s.config: s for s in view.leaderboard}
    steps: list[BestStep] = []
    for n in _replay_points(len(runs)):
        best = assess(runs[:n], policy)[view.track.key].best
        if best is not None and (not steps or steps[-1].config != best.config):
            now = stats[best.config]
            band = BAND_SE * view.sigma / math.sqrt(now.evidence_runs)
            steps.append(BestStep(n, best.config, now.evidence_mean, band, (holdout or {}).get(best.config)))
    return TrackProgress(view.track.key, points, tuple(steps))


def _replay_points(runs: int) -> list[int]:
    if runs <= REPLAY_EVERY_RUN_UP_TO:
        return list(range(1, runs + 1))
    return sorted({math.ceil(runs * (i + 1) / REPLAY_POINTS) for i in range(REPLAY_POINTS)})


def ledger_progress(
    runs_by_track: Mapping[str, list[Run]],
    views: Mapping[str, TrackView],
    policy: Policy,
    holdout: Mapping[str, Mapping[str, float]] | None = None,
) -> list[TrackProgress]:
    """Every track's picture, in the views' order; ``holdout``: per track, test_bpb per config."""
    holdout = holdout or {}
    return [track_progress(runs_by_track[key], view, policy, holdout.get(key)) for key, view in views.items()]


FAILURE_STRIP = 0.08  # the bottom strip's height, a fraction of the axes
OUTCOME_MARKERS = {"killed": ("v", "tab:purple"), "crash": ("x", "tab:red")}  # others draw like a crash


def draw(progress: list[TrackProgress], out: Path | BinaryIO) -> None:
    """The picture as a PNG at ``out`` (a path or a binary file)."""
    figure(progress).savefig(out, format="png", dpi=110)


def figure(progress: list[TrackProgress]) -> "Figure":
    """The picture, one panel per track. Matplotlib's object API, so any thread may draw."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    drawn = Figure(figsize=(10, 4.5 * max(1, len(progress))))
    axes = drawn.subplots(len(progress) or 1, 1, squeeze=False)
    for axis, track in zip(axes[:, 0], progress, strict=False):
        _draw_track(axis, track)
    if not progress:
        axes[0, 0].set_title("no experiments yet")
    for axis in axes[:, 0]:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    drawn.tight_layout()
    return drawn


def _draw_track(axis, track: TrackProgress) -> None:
    ok = [p for p in track.points if p.val_bpb is not None]
    for status, color, size, label in (("discard", "0.65", 14, "discarded"), ("keep", "tab:green", 24, "kept")):
        chosen = [p for p in ok if p.status == status and not p.candidate]
        if chosen:
            axis.scatter([p.experiment for p in chosen], [p.val_bpb for p in chosen], color=color, s=size, label=label)
    candidates = [p for p in ok if p.candidate]
    if candidates:
        xs, ys = [p.experiment for p in candidates], [p.val_bpb for p in candidates]
        axis.scatter(xs, ys, color="tab:orange", marker="D", s=30, edgecolor="black", label="candidate (to verify)")
    failed = [p for p in track.points if p.val_bpb is None]
    if failed:
        _draw_failures(axis, failed)
    if track.best:
        xs = [step.experiment for step in track.best] + [len(track.points)]
        means = [step.mean for step in track.best] + [track.best[-1].mean]
        bands = [step.band for step in track.best] + [track.best[-1].band]
        low, high = (
            [m - b for m, b in zip(means, bands, strict=True)],
            [m + b for m, b in zip(means, bands, strict=True)],
        )
        axis.fill_between(xs, low, high, step="post", color="tab:blue", alpha=0.15, label=f"±{BAND_SE} SE")
        axis.step(xs, means, where="post", color="tab:blue", linewidth=2, label="accepted best")
        holdout = [step.holdout for step in track.best] + [track.best[-1].holdout]
        if any(value is not None for value in holdout):
            ys = [math.nan if value is None else value for value in holdout]
            axis.step(xs, ys, where="post", color="tab:brown", linestyle="--", label="its holdout (test_bpb)")
    axis.set_xlim(0.5, max(len(track.points), 1) + 0.5)
    low, high = axis.get_ylim()
    if high - low < MIN_Y_SPAN:  # a few close runs must not look like a dramatic spread
        middle = (low + high) / 2
        axis.set_ylim(middle - MIN_Y_SPAN / 2, middle + MIN_Y_SPAN / 2)
    if failed:  # room for the strip of failures below the lowest value
        low, high = axis.get_ylim()
        axis.set_ylim(low - FAILURE_STRIP * (high - low) / (1 - FAILURE_STRIP), high)
    axis.set_title(f"{track.title}\n{track.track}", fontsize=10)
    axis.set_xlabel("experiment #")
    axis.set_ylabel("bits per byte (lower is better)")
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)


def _draw_failures(axis, failed: list[Point]) -> None:
    """Runs without a val_bpb, on a grey strip along the bottom edge (y in axes fractions, not in bpb)."""
    edge = axis.get_xaxis_transform()
    from matplotlib.patches import Rectangle

    axis.add_patch(Rectangle((0, 0), 1, FAILURE_STRIP, transform=axis.transAxes, color="0.92", zorder=0))
    for outcome in sorted({p.outcome for p in failed}):
        marker, color = OUTCOME_MARKERS.get(outcome, OUTCOME_MARKERS["crash"])
        xs = [p.experiment for p in failed if p.outcome == outcome]
        axis.scatter(xs, [FAILURE_STRIP / 2] * len(xs), transform=edge, marker=marker, color=color, s=30, label=outcome)
