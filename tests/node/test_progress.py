"""The progress picture draws the accepted best, never the luckiest run, and failures at the bottom edge."""

import random

import pytest

from node import progress, report
from node.store.ledger import Ledger
from protocol.policy import Policy
from tests.node.store.test_ledger import T0, TRACK, person, result

POLICY = Policy(min_runs=4, min_authors=1)


def picture(tmp_path, records) -> progress.TrackProgress:
    ledger = Ledger.open(tmp_path / "ledger.sqlite", POLICY)
    try:
        for record in records:
            ledger.add(record.raw, now_ms=T0 + 10**9)
        views = ledger.assess()
        holdout = report.accepted_holdout(ledger, views)
        (track,) = progress.ledger_progress({TRACK.key: ledger.runs(TRACK.key)}, views, POLICY, holdout)
    finally:
        ledger.close()
    return track


def noise(count: int, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [2.0 + rng.gauss(0, 0.002) for _ in range(count)]


def drawn(track: progress.TrackProgress):
    figure = progress.figure([track])
    figure.canvas.draw()  # lay out the ticks
    (axis,) = figure.axes
    return axis, {c.get_label(): c for c in axis.collections}, {line.get_label(): line for line in axis.lines}


def test_seed_noise_alone_never_moves_the_best_line(tmp_path):
    # runs of the default config only, the later ones luckier and luckier: a running-minimum staircase
    values = sorted(noise(10), reverse=True)
    track = picture(tmp_path, [result(person(0), T0 + i, bpb=v, seed=i) for i, v in enumerate(values)])
    assert [(step.experiment, step.config) for step in track.best] == [(4, track.best[0].config)]
    axis, _, lines = drawn(track)
    assert len(set(lines["accepted best"].get_ydata())) == 1
    assert track.title == f"10 experiments, best {track.best[0].config[:10]}"
    assert axis.get_title().startswith(track.title)


def test_a_real_gain_steps_the_line_down_once_it_is_verified(tmp_path):
    parent = [result(person(0), T0 + i, bpb=v, seed=i) for i, v in enumerate(noise(4))]
    child = [result(person(0), T0 + 10 + i, {"depth": 10}, bpb=v - 0.05, seed=i) for i, v in enumerate(noise(6, 2))]
    track = picture(tmp_path, parent + child)
    first, second = track.best
    assert first.experiment == 4 and second.estimate == pytest.approx(1.95, abs=0.005)
    assert second.experiment == 6  # 25 sigma: accepted at its first replication, never on its discovery run
    assert second.band == pytest.approx(2 * POLICY.sigma_floor_ubpb / 1e6 / 5**0.5, rel=0.5)
    assert track.kept == 10


def test_failed_and_killed_runs_sit_on_the_bottom_edge_and_candidates_are_marked(tmp_path):
    runs = [result(person(0), T0 + i, bpb=v, seed=i) for i, v in enumerate(noise(4))]
    runs += [
        result(person(0), T0 + 10, {"depth": 10}, bpb=1.9),  # a lone run far ahead: a candidate
        result(person(0), T0 + 11, {"depth": 6}, bpb=None),
        result(person(0), T0 + 12, {"depth": 12}, bpb=None, failure="killed"),
    ]
    track = picture(tmp_path, runs)
    assert [(p.status, p.candidate) for p in track.points[4:]] == [
        ("discard", True),
        ("crash", False),
        ("crash", False),
    ]
    axis, scatters, _ = drawn(track)
    for outcome, experiment in (("crash", 6), ("killed", 7)):
        marks = scatters[outcome]
        assert marks.get_offset_transform() == axis.get_xaxis_transform()  # y in axes fractions, not in bpb
        assert marks.get_offsets().tolist() == [[experiment, progress.FAILURE_STRIP / 2]]
    assert scatters["crash"].get_paths() != scatters["killed"].get_paths()
    assert scatters["candidate (to verify)"].get_offsets().tolist() == [[5, 1.9]]
    assert all(float(tick).is_integer() for tick in axis.get_xticks())


def test_an_empty_ledger_draws_an_empty_picture(tmp_path):
    figure = progress.figure([])
    assert figure.axes[0].get_title() == "no experiments yet"
    progress.draw([], tmp_path / "empty.png")
    assert (tmp_path / "empty.png").read_bytes()[:4] == b"\x89PNG"


def test_the_holdout_of_the_accepted_best_is_drawn_beside_it(tmp_path):
    runs = [result(person(0), T0 + i, bpb=v, seed=i, test_bpb=v + 0.1) for i, v in enumerate(noise(4))]
    track = picture(tmp_path, runs)
    (step,) = track.best
    assert step.holdout == pytest.approx(step.estimate + 0.1, abs=1e-6)
    _, _, lines = drawn(track)
    assert set(lines["its holdout (test_bpb)"].get_ydata()) == {step.holdout}


def test_runs_from_before_the_holdout_draw_no_holdout_line(tmp_path):
    track = picture(tmp_path, [result(person(0), T0 + i, bpb=v, seed=i) for i, v in enumerate(noise(4))])
    assert track.best[0].holdout is None
    _, _, lines = drawn(track)
    assert "its holdout (test_bpb)" not in lines


def test_a_long_track_redrawn_with_its_kept_replay_equals_a_picture_replayed_from_scratch(tmp_path, monkeypatch):
    # a grid from 8 runs on (every 2nd or 4th run) keeps the track short; the replay is kept between drawings
    monkeypatch.setattr(progress, "REPLAY_EVERY_RUN_UP_TO", 8)
    monkeypatch.setattr(progress, "REPLAY_POINTS", 6)
    parent = [result(person(0), T0 + i, bpb=v, seed=i) for i, v in enumerate(noise(6))]
    child = [result(person(0), T0 + 10 + i, {"depth": 10}, bpb=v - 0.05, seed=i) for i, v in enumerate(noise(14, 2))]
    records = parent + child
    replays: dict[str, progress.BestReplay] = {}
    ledger = Ledger.open(tmp_path / "ledger.sqlite", POLICY)
    try:
        for count in (12, 16, 20):
            for record in records[len(ledger) : count]:
                ledger.add(record.raw, now_ms=T0 + 10**9)
            views, runs = ledger.assess(), {TRACK.key: ledger.runs(TRACK.key)}
            (kept,) = progress.ledger_progress(runs, views, POLICY, replays=replays)
            (fresh,) = progress.ledger_progress(runs, views, POLICY)
            assert kept == fresh
    finally:
        ledger.close()
    assert [step.config for step in fresh.best] == [parent[0].body["config"], child[0].body["config"]]
    assert fresh.best[1].experiment in progress._replay_points(20)
