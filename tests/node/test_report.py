"""What people are shown: one score per config row, and the holdout beside the best's."""

import pytest

from node import report
from node.store.ledger import Ledger
from protocol.acceptance import TrackView
from protocol.policy import Policy
from tests.node.research.test_loop import ROOT, TRACK, ledger_with_holdout
from tests.node.store.test_ledger import POLICY, T0, person, result
from tests.node.store.test_ledger import TRACK as SCENARIO_TRACK


def disagreeing_lineage() -> list:
    """A default, a null change that pools into it, a lone lucky run and a real gain with four runs.

    The lucky run's own mean (0.995) is below the gain's (0.996), but one run of a change is mostly
    luck to the lineage model, so its estimate lies above the gain's: mean and estimate disagree.
    """
    alice, bob = person(0), person(1)

    def runs(diff: dict, start: int, values: list[float]) -> list:
        return [result((alice, bob)[i % 2], T0 + start + i, diff, bpb=v, seed=i) for i, v in enumerate(values)]

    return (
        runs({}, 0, [1.000, 1.001, 0.999, 1.000])
        + runs({"weight_decay": 0.25}, 10, [1.001, 0.999, 1.000])
        + runs({"matrix_lr": 0.05}, 20, [0.995])
        + runs({"depth": 10}, 30, [0.996, 0.997, 0.995, 0.996])
    )


@pytest.fixture
def ledger(tmp_path):
    with Ledger.open(tmp_path / "ledger.sqlite", POLICY) as opened:
        yield opened


def board(ledger: Ledger, records: list) -> tuple[TrackView, list[dict]]:
    ledger.add_many([record.raw for record in records], now_ms=T0 + 60_000)
    view = ledger.view(SCENARIO_TRACK.key)
    return view, report.leaderboard_rows(view, ledger.resolve_config, None, {})


def test_rows_are_sorted_by_the_estimate_they_show_even_where_the_means_disagree(ledger):
    view, rows = board(ledger, disagreeing_lineage())
    shown = [row["estimate"] for row in rows]
    assert shown == sorted(shown) and None not in shown
    means = [row["mean_val_bpb"] for row in rows]
    assert means != sorted(means)  # sorted by the plain means, the rows would come in another order
    by_config = {row["config_hash"]: row for row in rows}
    assert all(by_config[s.config]["estimate"] == s.estimate for s in view.leaderboard)
    default = by_config[next(s.config for s in view.leaderboard if s.is_default)]
    # the default's score pools its null child's three runs with its own four, from both authors
    assert (default["runs"], default["own_runs"], default["authors"]) == (7, 4, 2)
    assert default["mean_val_bpb"] == pytest.approx(1.0) and default["estimate"] != default["mean_val_bpb"]
    assert [row["rank"] for row in rows] == list(range(1, len(rows) + 1))


def test_the_best_summary_shows_the_score_its_row_shows(ledger):
    view, rows = board(ledger, disagreeing_lineage())
    summary = report.best_summary(view, ledger.resolve_config, {})
    (row,) = [row for row in rows if row["standing"] == "best"]
    assert (summary["estimate"], summary["runs"], summary["authors"]) == (row["estimate"], row["runs"], row["authors"])
    score = ("estimate", "runs", "authors")
    assert report.best_brief(view) == {"config": row["config_hash"], **{name: row[name] for name in score}}


def test_a_config_with_only_failed_runs_has_no_estimate_and_comes_last(ledger):
    _, rows = board(ledger, [*disagreeing_lineage(), result(person(0), T0 + 40, {"head_dim": 64}, bpb=None)])
    assert rows[-1]["estimate"] is None and rows[-1]["failed"] == 1 and rows[-1]["own_runs"] == 0
    assert all(row["estimate"] is not None for row in rows[:-1])


def test_best_shows_its_holdout_gap_beside_the_defaults(tmp_path):
    ledger = ledger_with_holdout(tmp_path, 1.6)
    view = ledger.view(TRACK.key)
    holdout = report.holdout_scores(ledger, TRACK.key, [s.config for s in view.leaderboard])
    summary = report.best_summary(view, ledger.resolve_config, holdout)
    assert summary["config_hash"] == ROOT and summary["mean_test_bpb"] == 1.6
    # the default's four runs scored 1.500, 1.499, 1.498, 1.497 on val and 1.6 on the holdout
    assert abs(summary["holdout_gap"] - (1.6 - 1.4985)) < 1e-9
    assert summary["gap_growth"] == 0.0  # the best is the default here
    rows = report.leaderboard_rows(view, ledger.resolve_config, None, holdout)
    assert {row["mean_test_bpb"] for row in rows} == {1.6}


def test_runs_from_before_the_holdout_show_no_holdout_score(tmp_path):
    ledger = ledger_with_holdout(tmp_path, 1.6)
    view = ledger.view(TRACK.key)
    assert report.holdout_scores(ledger, TRACK.key, ["f" * 64]) == {}
    summary = report.best_summary(view, ledger.resolve_config, {})
    assert summary["mean_test_bpb"] is None and summary["holdout_gap"] is None and summary["gap_growth"] is None


def test_the_score_line_says_how_far_a_run_may_count_where_the_policy_clips_runs():
    assert "median" not in report.score_header(POLICY)
    clipping = Policy(min_runs=2, min_authors=1, clip_floors=3)  # three floors of 0.002 bpb
    said = "; each run's val_bpb counts at most 0.006000 from its config's median"
    assert report.score_header(clipping) == report.score_header(POLICY) + said
