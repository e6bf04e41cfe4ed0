"""`arnode swarm show` for people: dates, and the roster one peer a line; --json for programs."""

import json
import time

import cli
from protocol.identity import Identity


def run(capsys, home, *argv: str) -> str:
    assert cli.main(["--home", str(home), *argv]) == 0
    return capsys.readouterr().out


def test_show_gives_people_dates_and_lists_and_json_the_policy_as_in_the_file(tmp_path, capsys):
    home = tmp_path / "node"
    run(capsys, home, "swarm", "new-key", "--name", "lab")
    member = Identity.from_seed(bytes(32)).peer_id
    run(capsys, home, "swarm", "invite", member)
    shown = json.loads(run(capsys, home, "swarm", "show", "--json"))
    (admin,) = shown["admins"]
    assert shown["name"] == "lab" and shown["sigma_floor_ubpb"] == 2000 and shown["topic"].endswith("/records/1")
    lines = run(capsys, home, "swarm", "show").splitlines()
    assert lines[0] == f"swarm {shown['swarm_id']} ({home / 'swarm.toml'})"
    fields = {line.split()[0]: line.split(None, 1)[1] for line in lines[1:]}
    created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(shown["created_ms"] / 1000))
    assert fields["created"] == created and fields["sigma_floor"] == "0.002000 bpb"
    assert fields["admins"] == admin and fields["members"] == member
    assert not any(python in "".join(lines) for python in ("('", "['", "',"))  # no tuple or list reprs


def test_show_of_another_swarms_file_does_not_claim_this_homes_members(tmp_path, capsys):
    home, other = tmp_path / "node", tmp_path / "other"
    run(capsys, home, "swarm", "new-key")
    run(capsys, other, "swarm", "new-key")
    lines = run(capsys, home, "swarm", "show", "--swarm-key", str(other / "swarm.toml")).splitlines()
    assert any(line.split()[:1] == ["members"] and "another swarm" in line for line in lines)
