"""`arnode results`, `best`, `hypotheses` and `plot` on a real home: a swarm file and an SQLite ledger."""

import json

import pytest

import cli
from node import progress, report
from node.commands.reading import HYPOTHESIS_COLUMNS
from node.home import Home
from node.store.ledger import Ledger
from node.swarmfile import write_swarm_file
from protocol.config import Config, apply, config_hash
from protocol.records import Record, sign
from tests.node.store.test_ledger import DEFAULT, POLICY, ROOT, T0, TRACK, person, result, scenario
from tests.node.test_report import disagreeing_lineage

DEEPER = apply(DEFAULT, {"depth": 12})
UNKNOWN_PARENT = "ab" * 32


def idea(ts_ms: int, diff: dict, rationale: str, base: Config | None = DEEPER, parent: str | None = None) -> Record:
    body = {"track": TRACK.to_wire(), "parent": parent or config_hash(base), "diff": diff, "rationale": rationale}
    return sign(person(3), "hypothesis", body, ts_ms)


IDEAS = {  # by what became of them in scenario()
    "accepted": idea(T0 - 1, {"depth": 12}, "a deeper model uses the budget better", base=DEFAULT),
    "candidate": idea(T0 + 10, {"matrix_lr": 0.05}, "a higher Muon rate fits the short budget"),
    "not better": idea(T0 + 11, {"weight_decay": 0.5}, "more weight decay regularises the deeper model"),
    "crash": idea(T0 + 12, {"head_dim": 64}, "smaller heads, more of them"),
    "open": idea(T0 + 13, {"adam_beta1": 0.85}, "less momentum on the embeddings"),
    "invalid": idea(T0 + 14, {"warmup_ratio": 0.9}, "a long warmup"),  # with warmdown 0.5: over 1
    "unknown parent": idea(T0 + 15, {"depth": 6}, "shallower", parent=UNKNOWN_PARENT),
}


def home_with(tmp_path, records: list[Record]) -> Home:
    home = Home.locate(tmp_path / "node")
    write_swarm_file(home.swarm_file, bytes(32), POLICY)
    with Ledger.open(home.ledger_file, POLICY) as ledger:
        added = ledger.add_many([r.raw for r in records], now_ms=T0 + 60_000)
        assert not added.rejected and not added.refused
    return home


def home_with_hypotheses(tmp_path) -> Home:
    results = [r for r in scenario() if r.kind == "result"]  # its hypotheses are ours here, with reasons
    return home_with(tmp_path, results + list(IDEAS.values()))


def arnode(home: Home, capsys, command: str, *args: str) -> str:
    assert cli.main(["--home", str(home.config_dir), command, *args]) == 0
    return capsys.readouterr().out


def run(home: Home, capsys, *args: str) -> str:
    return arnode(home, capsys, "hypotheses", *args)


def results(home: Home, capsys, *args: str) -> str:
    return arnode(home, capsys, "results", *args)


@pytest.fixture
def home(tmp_path) -> Home:
    return home_with_hypotheses(tmp_path)


def test_each_hypothesis_is_shown_open_or_answered_with_how_its_answer_compares_with_its_parent(home, capsys):
    rows = {row["id"]: row for row in json.loads(run(home, capsys, "--json"))}
    assert [row["id"] for row in json.loads(run(home, capsys, "--json"))] == [
        r.hex_id for r in sorted(IDEAS.values(), key=lambda r: r.ts_ms, reverse=True)
    ]
    verdicts = {fate: rows[record.hex_id]["answers"][0]["verdict"] for fate, record in IDEAS.items() if fate in (
        "accepted", "candidate", "not better")}  # fmt: skip
    assert verdicts == {"accepted": "accepted", "candidate": "candidate: being re-run", "not better": "not better"}
    accepted = rows[IDEAS["accepted"].hex_id]
    assert accepted["status"] == "answered" and accepted["change"] == "depth 8->12"
    assert accepted["author"] == person(3).peer_id
    (answer,) = accepted["answers"]
    assert answer["config_hash"] == config_hash(DEEPER) and answer["outcomes"] == {"ok": 3}
    # the answer and its parent by their estimates, the number `arnode results` shows for each
    estimates = {row["config_hash"]: row["estimate"] for row in json.loads(results(home, capsys, "--json"))}
    assert (answer["estimate"], answer["parent_estimate"]) == (estimates[config_hash(DEEPER)], estimates[ROOT])
    assert answer["estimate"] == pytest.approx(0.950, abs=1e-3) and answer["parent_estimate"] == pytest.approx(1.001)
    assert answer["delta"] == round(answer["estimate"] - answer["parent_estimate"], 6) and answer["delta_sigma"] < -2
    worse = rows[IDEAS["not better"].hex_id]["answers"][0]
    assert worse["delta"] == pytest.approx(0.040, abs=1e-3) and worse["parent_estimate"] == answer["estimate"]
    crashed = rows[IDEAS["crash"].hex_id]
    assert crashed["status"] == "answered" and crashed["answers"][0]["verdict"] == "every run failed: crash"
    assert crashed["answers"][0]["estimate"] is None
    opened = rows[IDEAS["open"].hex_id]
    assert opened["status"] == "open" and opened["answers"] == [] and opened["problem"] is None
    assert opened["config_hash"] == config_hash(apply(DEEPER, {"adam_beta1": 0.85}))


