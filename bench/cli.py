"""How fast does `arnode` answer a person on a big ledger, and refuse a mistake?

Builds a home holding the default policy's swarm file and a ledger of bench.ledger's deep history
(one track explored by following its frontier, as a real swarm grows it), then times each command
end to end in fresh interpreters, best of --repeat, beside its target. The imports column is what
``python -X importtime`` counts for the same command: the part of its time spent loading modules.
The reference is an interpreter that starts and exits doing nothing, in the same run: on a busy
box every figure grows with it.

The refused commands each carry one mistake (a bad --diff for train, a missing swarm file, a bad
listen address, a bootstrap file of garbage): they must answer before the daemon stack loads.

A command still running after --timeout seconds is stopped and shown as more than that.

    python -m bench.cli [--records 100000] [--repeat 3] [--timeout 120]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.ledger import NOW, POLICY, deep_records
from node.store.ledger import Ledger
from node.swarmfile import create_swarm_file

ROOT = Path(__file__).resolve().parents[1]
BATCH = 5_000  # records a transaction while the ledger is built

READS = {  # command -> target seconds (issue 24)
    "results": 0.3,
    "best": 0.3,
    "hypotheses": 0.3,
    "findings": None,
    "export --tsv": None,
    "swarm show": None,
    "plot -o {home}/progress.png": 3.0,
}
REFUSALS = {  # command -> target seconds; each fails with one line and exit code 2
    "train --diff {{depth:6}}": 0.5,
    "start --swarm-key {home}/missing.toml": 0.5,
    "start --listen /ip4/127.0.0.1/tcp/notaport": 0.5,
    "start --listen /ip4/127.0.0.1/tcp/0 --bootstrap {home}/garbage.txt": 0.5,
}


def build_home(home: Path, records: int) -> None:
    create_swarm_file(home / "swarm.toml", POLICY)
    (home / "garbage.txt").write_text("not a peer\nnor this\n")
    raws = deep_records(records)
    with Ledger.open(home / "ledger.sqlite", POLICY) as ledger:
        for start in range(0, len(raws), BATCH):
            ledger.add_many(raws[start : start + BATCH], now_ms=NOW)


def arnode(home: Path, command: str) -> list[str]:
    return [sys.executable, "cli.py", "--home", str(home), *command.format(home=home).split()]


def best_of(argv: list[str], repeat: int, code: int, timeout: float) -> float | None:
    """The least wall time of ``repeat`` runs of ``argv``, each of which must exit with ``code``;
    None when a run takes longer than ``timeout``."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        times.append(time.perf_counter() - started)
        if done.returncode != code:
            raise SystemExit(f"{' '.join(argv)} exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    return min(times)


def import_seconds(argv: list[str], timeout: float) -> float | None:
    """Seconds ``argv`` spends importing, as the sum of python -X importtime's top-level entries."""
    try:
        done = subprocess.run(
            [argv[0], "-X", "importtime", *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return None
    total = 0
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit() and not name.startswith("  "):  # top level: one space, no nesting
                total += int(cumulative)
    return total / 1e6


def row(what: str, seconds: float | None, target: float | None, imports: float | None, timeout: float) -> str:
    """A table row; ``None`` seconds: stopped after ``timeout``."""
    met = seconds is not None and target is not None and seconds <= target
    verdict = "-" if target is None else f"<= {target:g}: {'yes' if met else 'NO'}"
    took = f"> {timeout:g} (stopped)" if seconds is None else f"{seconds:.3f}"
    shown = "-" if imports is None else f"{imports:.3f}"
    return f"| {what} | {took} | {shown} | {verdict} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120, help="seconds before a command is stopped")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        started = time.perf_counter()
        build_home(home, args.records)
        print(f"built a home of {args.records:,} deep-history records in {time.perf_counter() - started:.1f} s\n")
        print(f"| command (best of {args.repeat}) | seconds | imports (s) | target |")
        print("| --- | --- | --- | --- |")
        bare = [sys.executable, "-c", "pass"]
        limit = args.timeout
        print(
            row(
                "python -c pass (reference)",
                best_of(bare, args.repeat, 0, limit),
                None,
                import_seconds(bare, limit),
                limit,
            )
        )
        for commands, code in ((READS, 0), (REFUSALS, 2)):
            for command, target in commands.items():
                argv = arnode(home, command)
                seconds = best_of(argv, args.repeat, code, limit)
                imports = import_seconds(argv, limit) if seconds is not None else None
                shown = f"arnode {command.format(home='HOME')}" + (" (refused)" if code else "")
                print(row(shown, seconds, target, imports, limit), flush=True)


if __name__ == "__main__":
    main()
