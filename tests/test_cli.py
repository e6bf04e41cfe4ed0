"""The `arnode` command as a user runs it: subprocesses on a temporary home."""

import csv
import io
import json
import socket
import subprocess
import sys
import urllib.request

import pytest

import cli
from tests.arnode_process import LOOPBACK, ROOT, Daemon, arnode, arnode_json, trainer_pids
from tests.node.net.swarm_process import wait_until

pytestmark = pytest.mark.process  # real nodes, daemons or trainers in other processes


@pytest.fixture(scope="module")
def solo(tmp_path_factory):
    """A home whose daemon ran two tiny experiments (the baseline, then an exploration) and stopped on SIGINT."""
    home = tmp_path_factory.mktemp("cli") / "node"
    assert arnode(home, "init").returncode == 0
    daemon = Daemon(home, "--listen", LOOPBACK, "--max-steps", "2", "--max-experiments", "2")
    try:
        daemon.wait_ready()
        wait_until(lambda: daemon.experiments() >= 2, 300, interval=1, what="two experiments")
        status = daemon.status()
        with urllib.request.urlopen(status["dashboard"] + "api/state", timeout=30) as answer:
            status["page"] = json.loads(answer.read())
    finally:
        code = daemon.stop()
    assert code == 0, daemon.output()[-3000:]
    return home, status, daemon.output()


def test_init_prints_the_peer_id_and_shareable_multiaddrs_and_is_idempotent(tmp_path):
    home = tmp_path / "node"
    first = arnode_json(home, "init")
    assert first["peer_id"].startswith("12D3KooW")
    assert all(addr.endswith(f"/p2p/{first['peer_id']}") for addr in first["multiaddrs"])
    identity = (home / "identity.pem").read_bytes()
    assert arnode_json(home, "init") == first and (home / "identity.pem").read_bytes() == identity
    assert oct((home / "identity.pem").stat().st_mode & 0o777) == "0o600"
    assert (home / "program.md").exists() and "#" in (home / "config.toml").read_text()


def test_start_runs_experiments_then_stays_up_as_a_peer_and_stops_cleanly(solo):
    _, status, output = solo
    assert [worker["experiments"] for worker in status["workers"]] == [2]
    assert "done 2 experiments" in status["workers"][0]["idle_reason"]
    assert "SIGINT: stopping" in output and "Traceback" not in output


def status_word(record: dict) -> str:
    """autoresearch's word for a run of this two-run home, where no config but the default is kept yet.

    The second run is the chooser's: an exploration (its change may fail) or another baseline run."""
    if record["outcome"] != "ok":
        return "crash"
    return "keep" if record["config_hash"] == record["parent"] else "discard"


def test_results_show_both_runs_in_every_format(solo):
    home, _, _ = solo
    records = arnode_json(home, "results", "--all")
    assert len(records) == 2
    first = min(records, key=lambda r: r["ts_ms"])
    assert first["config_hash"] == first["parent"] and first["outcome"] == "ok"  # the baseline
    for record in records:
        assert {
            "id",
            "kind",
            "author",
            "ts_ms",
            "track",
            "config_hash",
            "parent",
            "diff",
            "outcome",
            "val_bpb",
            "replicates",
            "seed",
            "proposer",
        } <= set(record)
        assert record["replicates"] is None
        if record["outcome"] == "ok":
            assert isinstance(record["val_bpb"], float)
            assert isinstance(record["test_bpb"], float) and record["test_bpb"] != record["val_bpb"]
    board = arnode_json(home, "results")
    assert len(board) == len({r["config_hash"] for r in records})
    default = next(row for row in board if row["diff"] == "default")
    assert default["own_runs"] == sum(status_word(r) == "keep" for r in records) and default["mean_test_bpb"] > 0
    text = arnode(home, "results")
    assert text.returncode == 0 and all(row["config_hash"][:10] in text.stdout for row in board)
    tsv = arnode(home, "results", "--tsv").stdout.splitlines()
    assert tsv[0].split("\t")[:2] == ["track", "rank"] and len(tsv) == 1 + len(board)


def test_the_live_page_served_on_loopback_shows_the_runs_the_node_recorded(solo):
    home, status, _ = solo
    assert status["dashboard"].startswith("http://127.0.0.1:")
    page = status["page"]
    shown = sorted((r["id"], r["status"]) for r in page["recent"])
    records = arnode_json(home, "results", "--all")
    assert shown == sorted((r["id"], status_word(r)) for r in records)
    (track,) = page["tracks"]
    assert track["title"] == "2 experiments, no accepted best yet"  # the solo policy wants 4 runs
    assert len(track["leaderboard"]) == len({r["config_hash"] for r in records})
    assert page["status"]["workers"][0]["experiments"] == 2


