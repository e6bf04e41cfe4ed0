"""A running experiment's progress, read from the trainer's log lines as they arrive.

The trainer prints a step line every few seconds (the share of its budget spent, the training loss)
and one line when training is over. That is enough to show, for every budget kind (tokens, steps or
seconds), how far a run is, how much training time it has left at the pace of the last minute, and
its loss curve. Pure: the clock is passed in.
"""

import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from trainer.report import EVALUATING_LINE, STEP_LINE

PACE_WINDOW_S = 60.0  # the pace of the last minute: on a box whose load changes, the estimate follows
CURVE_POINTS = 120  # the loss curve is thinned to at most this many points


@dataclass(frozen=True)
class LossPoint:
    step: int
    loss: float


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands now; ``to_status()`` is what `arnode status`, the live view and the page show."""

    phase: str  # starting (imports, data, model), training or evaluating
    elapsed_s: float  # since the trainer started
    fraction: float  # of the budget spent: the latest step line's, carried forward at the recent pace
    left_s: float | None  # training time left at that pace (the short evaluation comes after); None: pace unknown
    step: int | None
    loss: float | None  # the latest step line's training loss
    curve: tuple[LossPoint, ...] = ()

    def to_status(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Sighting:
    at: float  # clock seconds
    fraction: float


class ProgressTracker:
    """Fed the trainer's lines one by one (``note``); ``progress()`` at any moment."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self._recent: deque[_Sighting] = deque()  # the step lines of the pace window, and one just before it
        self._curve: list[LossPoint] = []
        self._evaluating = False

    def note(self, line: str) -> None:
        line = line.strip()
        if EVALUATING_LINE.match(line):
            self._evaluating = True
            return
        match = STEP_LINE.match(line)
        if match is None:
            return
        now = self.clock()
        self._recent.append(_Sighting(now, min(float(match["percent"]) / 100, 1.0)))
        while len(self._recent) > 2 and now - self._recent[1].at >= PACE_WINDOW_S:
            self._recent.popleft()
        self._curve.append(LossPoint(int(match["step"]), float(match["loss"])))
        if len(self._curve) > CURVE_POINTS:
            self._curve = self._curve[::2]  # an odd count: the first and the latest points stay

    def progress(self) -> RunProgress:
        now = self.clock()
        elapsed = now - self.started
        if not self._recent:
            return RunProgress("starting", elapsed, 0.0, None, None, None)
        latest, curve = self._curve[-1], tuple(self._curve)
        if self._evaluating:
            return RunProgress("evaluating", elapsed, 1.0, 0.0, latest.step, latest.loss, curve)
        first, last = self._recent[0], self._recent[-1]
        pace = (last.fraction - first.fraction) / (last.at - first.at) if last.at > first.at else 0.0
        fraction = min(last.fraction + pace * (now - last.at), 1.0)
        left = (1.0 - fraction) / pace if pace > 0 else None
        return RunProgress("training", elapsed, fraction, left, latest.step, latest.loss, curve)


def duration(seconds: float) -> str:
    """A duration for people: 45 s, 12 min, 1 h 38 min."""
    if seconds < 100:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def progress_words(progress: dict[str, Any]) -> str:
    """``to_status()`` in words: 'training 21.6%, step 161, loss 4.1234, 27 min in, about 1 h 38 min left'."""
    phase, elapsed = progress["phase"], duration(progress["elapsed_s"])
    if phase == "starting":
        return f"starting, {elapsed} in"
    head = f"{phase} {100 * progress['fraction']:.1f}%, step {progress['step']}, loss {progress['loss']:.4f}"
    if phase == "evaluating":
        return f"{head}, {elapsed} in"
    left = "time left not known yet" if progress["left_s"] is None else f"about {duration(progress['left_s'])} left"
    return f"{head}, {elapsed} in, {left}"


def text_bar(fraction: float, width: int = 20) -> str:
    """A progress bar in plain text: [#######.............]."""
    filled = round(max(0.0, min(fraction, 1.0)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"
