"""`arnode findings` on a real home: a swarm file and an SQLite ledger holding a simulated swarm's records."""

import json

import pytest

import cli
from bench.findings_swarm import AUTHORS, Swarm
from node.home import Home
from protocol.metrics import UBPB
from protocol.records import Record
from tests.node.commands.test_reading import arnode, home_with
from tests.node.store.test_ledger import TRACK, person, result


def records_of(swarm: Swarm) -> list[Record]:
    """The simulated runs as the signed records its members would have published."""
    return [
        result(
            person(AUTHORS.index(run.author)),
            run.ts_ms,
            run.diff,
            base=swarm.configs[run.parent],
            bpb=run.val_bpb_ubpb / UBPB if run.outcome == "ok" else None,
            seed=n,
            track=run.track,
            failure=run.outcome,
        )
        for n, run in enumerate(swarm.runs)
    ]


@pytest.fixture
def home(tmp_path) -> Home:
    swarm = Swarm(TRACK, seed=1)
    swarm.explore(rounds=6)
    return home_with(tmp_path, records_of(swarm))


def findings(home: Home, capsys, *args: str) -> str:
    return arnode(home, capsys, "findings", *args)


def test_the_table_says_what_its_numbers_are_and_lists_the_helping_change_first_and_the_dead_ends_apart(home, capsys):
    lines = [line.strip() for line in findings(home, capsys).splitlines()]
    assert lines[0].startswith("per change (knob and direction), over every node's results: tried = configs")
    assert lines[1].split() == [
        "change", "verdict", "tried", "runs", "helped", "nothing", "hurt", "failed", "lead_bpb", "lead_sigma", "held_on"
    ]  # fmt: skip
    assert lines[2].startswith("matrix_lr up") and lines[2].split()[2:4] == ["helps", "6"]
    assert lines[2].endswith(TRACK.key)
    assert lines[3].startswith("weight_decay up") and " helps " not in lines[3]
    dead = lines.index(next(line for line in lines if line.startswith("dead ends:")))
    assert lines[dead + 1].split()[:3] == ["change", "hurt_on", "failed_on"]
    rows = {line.split()[0] + " " + line.split()[1]: line for line in lines[dead + 2 :]}
    assert set(rows) == {"depth +2", "head_dim +64"}
    assert " oom x6 " in rows["head_dim +64"] and TRACK.key in rows["head_dim +64"]


def test_json_gives_every_finding_with_its_tracks_and_whether_it_is_a_dead_end(home, capsys):
    found = {f["change"]: f for f in json.loads(findings(home, capsys, "--json"))}
    assert set(found) == {"matrix_lr up", "weight_decay up", "depth +2", "head_dim +64"}
    helping = found["matrix_lr up"]
    assert helping["verdict"] == "helps" and not helping["dead_end"] and helping["held_on"] == [TRACK.key]
    (on_track,) = helping["tracks"]
    assert on_track["helps"] >= 0.97 and on_track["lead"]["bpb_high"] < 0 and on_track["tried"] == 6
    assert found["depth +2"]["dead_end"] and found["depth +2"]["hurt_on"] == [TRACK.key]
    assert found["head_dim +64"]["tracks"][0]["failures"] == {"oom": 6}
    assert json.loads(findings(home, capsys, "--track", TRACK.key, "--json")) == list(found.values())


def test_a_home_without_a_ledger_has_no_findings_and_an_unknown_track_is_one_error_line(tmp_path, home, capsys):
    empty = Home.locate(tmp_path / "fresh")
    assert findings(empty, capsys).strip() == "no changes tried yet"
    assert json.loads(findings(empty, capsys, "--json")) == []
    assert cli.main(["--home", str(home.config_dir), "findings", "--track", "no/such"]) == 2
    assert "no results on track 'no/such'" in capsys.readouterr().err