def test_best_names_the_baseline_once_verified_and_export_and_plot_work(solo, tmp_path):
    home, _, _ = solo
    assert arnode_json(home, "best") == []  # the solo policy wants 4 runs before anything is verified
    rows = list(csv.reader(io.StringIO(arnode(home, "export", "--tsv").stdout), delimiter="\t"))
    assert rows[0] == ["commit", "val_bpb", "memory_gb", "status", "description", "test_bpb"]
    assert all(float(row[5]) > 0 for row in rows[1:] if row[3] != "crash")  # every ok run also scored the holdout
    assert len(rows) == 3 and ("keep", "baseline: the default config") in {(row[3], row[4]) for row in rows[1:]}
    records = arnode_json(home, "results", "--all")
    assert sorted(row[3] for row in rows[1:]) == sorted(status_word(r) for r in records)
    png = tmp_path / "progress.png"
    done = arnode(home, "plot", "-o", str(png))
    assert done.returncode == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2 experiments, no accepted best yet" in done.stdout


@pytest.mark.parametrize("prepare", [(), ("init",)])
def test_read_commands_on_a_fresh_home_show_an_empty_ledger(tmp_path, prepare):
    home = tmp_path / "node"
    if prepare:
        assert arnode(home, *prepare).returncode == 0
    assert arnode_json(home, "results") == [] and arnode_json(home, "results", "--all") == []
    assert arnode_json(home, "best") == []
    assert arnode(home, "results").stdout.strip() == "no results yet"
    assert arnode(home, "export", "--tsv").stdout.splitlines() == [
        "commit\tval_bpb\tmemory_gb\tstatus\tdescription\ttest_bpb"
    ]
    done = arnode(home, "plot", "-o", str(tmp_path / "progress.png"))
    assert done.returncode == 0 and "no experiments yet" in done.stdout


def test_a_cpu_node_founds_a_token_budget_swarm_unless_asked_for_seconds(tmp_path):
    for name, flags, budget in (
        ("cpu", (), ("tokens", 1_000_000)),
        ("timed", ("--budget-seconds", "60"), ("seconds", 60)),
    ):
        home = tmp_path / name
        daemon = Daemon(home, "--listen", LOOPBACK, "--role", "peer", *flags)
        try:
            daemon.wait_ready()
        finally:
            assert daemon.stop() == 0
        shown = arnode_json(home, "swarm", "show")
        assert (shown["budget_kind"], shown["budget"]) == budget


def error_of(done) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_status_without_a_daemon_says_so_in_one_line(tmp_path):
    assert "no arnode daemon is running" in error_of(arnode(tmp_path / "node", "status"))


def test_a_corrupt_config_file_is_named_and_left_alone(tmp_path):
    home = tmp_path / "node"
    arnode(home, "init")
    (home / "config.toml").write_text("listen = [\n")
    line = error_of(arnode(home, "start", "--listen", LOOPBACK))
    assert "config.toml" in line and (home / "config.toml").read_text() == "listen = [\n"


def test_a_corrupt_identity_is_named_and_never_overwritten(tmp_path):
    home = tmp_path / "node"
    home.mkdir()
    (home / "identity.pem").write_bytes(b"not a key")
    assert "identity.pem" in error_of(arnode(home, "init"))
    assert (home / "identity.pem").read_bytes() == b"not a key"


def test_a_corrupt_or_missing_swarm_file_is_named(tmp_path):
    bad = tmp_path / "swarm.toml"
    bad.write_text("psk = 'short'\n")
    assert "swarm.toml" in error_of(arnode(tmp_path / "node", "start", "--swarm-key", str(bad)))
    assert "does not exist" in error_of(arnode(tmp_path / "node", "start", "--swarm-key", str(tmp_path / "no.toml")))


def test_a_bad_bootstrap_line_is_reported_with_its_number_and_a_missing_file_is_an_error(tmp_path):
    assert "nope.txt" in error_of(arnode(tmp_path / "node", "start", "--bootstrap", str(tmp_path / "nope.txt")))


def test_a_bootstrap_file_of_garbage_is_an_error_and_founds_no_swarm(tmp_path):
    garbage = tmp_path / "peers.txt"
    garbage.write_text("hello\n/ip4/1.2.3.4/tcp/4001\nworld\n")
    line = error_of(arnode(tmp_path / "node", "start", "--listen", LOOPBACK, "--bootstrap", str(garbage)))
    assert f"{garbage}:1" in line and "not one valid peer address" in line
    assert not (tmp_path / "node" / "swarm.toml").exists()


