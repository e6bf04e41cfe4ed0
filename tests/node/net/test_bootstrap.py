from pathlib import Path

import pytest

from node.errors import NodeError
from node.net.bootstrap import bootstrap_addrs, parse_bootstrap_file, parse_bootstrap_text
from protocol.identity import Identity

PEER = Identity.from_seed(bytes(32)).peer_id
GOOD = f"/ip4/127.0.0.1/tcp/4001/p2p/{PEER}"


def test_comments_blank_lines_and_duplicates_are_skipped_silently():
    text = f"# members\n\n{GOOD}  # the first one\n   \n{GOOD}\n/ip4/10.0.0.2/tcp/4002/p2p/{PEER}\n"
    addrs, warnings = parse_bootstrap_text(text)
    assert addrs == [GOOD, f"/ip4/10.0.0.2/tcp/4002/p2p/{PEER}"]
    assert warnings == []


def test_each_bad_line_is_reported_with_its_number_and_skipped(tmp_path):
    path = tmp_path / "bootstrap_peers.txt"
    lines = [
        "/ip4/127.0.0.1/tcp/4001",  # no peer id
        "garbage",
        f"/ip4/1.2.3.4/udp/4001/p2p/{PEER}",  # not TCP
        "/ip4/1.2.3.4/tcp/4001/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",  # RSA-style ID
        GOOD,
    ]
    path.write_text("\n".join(lines) + "\n")
    addrs, warnings = parse_bootstrap_file(path)
    assert addrs == [GOOD]
    assert [warning.split(": ")[0] for warning in warnings] == [f"{path}:{number}" for number in (1, 2, 3, 4)]
    assert all("\n" not in warning for warning in warnings)


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(NodeError, match="does not exist"):
        parse_bootstrap_file(tmp_path / "nope.txt")


def test_the_shipped_file_parses():
    _, warnings = parse_bootstrap_file(Path(__file__).parents[3] / "bootstrap_peers.txt")
    assert warnings == []


def test_a_file_whose_every_line_is_garbage_is_an_error_naming_it_and_its_first_bad_line(tmp_path):
    path = tmp_path / "peers.txt"
    path.write_text("# our peers\n\nhello world\n/ip4/1.2.3.4/tcp/4001\nmore garbage\n")
    with pytest.raises(NodeError) as refused:
        parse_bootstrap_file(path)
    message = str(refused.value)
    assert f"{path}:3" in message and "not one valid peer address" in message and "\n" not in message


def test_a_file_of_comments_only_lists_no_peers_and_is_fine(tmp_path):
    path = tmp_path / "peers.txt"
    path.write_text("# nobody yet\n\n")
    assert parse_bootstrap_file(path) == ([], [])


def test_the_flag_wins_over_the_config_which_wins_over_the_default_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    other = f"/ip4/10.0.0.2/tcp/4002/p2p/{PEER}"
    config_dir = tmp_path / "home"
    config_dir.mkdir()
    (tmp_path / "bootstrap_peers.txt").write_text(f"{GOOD}\n")
    (config_dir / "bootstrap_peers.txt").write_text(f"{GOOD}\n{other}\n")
    (tmp_path / "configured.txt").write_text(f"{other}\n")
    (tmp_path / "flag.txt").write_text(f"{GOOD}\nbad line\n")
    assert bootstrap_addrs(None, "", config_dir) == ([GOOD, other], [])  # both defaults, each address once
    assert bootstrap_addrs(None, str(tmp_path / "configured.txt"), config_dir) == ([other], [])
    addrs, warnings = bootstrap_addrs("flag.txt", str(tmp_path / "configured.txt"), config_dir)
    assert addrs == [GOOD] and [w.split(": ")[0] for w in warnings] == ["flag.txt:2"]
