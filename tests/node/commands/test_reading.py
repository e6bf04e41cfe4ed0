"""`arnode hypotheses` on a real home: a swarm file and an SQLite ledger of signed records."""

import json

import pytest

import cli
from node.home import Home
from node.store.ledger import Ledger
from node.swarmfile import write_swarm_file
from protocol.config import Config, apply, config_hash
from protocol.records import Record, sign
from tests.node.store.test_ledger import DEFAULT, POLICY, ROOT, T0, TRACK, person, scenario

DEEPER = apply(DEFAULT, {"depth": 12})
UNKNOWN_PARENT = "ab" * 32


def idea(ts_ms: int, diff: dict, rationale: str, base: Config | None = DEEPER, parent: str | None = None) -> Record:
    body = {"track": TRACK.to_wire(), "parent": parent or config_hash(base), "diff": diff, "rationale": rationale}
    return sign(person(3), "hypothesis", body, ts_ms)


IDEAS = {  # by what became of them in scenario()
    "kept": idea(T0 - 1, {"depth": 12}, "a deeper model uses the budget better", base=DEFAULT),
    "candidate": idea(T0 + 10, {"matrix_lr": 0.05}, "a higher Muon rate fits the short budget"),
    "not better": idea(T0 + 11, {"weight_decay": 0.5}, "more weight decay regularises the deeper model"),
    "crash": idea(T0 + 12, {"head_dim": 64}, "smaller heads, more of them"),
    "open": idea(T0 + 13, {"adam_beta1": 0.85}, "less momentum on the embeddings"),
    "invalid": idea(T0 + 14, {"warmup_ratio": 0.9}, "a long warmup"),  # with warmdown 0.5: over 1
    "unknown parent": idea(T0 + 15, {"depth": 6}, "shallower", parent=UNKNOWN_PARENT),
}


def home_with_hypotheses(tmp_path) -> Home:
    home = Home.locate(tmp_path / "node")
    write_swarm_file(home.swarm_file, bytes(32), POLICY)
    with Ledger.open(home.ledger_file, POLICY) as ledger:
        results = [r for r in scenario() if r.kind == "result"]  # its hypotheses are ours here, with reasons
        report = ledger.add_many([r.raw for r in results + list(IDEAS.values())], now_ms=T0 + 60_000)
        assert not report.rejected and not report.refused
    return home


def run(home: Home, capsys, *args: str) -> str:
    assert cli.main(["--home", str(home.config_dir), "hypotheses", *args]) == 0
    return capsys.readouterr().out


@pytest.fixture
def home(tmp_path) -> Home:
    return home_with_hypotheses(tmp_path)


def test_each_hypothesis_is_shown_open_or_answered_with_how_its_answer_compares_with_its_parent(home, capsys):
    rows = {row["id"]: row for row in json.loads(run(home, capsys, "--json"))}
    assert [row["id"] for row in json.loads(run(home, capsys, "--json"))] == [
        r.hex_id for r in sorted(IDEAS.values(), key=lambda r: r.ts_ms, reverse=True)
    ]
    verdicts = {fate: rows[record.hex_id]["answers"][0]["verdict"] for fate, record in IDEAS.items() if fate in (
        "kept", "candidate", "not better")}  # fmt: skip
    assert verdicts == {"kept": "kept", "candidate": "candidate: being re-run", "not better": "not better"}
    kept = rows[IDEAS["kept"].hex_id]
    assert kept["status"] == "answered" and kept["change"] == "depth 8->12" and kept["author"] == person(3).peer_id
    (answer,) = kept["answers"]
    assert answer["config_hash"] == config_hash(DEEPER) and answer["outcomes"] == {"ok": 3}
    assert answer["val_bpb"] == pytest.approx(0.950) and answer["parent_val_bpb"] == pytest.approx(1.001)
    assert answer["delta"] == pytest.approx(-0.051) and answer["delta_sigma"] < -2
    worse = rows[IDEAS["not better"].hex_id]["answers"][0]
    assert worse["delta"] == pytest.approx(0.040) and worse["parent_val_bpb"] == pytest.approx(0.950)
    crashed = rows[IDEAS["crash"].hex_id]
    assert crashed["status"] == "answered" and crashed["answers"][0]["verdict"] == "every run failed: crash"
    assert crashed["answers"][0]["val_bpb"] is None
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


def test_the_table_heads_each_track_with_its_counts_and_open_filters_the_rest(home, capsys):
    text = run(home, capsys)
    assert text.splitlines()[0] == f"track {TRACK.key}: 2 open, 4 answered, 1 invalid"
    for column in ("author", "parent", "change", "status", "answer", "val_bpb", "vs_parent", "verdict", "rationale"):
        assert column in text.splitlines()[1]
    assert "depth 8->12" in text and "-0.051000 (" in text and person(3).peer_id[-8:] in text
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
