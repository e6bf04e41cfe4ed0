"""What people are shown about the holdout: scores per config and the best's gap against the default's."""

from node import report
from tests.node.research.test_loop import ROOT, TRACK, ledger_with_holdout


def test_best_shows_its_holdout_gap_beside_the_defaults(tmp_path):
    ledger = ledger_with_holdout(tmp_path, 1.6)
    view = ledger.view(TRACK.key)
    holdout = report.holdout_scores(ledger, TRACK.key, [s.config for s in view.leaderboard])
    summary = report.best_summary(view, ledger.resolve_config, holdout)
    assert summary["config_hash"] == ROOT and summary["test_bpb"] == 1.6
    # the default's four runs scored 1.500, 1.499, 1.498, 1.497 on val and 1.6 on the holdout
    assert abs(summary["holdout_gap"] - (1.6 - 1.4985)) < 1e-9
    assert summary["gap_growth"] == 0.0  # the best is the default here
    rows = report.leaderboard_rows(view, ledger.resolve_config, None, holdout)
    assert {row["test_bpb"] for row in rows} == {1.6}


def test_runs_from_before_the_holdout_show_no_holdout_score(tmp_path):
    ledger = ledger_with_holdout(tmp_path, 1.6)
    view = ledger.view(TRACK.key)
    assert report.holdout_scores(ledger, TRACK.key, ["f" * 64]) == {}
    summary = report.best_summary(view, ledger.resolve_config, {})
    assert summary["test_bpb"] is None and summary["holdout_gap"] is None and summary["gap_growth"] is None