def test_a_hypothesis_that_cannot_run_or_whose_parent_is_unknown_is_shown_with_its_reason(home, capsys):
    rows = {row["id"]: row for row in json.loads(run(home, capsys, "--json"))}
    invalid = rows[IDEAS["invalid"].hex_id]
    assert invalid["status"] == "invalid" and invalid["config_hash"] is None
    assert invalid["problem"] == "does not apply: warmup_ratio + warmdown_ratio must not exceed 1"
    stranger = rows[IDEAS["unknown parent"].hex_id]
    assert (
        stranger["status"] == "open"
        and stranger["change"] == "depth=6"
        and stranger["problem"] == "parent unknown here"
    )
    text = run(home, capsys)
    assert "must not exceed 1" in text and "parent unknown here" in text


def test_the_table_says_what_its_numbers_are_and_heads_each_track_with_its_counts(home, capsys):
    text = run(home, capsys)
    lines = text.splitlines()
    assert lines[0] == report.HYPOTHESIS_HEADER
    assert lines[1] == f"track {TRACK.key}: 2 open, 4 answered, 1 invalid"
    assert lines[2].split() == ["time", *HYPOTHESIS_COLUMNS[1:]]
    (accepted,) = [row for row in json.loads(run(home, capsys, "--json")) if row["id"] == IDEAS["accepted"].hex_id]
    assert "depth 8->12" in text and f"{accepted['answers'][0]['delta']:+.6f} (" in text
    assert person(3).peer_id[-8:] in text
    assert ROOT[:10] in text and config_hash(DEEPER)[:10] in text
    only_open = json.loads(run(home, capsys, "--open", "--json"))
    assert {row["id"] for row in only_open} == {IDEAS["open"].hex_id, IDEAS["unknown parent"].hex_id}
    newest = json.loads(run(home, capsys, "--limit", "2", "--json"))
    assert [row["id"] for row in newest] == [IDEAS["unknown parent"].hex_id, IDEAS["invalid"].hex_id]
    assert "(showing the newest 2)" in run(home, capsys, "--limit", "2")
    assert "(showing the newest 1 open)" in run(home, capsys, "--limit", "1", "--open")


def test_a_home_without_a_ledger_has_no_hypotheses_and_an_unknown_track_is_one_error_line(tmp_path, home, capsys):
    empty = Home.locate(tmp_path / "fresh")
    assert run(empty, capsys).strip() == "no hypotheses yet"
    assert json.loads(run(empty, capsys, "--json")) == []
    assert cli.main(["--home", str(home.config_dir), "hypotheses", "--track", "no/such"]) == 2
    assert "no results on track 'no/such'" in capsys.readouterr().err


def test_results_are_sorted_by_the_estimate_column_they_show_under_a_line_that_says_what_it_is(tmp_path, capsys):
    home = home_with(tmp_path, disagreeing_lineage())
    rows = json.loads(results(home, capsys, "--json"))
    assert [row["mean_val_bpb"] for row in rows] != sorted(row["mean_val_bpb"] for row in rows)  # means disagree
    lines = results(home, capsys).splitlines()
    assert lines[0] == report.score_header(POLICY)
    best = next(row for row in rows if row["standing"] == "best")
    assert lines[1] == f"track {TRACK.key}: 4 configs, best {best['config_hash'][:10]}, sigma " + lines[1].split()[-1]
    header = lines[2].split()
    assert header[:6] == ["rank", "config_hash", "estimate", "runs", "authors", "failed"]
    shown = [float(line.split()[header.index("estimate")]) for line in lines[3:]]
    assert shown == sorted(shown) == [round(row["estimate"], 6) for row in rows]
    summary = results(home, capsys).replace("\n", " ")  # the default's row: seven runs behind its estimate
    assert f"{rows[-1]['estimate']:.6f}  7     2 " in summary and rows[-1]["own_runs"] == 4
    said = arnode(home, capsys, "best").splitlines()[0]
    assert said.startswith(f"track {TRACK.key}: best {best['config_hash'][:10]} estimate {best['estimate']:.6f} ")
    assert f"({best['runs']} runs, {best['authors']} authors, sigma " in said


def test_a_plot_of_only_failed_runs_draws_no_value_axis(tmp_path, capsys):
    killed = result(person(0), T0, bpb=None, failure="killed")
    home = home_with(tmp_path, [killed, result(person(1), T0 + 1, {"depth": 10}, bpb=None)])
    png = tmp_path / "progress.png"
    said = arnode(home, capsys, "plot", "-o", str(png))
    assert said.strip() == f"wrote {png} ({TRACK.key}: 2 experiments, no accepted best yet)"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Ledger.open(home.ledger_file, POLICY, read_only=True) as ledger:
        views = ledger.assess()
        (track,) = progress.ledger_progress({TRACK.key: ledger.runs(TRACK.key)}, views, POLICY)
    drawn = progress.figure([track])
    drawn.canvas.draw()
    (axis,) = drawn.axes
    assert list(axis.get_yticks()) == []  # no made-up bits-per-byte scale, negative or not
    assert [text.get_text() for text in axis.texts] == ["no val_bpb yet: no run has finished ok"]
    assert {c.get_label() for c in axis.collections} >= {"killed", "crash"}
    assert axis.get_xlim() == (0.5, 2.5)
