"""What may import what: the layering that node/__init__.py describes, checked in fresh interpreters.

Each probe imports a set of modules in a new process and reports which top-level packages got
loaded, so a forbidden import anywhere in the chain (direct or transitive) fails here.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from node.home import Home
from node.store.ledger import Ledger
from node.swarmfile import write_swarm_file
from protocol.config import apply
from tests.node.store.test_ledger import DEFAULT, POLICY, T0, hypothesis, person, result

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import importlib, json, pkgutil, sys
for package in sys.argv[1:]:
    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        importlib.import_module(package + "." + info.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def loaded_by(*packages: str) -> set[str]:
    """Top-level packages loaded by importing ``packages`` and every module directly inside them."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *packages], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout))


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("protocol", {"trio", "torch", "libp2p", "openai", "sqlite3", "socket", "node", "trainer"}),
        ("node.store", {"trio", "torch", "libp2p", "openai"}),
        ("node.research", {"libp2p", "multiaddr", "torch"}),
    ],
)
def test_a_layer_never_loads_what_lies_above_or_beside_it(package: str, forbidden: set[str]) -> None:
    loaded = loaded_by(package)
    assert package.split(".")[0] in loaded
    assert loaded.isdisjoint(forbidden), sorted(loaded & forbidden)


def test_the_probe_sees_a_transitive_import() -> None:
    # the network layer must show up as loading libp2p, or the probe proves nothing
    assert "libp2p" in loaded_by("node.net")


RUN_COMMAND = """
import json, sys
import cli
try:
    code = cli.main(sys.argv[1:])
except SystemExit as stop:  # argparse refuses a bad argument this way
    code = stop.code
print(json.dumps({"code": code, "loaded": sorted({name.split(".")[0] for name in sys.modules})}))
"""

# What a node needs to run, and a reader never: the event loop, the network, the LLM client, the
# trainer and its data, the search library of the baselines.
DAEMON_STACK = {"trio", "libp2p", "openai", "torch", "pyarrow", "optuna"}


def run_command(home: Path, *command: str) -> tuple[int, set[str], str]:
    """``arnode --home home COMMAND`` in a fresh interpreter: its exit code, the top-level packages
    it loaded, and its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", RUN_COMMAND, "--home", str(home), *command],
        cwd=home.parent,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    ran = json.loads(done.stdout.splitlines()[-1])
    return ran["code"], set(ran["loaded"]), done.stderr


READS = [
    ("results",),
    ("results", "--all"),
    ("best",),
    ("hypotheses",),
    ("findings",),
    ("export", "--tsv"),
    ("plot", "-o", "progress.png"),
    ("swarm", "show"),
]


@pytest.mark.parametrize("command", [*READS, ("status",)])
def test_a_read_on_a_fresh_home_never_loads_the_daemon_stack(command, tmp_path) -> None:
    code, loaded, stderr = run_command(tmp_path / "home", *command)
    # no swarm yet: `swarm show` names the missing file, `status` says no daemon runs, in one line
    assert code == (2 if command in (("status",), ("swarm", "show")) else 0), stderr
    allowed = {"trio"} if command == ("status",) else set()  # the control socket's client lives beside its server
    assert (DAEMON_STACK - allowed).isdisjoint(loaded), sorted(DAEMON_STACK & loaded)


@pytest.fixture(scope="module")
def large_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose ledger holds 2,000 results on a lineage 200 changes deep, as a swarm following its
    frontier grows one, with hypotheses beside it."""
    home = tmp_path_factory.mktemp("large") / "home"
    located = Home.locate(home)
    write_swarm_file(located.swarm_file, bytes(32), POLICY)
    records, base = [], DEFAULT
    for step in range(200):
        diff = {"matrix_lr": round(0.02 + 0.0001 * step, 4)}
        for run in range(10):
            bpb = 1.0 - 0.0005 * step + 0.001 * (run % 3)
            records.append(result(person(run % 4), T0 + 10 * len(records), diff, base=base, bpb=bpb, seed=run))
        records.append(hypothesis(person(5), T0 + 10 * len(records), {"depth": 6}, base=base))
        base = apply(base, diff)
    with Ledger.open(located.ledger_file, POLICY) as ledger:
        ledger.add_many([record.raw for record in records], now_ms=T0 + 10 * len(records))
    return home


@pytest.mark.parametrize("command", READS)
def test_a_read_on_a_large_ledger_never_loads_the_daemon_stack(command, large_home) -> None:
    code, loaded, stderr = run_command(large_home, *command)
    assert code == 0, stderr
    assert DAEMON_STACK.isdisjoint(loaded), sorted(DAEMON_STACK & loaded)


@pytest.mark.parametrize(
    ("command", "refusal"),
    [
        (("train", "--diff", "{depth: 6}"), "--diff: not JSON"),
        (("start", "--listen", "/ip4/127.0.0.1/tcp/notaport"), "is not a multiaddr"),
        (("start", "--swarm-key", "missing.toml"), "does not exist"),
        (("start", "--budget-tokens", "-5"), "must be positive"),
    ],
)
def test_a_bad_argument_is_refused_in_one_line_before_the_daemon_stack_loads(command, refusal, tmp_path) -> None:
    code, loaded, stderr = run_command(tmp_path / "home", *command)
    assert code == 2 and refusal in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert DAEMON_STACK.isdisjoint(loaded), sorted(DAEMON_STACK & loaded)
    assert not (tmp_path / "home" / "swarm.toml").exists()  # nothing founded


@pytest.mark.process
def test_the_command_probe_sees_the_daemon_stack_load(tmp_path) -> None:
    # a start that gets as far as opening the network, and fails there, must show the stack loaded
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"/ip4/127.0.0.1/tcp/{taken.getsockname()[1]}"
        code, loaded, stderr = run_command(tmp_path / "home", "start", "--listen", listen, "--no-dashboard")
    assert code == 2 and "in use" in stderr, stderr
    assert {"trio", "libp2p"} <= loaded
