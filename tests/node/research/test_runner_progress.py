"""A running experiment's progress, from the lines the trainer's own code prints, for every budget kind."""

import pytest

from node.research.run_progress import CURVE_POINTS, ProgressTracker, duration, progress_words, text_bar
from trainer.train import UNTIMED_STEPS, Budget, Stats, evaluating_line, progress_line

STEP_S = 2.0  # each simulated step takes this long on the tracker's clock
TOKENS_PER_STEP = 4096
STEPS = 100  # every budget below is spent after this many steps
BUDGETS = {
    "tokens": STEPS * TOKENS_PER_STEP,
    "steps": STEPS,
    "seconds": round((STEPS - UNTIMED_STEPS) * STEP_S),  # the warm-up steps do not count against it
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def train(
    tracker: ProgressTracker, clock: Clock, budget: Budget, stats: Stats, steps: int, log_every: int = 3, step_s=STEP_S
) -> None:
    """``steps`` steps as trainer.train.run counts them, with a progress line every ``log_every``."""
    for _ in range(steps):
        clock.now += step_s
        stats.steps += 1
        stats.tokens += TOKENS_PER_STEP
        if stats.steps > UNTIMED_STEPS:
            stats.train_seconds += step_s
        if stats.steps % log_every == 0:
            loss = 8.0 - stats.steps / 50
            tracker.note(progress_line(stats, budget, loss, multiplier=1.0, step_seconds=step_s) + "\n")


@pytest.mark.parametrize("kind", BUDGETS)
def test_every_budget_kind_shows_how_far_a_run_is_and_the_training_time_left(kind):
    clock = Clock()
    tracker, budget, stats = ProgressTracker(clock), Budget(kind, BUDGETS[kind]), Stats()
    assert tracker.progress().phase == "starting"
    clock.now += 15  # imports, data, model
    train(tracker, clock, budget, stats, steps=51)
    now = tracker.progress()
    assert (now.phase, now.step, now.loss) == ("training", 51, pytest.approx(8.0 - 51 / 50))
    assert now.fraction == pytest.approx(budget.progress(stats), abs=0.0005)  # the line shows 0.1%
    assert now.left_s == pytest.approx((STEPS - 51) * STEP_S, rel=0.01)  # the pace of the last minute, carried forward
    clock.now += STEP_S  # between two lines, the bar moves on at that pace
    assert tracker.progress().left_s == pytest.approx((STEPS - 52) * STEP_S, rel=0.01)
    assert tracker.progress().elapsed_s == pytest.approx(15 + 52 * STEP_S)

    train(tracker, clock, budget, stats, steps=STEPS - 51)
    tracker.note(evaluating_line(stats))
    done = tracker.progress()
    assert (done.phase, done.fraction, done.left_s, done.step) == ("evaluating", 1.0, 0.0, 99)
    assert [point.step for point in done.curve] == list(range(3, STEPS, 3))


def test_the_pace_follows_a_box_whose_load_changes():
    clock = Clock()
    tracker, budget, stats = ProgressTracker(clock), Budget("steps", 1000), Stats()
    train(tracker, clock, budget, stats, steps=300)
    train(tracker, clock, budget, stats, steps=90, step_s=2 * STEP_S)  # something else takes half the CPU now
    # a minute of slow steps is all the estimate sees now
    assert tracker.progress().left_s == pytest.approx((1000 - 390) * 2 * STEP_S, rel=0.02)


def test_the_loss_curve_is_thinned_keeping_the_first_and_the_latest_points():
    clock = Clock()
    tracker, budget, stats = ProgressTracker(clock), Budget("steps", 10_000), Stats()
    train(tracker, clock, budget, stats, steps=390, log_every=1)
    curve = tracker.progress().curve
    assert len(curve) <= CURVE_POINTS and curve[0].step == 1 and curve[-1].step == 390
    assert [point.step for point in curve] == sorted({point.step for point in curve})


def test_lines_that_are_not_progress_change_nothing():
    clock = Clock()
    tracker = ProgressTracker(clock)
    for line in ("device cpu (AMD EPYC), 1 threads", "step 12 looks odd", "Traceback (most recent call last):", ""):
        tracker.note(line)
    assert tracker.progress().phase == "starting" and tracker.progress().curve == ()


def test_progress_in_words_and_as_a_bar():
    clock = Clock()
    tracker, budget, stats = ProgressTracker(clock), Budget("tokens", 1000 * TOKENS_PER_STEP), Stats()
    assert progress_words(tracker.progress().to_status()) == "starting, 0 s in"
    train(tracker, clock, budget, stats, steps=216, log_every=6)
    status = tracker.progress().to_status()
    assert progress_words(status) == "training 21.6%, step 216, loss 3.6800, 7 min in, about 26 min left"
    assert text_bar(status["fraction"]) == "[####................]"
    assert status["curve"][-1] == {"step": 216, "loss": pytest.approx(3.68)}
    assert [duration(s) for s in (42, 99.4, 1606, 5880)] == ["42 s", "99 s", "27 min", "1 h 38 min"]
