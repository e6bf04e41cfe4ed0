"""Three `arnode start` processes researching together in one private swarm on 127.0.0.1."""

import json
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from protocol.config import ROOTS
from tests.arnode_process import LOOPBACK, Daemon, arnode, arnode_json, trainer_pids
from tests.llm_server import ScriptedLLMServer, chat
from tests.node.net.swarm_process import wait_until

pytestmark = pytest.mark.process  # real nodes, daemons or trainers in other processes

IDEAS = [  # what the scripted LLM proposes, in order; each a change that moves a 2-step run a lot
    {"unembedding_lr": 0.02},
    {"embedding_lr": 1.2},
    {"matrix_lr": 0.08},
    {"unembedding_lr": 0.01},
    {"scalar_lr": 1.0},
    {"embedding_lr": 0.9},
    {"matrix_lr": 0.06},
    {"unembedding_lr": 0.03},
]


def make_home(root: Path, name: str, cache: Path, work: str = "") -> Path:
    home = root / name
    home.mkdir()
    (home / "cache").symlink_to(cache)  # one tokenizer and token cache for the three nodes
    (home / "config.toml").write_text(f"[work]\n{work}\n")
    return home


def records_of(home: Path) -> list[dict]:
    return arnode_json(home, "results", "--all")


@pytest.fixture
def swarm(tmp_path):
    key = tmp_path / "swarm.toml"
    policy = ["--name", "e2e", "--min-runs", "2", "--min-authors", "2", "--budget-kind", "steps", "--budget", "2"]
    cache = tmp_path / "cache"
    cache.mkdir()
    homes = {
        "llm": make_home(tmp_path, "llm", cache),
        "verifier": make_home(tmp_path, "verifier", cache, "verify = 50.0\nexplore = 1.0\nnoise = 0.0"),
        "crashy": make_home(tmp_path, "crashy", cache),
    }
    # the llm node founds the swarm and admits the others before anyone starts: the invites wait in its ledger
    assert arnode(homes["llm"], "swarm", "new-key", "-o", str(key), *policy).returncode == 0
    for name in ("verifier", "crashy"):
        peer_id = arnode_json(homes[name], "init")["peer_id"]
        invited = arnode(homes["llm"], "swarm", "invite", peer_id, "--swarm-key", str(key))
        assert invited.returncode == 0, invited.stderr
    daemons: dict[str, Daemon] = {}
    with ScriptedLLMServer() as llm:
        llm.script(*(chat(json.dumps({"diff": d, "hypothesis": f"try {d}"})) for d in IDEAS))
        common = ["--swarm-key", str(key), "--listen", LOOPBACK, "--sync-interval", "3"]
        previous = None
        for name, experiments in (("llm", 4), ("verifier", 5), ("crashy", 4)):
            extra = ["--max-experiments", str(experiments)]
            if previous is not None:  # a chain: each node knows only the one started before it
                bootstrap = homes[name] / "bootstrap_peers.txt"
                bootstrap.write_text(f"# the node started before this one\n{previous['listen'][0]}\n")
                extra += ["--bootstrap", str(bootstrap)]
            env = {"OPENAI_BASE_URL": llm.base_url} if name == "llm" else None
            daemons[name] = Daemon(homes[name], *common, *extra, env=env)
            previous = daemons[name].wait_ready()
        try:
            yield homes, daemons
        finally:
            for daemon in daemons.values():
                daemon.kill()


@pytest.mark.timeout(600)  # about four minutes on two idle cores; its own waits allow 420 s for the experiments
def test_three_nodes_research_together_and_end_with_identical_ledgers(swarm):
    homes, daemons = swarm
    crashy = homes["crashy"]
    victim = wait_until(lambda: trainer_pids(crashy), 120, interval=0.2, what="a trainer on the crashy node")[0]
    os.kill(victim, signal.SIGKILL)  # as the kernel's OOM killer would

    targets = {"llm": 4, "verifier": 5, "crashy": 4}
    for name, count in targets.items():
        wait_until(lambda n=name, c=count: daemons[n].experiments() >= c, 420, interval=2, what=f"{name} experiments")
    ids = {name: None for name in homes}

    def identical() -> bool:
        for name, home in homes.items():
            ids[name] = sorted(record["id"] for record in records_of(home))
        return len({tuple(value) for value in ids.values()}) == 1

    wait_until(identical, 60, interval=1, what="identical ledgers")
    records = records_of(homes["llm"])
    assert len(records) == sum(targets.values())
    by_author = Counter(record["author"] for record in records)
    assert sorted(by_author.values()) == sorted(targets.values())

    crashed = [r for r in records if r["outcome"] == "crash"]
    assert [r["error"] for r in crashed] == ["trainer killed by SIGKILL"]

    fresh = Counter(r["config_hash"] for r in records if r["replicates"] is None and r["config_hash"] not in ROOTS)
    assert all(count == 1 for count in fresh.values()), fresh  # nothing explored twice

    # verification is mostly free: exploring from another node's config pools its runs as that config's evidence
    discoverer = {}
    for r in sorted(records, key=lambda r: r["ts_ms"]):
        discoverer.setdefault(r["config_hash"], r["author"])
    explored = [r for r in records if r["config_hash"] != r["parent"]]
    assert any(discoverer[r["parent"]] != r["author"] for r in explored), "no node built on another's config"
    assert any(r["proposer"] == "scripted-model" for r in records), "the LLM's proposals were never run"

    best = {json.dumps(arnode_json(home, "best"), sort_keys=True) for home in homes.values()}
    assert len(best) == 1
    for daemon in daemons.values():
        assert daemon.stop() == 0
