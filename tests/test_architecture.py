"""What may import what: the layering that node/__init__.py describes, checked in fresh interpreters.

Each probe imports a set of modules in a new process and reports which top-level packages got
loaded, so a forbidden import anywhere in the chain (direct or transitive) fails here.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
code = cli.main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": sorted({name.split(".")[0] for name in sys.modules})}))
"""

HEAVY = {"libp2p", "openai", "pyarrow", "torch"}


@pytest.mark.parametrize(
    "command",
    [
        ("results",),
        ("results", "--all"),
        ("best",),
        ("hypotheses",),
        ("export", "--tsv"),
        ("plot", "-o", "progress.png"),
        ("status",),
    ],
)
def test_a_read_only_command_never_loads_the_network_the_llm_client_or_the_trainer(command, tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", RUN_COMMAND, "--home", str(tmp_path / "home"), *command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    ran = json.loads(done.stdout.splitlines()[-1])
    assert ran["code"] == (2 if command == ("status",) else 0), done.stderr  # no daemon: one error line
    assert HEAVY.isdisjoint(ran["loaded"]), sorted(HEAVY & set(ran["loaded"]))


def test_the_command_probe_sees_a_heavy_import(tmp_path) -> None:
    # `arnode init` loads libp2p to list its addresses: the probe must notice
    done = subprocess.run(
        [sys.executable, "-c", RUN_COMMAND, "--home", str(tmp_path / "home"), "init", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert "libp2p" in json.loads(done.stdout.splitlines()[-1])["loaded"]
