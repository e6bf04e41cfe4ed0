"""The progress picture: every run of a track, and the accepted best over time with its uncertainty.

The line is the swarm's accepted best config, not the lowest single run: a lucky seed of the
same config never draws an "improvement". It steps only when the acceptance rule, replayed over
the runs known at that point (every run, or on a long track a grid of points that stays put as it
grows, each point's best remembered for the next drawing), names another best; each step sits at
that config's estimate (the number `arnode best` shows) as the whole ledger knows it now, with a
band of +-2 standard errors (the track's pooled sigma over the runs behind the estimate). Failed
and killed runs have no val_bpb, so they sit on the bottom edge with their own markers, never at a
made-up height; a track with none ok yet has no value axis at all. A dashed line shows the accepted
best's holdout score (test_bpb), so a gap opening between the two is visible at a glance.

``arnode plot`` writes it as a PNG; the dashboard serves the same drawing.
"""

import hashlib
import math
from collections.abc import Mapping, Set
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from node.store.views import collector_paused
from protocol.acceptance import Derivations, Run, TrackView, assess, bpb
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
    estimate: float  # its estimate, as the whole ledger knows it now
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
        return headline(len(self.points), self.best[-1].config if self.best else None)


def headline(experiments: int, best: str | None) -> str:
    """A track in a few words, as the plot and the dashboard title it: its experiments and its best."""
    runs = f"{experiments} experiment" + ("" if experiments == 1 else "s")
    return f"{runs}, best {best[:10]}" if best else f"{runs}, no accepted best yet"


class BestReplay:
    """The accepted best after each replayed prefix of a track's runs, as the rule names it on that prefix.

    Every replay shares one set of config derivations, and each prefix's best is remembered by a
    digest of the prefix's run IDs: a picture drawn again after more runs arrived replays only the
    new points (the grid of _replay_points keeps most points in place as a track grows), and the
    last point is the current view itself.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._derivations: Derivations = {}
        self._bests: dict[bytes, str | None] = {}  # prefix digest -> its best config (None: none accepted)

    def bests(self, runs: list[Run], view: TrackView) -> list[tuple[int, str | None]]:
        """(n, the best config after the first n runs) at each replay point; ``view`` is of all ``runs``."""
        points, replayed, digest, kept = _replay_points(len(runs)), [], hashlib.sha256(), {}
        done = 0
        for n in points:
            for run in runs[done:n]:
                digest.update(run.id)
            done, key = n, digest.digest()
            if key not in self._bests:
                if n == len(runs):
                    self._bests[key] = view.best.config if view.best else None
                else:
                    with collector_paused():
                        best = assess(runs[:n], self.policy, self._derivations)[view.track.key].best
                    self._bests[key] = best.config if best else None
            kept[key] = self._bests[key]
            replayed.append((n, kept[key]))
        self._bests = kept  # points no longer on the grid are forgotten
        return replayed


def track_progress(
    runs: list[Run],
    view: TrackView,
    policy: Policy,
    holdout: Mapping[str, float] | None = None,
    replay: BestReplay | None = None,
) -> TrackProgress:
    """One track's picture from its runs in record order, its current view and its configs' holdout scores;
    ``replay`` (one per track) remembers the past bests of an earlier picture of the same track."""
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
    for n, best in (replay or BestReplay(policy)).bests(runs, view):
        if best is not None and (not steps or steps[-1].config != best):
            now = stats[best]
            band = BAND_SE * view.sigma / math.sqrt(now.pooled_runs)
            steps.append(BestStep(n, best, now.estimate, band, (holdout or {}).get(best)))
    return TrackProgress(view.track.key, points, tuple(steps))


def _replay_points(runs: int) -> list[int]:
    """Every run up to REPLAY_EVERY_RUN_UP_TO, above it every ``step``-th (a power of two, so at most
    REPLAY_POINTS points) and the last: as a track grows the points stay, until the step doubles."""
    if runs <= REPLAY_EVERY_RUN_UP_TO:
        return list(range(1, runs + 1))
    step = 1 << max(0, math.ceil(math.log2(runs / REPLAY_POINTS)))
    return [*range(step, runs, step), runs]


def ledger_progress(
    runs_by_track: Mapping[str, list[Run]],
    views: Mapping[str, TrackView],
    policy: Policy,
    holdout: Mapping[str, Mapping[str, float]] | None = None,
    replays: dict[str, BestReplay] | None = None,
) -> list[TrackProgress]:
    """Every track's picture, in the views' order; ``holdout``: per track, test_bpb per config. A caller
    that draws again and again (the dashboard) keeps ``replays`` between drawings: per track, the past
    bests already replayed."""
    holdout, replays = holdout or {}, {} if replays is None else replays
    return [
        track_progress(runs_by_track[key], view, policy, holdout.get(key), replays.setdefault(key, BestReplay(policy)))
        for key, view in views.items()
    ]


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
    groups = (("discard", "0.65", 14, "not accepted"), ("keep", "tab:green", 24, "accepted or default"))
    for status, color, size, label in groups:
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
        means = [step.estimate for step in track.best] + [track.best[-1].estimate]
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
    if not ok:  # nothing measured a val_bpb: no value axis to draw, not a made-up one
        axis.set_ylim(0, 1)
        axis.set_yticks([])
        axis.text(0.5, 0.5, "no val_bpb yet: no run has finished ok", transform=axis.transAxes, ha="center")
    low, high = axis.get_ylim()
    if ok and high - low < MIN_Y_SPAN:  # a few close runs must not look like a dramatic spread
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