def test_a_second_start_on_a_home_in_use_says_so_before_opening_the_network(tmp_path):
    home = tmp_path / "node"
    first = Daemon(home, "--listen", LOOPBACK, "--role", "peer")
    try:
        first.wait_ready()
        second = arnode(home, "start", "--plain", "--listen", LOOPBACK, "--role", "peer", "--no-dashboard")
        line = error_of(second)
        assert "in use by another arnode daemon" in line and f"pid {first.process.pid}" in line
        assert "listening" not in second.stdout + second.stderr
        assert first.status()["peers"] == 0  # the first node runs on, undisturbed
    finally:
        assert first.stop() == 0


def test_help_speaks_to_users_and_lists_every_command_by_group():
    text = arnode(ROOT, "--help").stdout
    assert text.startswith("usage: arnode") and "import only" not in text
    described = {line.split()[0] for line in text.split("commands:")[1].splitlines() if line.startswith("    ")}
    assert described == {name.split()[0] for name in cli.COMMANDS}
    bare = subprocess.run([sys.executable, str(ROOT / "cli.py")], capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2 and bare.stdout == text  # a bare `arnode` shows the same help


def test_a_port_in_use_gives_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = error_of(arnode(tmp_path / "node", "start", "--listen", f"/ip4/127.0.0.1/tcp/{port}", timeout=60))
    assert str(port) in line and "in use" in line


def test_cuda_without_a_gpu_gives_one_line(tmp_path):
    assert "no NVIDIA GPU" in error_of(arnode(tmp_path / "node", "start", "--device", "cuda"))


def test_budget_flags_that_contradict_the_swarm_file_are_refused(tmp_path):
    home = tmp_path / "node"
    assert arnode(home, "swarm", "new-key", "--budget-kind", "steps", "--budget", "5").returncode == 0
    assert "fixes runs at 5 steps" in error_of(arnode(home, "start", "--budget-seconds", "60"))
    shown = arnode_json(home, "swarm", "show")
    assert shown["budget"] == 5 and len(shown["swarm_id"]) == 32


def test_sigint_mid_experiment_records_it_as_killed_and_exits_cleanly(tmp_path):
    home = tmp_path / "node"
    daemon = Daemon(home, "--listen", LOOPBACK, "--budget-seconds", "600")
    try:
        daemon.wait_ready()
        current = wait_until(lambda: daemon.status()["workers"][0]["current"], 60, what="an experiment running")
        assert current["phase"] in ("starting", "training")  # a 600 s budget is far from evaluating
        assert daemon.stop(timeout=60) == 0
    finally:
        daemon.kill()
    records = arnode_json(home, "results", "--all")
    (record,) = records
    # stopped before its first step the error says just that; after it, it adds the last training loss
    assert record["outcome"] == "killed" and record["error"].startswith("stopped by the node before the run finished")
    (row,) = list(csv.reader(io.StringIO(arnode(home, "export", "--tsv").stdout), delimiter="\t"))[1:]
    assert row[3] == "crash" and row[4].startswith("killed: stopped by the node")


def test_a_daemon_killed_mid_experiment_publishes_no_half_result_and_restarts_with_its_ledger(tmp_path):
    home = tmp_path / "node"
    smoke = ("--listen", LOOPBACK, "--max-steps", "2")
    first = Daemon(home, *smoke, "--max-experiments", "1")
    try:
        first.wait_ready()
        wait_until(lambda: first.experiments() >= 1, 300, interval=1, what="one experiment")
    finally:
        first.stop()
    kept = arnode_json(home, "results", "--all")
    second = Daemon(home, *smoke, "--max-experiments", "2")
    try:
        second.wait_ready()
        wait_until(lambda: trainer_pids(home), 120, interval=0.2, what="a trainer running")
        second.process.kill()  # SIGKILL: no chance to record anything
        second.process.wait(10)
        wait_until(lambda: not trainer_pids(home), 15, what="the orphaned trainer exiting")
    finally:
        second.kill()
    assert arnode_json(home, "results", "--all") == kept  # nothing half-done was added, nothing lost
    third = Daemon(home, *smoke, "--max-experiments", "1")
    try:
        third.wait_ready()
        wait_until(lambda: third.experiments() >= 1, 300, interval=1, what="an experiment after the restart")
    finally:
        assert third.stop() == 0
    assert len(arnode_json(home, "results", "--all")) == len(kept) + 1
