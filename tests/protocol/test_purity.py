import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import protocol

FORBIDDEN = ("trio", "torch", "libp2p", "openai", "sqlite3", "socket")
ROOT = Path(protocol.__file__).resolve().parent.parent

# Imports every module of protocol/, then reports which top-level modules got loaded.
PROBE = """
import importlib, json, pkgutil, sys
import protocol
for module in pkgutil.iter_modules(protocol.__path__):
    importlib.import_module("protocol." + module.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_importing_every_protocol_module_loads_no_io_or_framework():
    modules = [module.name for module in pkgutil.iter_modules(protocol.__path__)]
    assert {"canonical", "identity", "records", "config", "track", "policy", "acceptance"} <= set(modules)
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert "protocol" in loaded
    assert loaded.isdisjoint(FORBIDDEN), sorted(loaded & set(FORBIDDEN))
