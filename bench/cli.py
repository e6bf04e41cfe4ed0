"""How fast do the read commands start and answer on a 10k-record ledger?

Builds a home holding the default policy's swarm file and a ledger of bench.ledger's synthetic
history, then times, in fresh interpreters: ``import cli`` (python -X importtime's cumulative
figure for the module) and ``arnode results`` / ``best`` / ``export`` end to end. The reference is
an interpreter that starts and exits doing nothing, in the same run.

    python -m bench.cli [--records 10000] [--repeat 3]
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.ledger import NOW, POLICY, synthetic_records
from node.store.ledger import Ledger
from node.swarmfile import create_swarm_file

ROOT = Path(__file__).resolve().parents[1]


def build_home(home: Path, records: int) -> None:
    create_swarm_file(home / "swarm.toml", POLICY)
    ledger = Ledger.open(home / "ledger.sqlite", POLICY)
    raws = synthetic_records(records)
    for start in range(0, len(raws), 500):
        ledger.add_many(raws[start : start + 500], now_ms=NOW)
    ledger.close()


def import_seconds() -> float:
    """The cumulative import time of ``cli`` as python -X importtime reports it."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import cli"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    line = next(line for line in reversed(done.stderr.splitlines()) if re.search(r"\|\s+cli$", line))
    return int(line.split("|")[1]) / 1e6


def best_of(argv: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        build_home(home, args.records)
        bare = best_of([sys.executable, "-c", "pass"], args.repeat)
        print(f"| what | seconds (best of {args.repeat}) |")
        print("| --- | --- |")
        print(f"| python -c pass (reference) | {bare:.3f} |")
        print(f"| python -X importtime -c 'import cli' (cumulative) | {import_seconds():.3f} |")
        for command in (["results"], ["results", "--all", "--json"], ["best"], ["export", "--tsv"]):
            argv = [sys.executable, "cli.py", "--home", str(home), *command]
            print(f"| arnode {' '.join(command)} on {args.records:,} records | {best_of(argv, args.repeat):.3f} |")


if __name__ == "__main__":
    main()
