"""The research loop's overhead on this machine's CPU, with real trainer subprocesses.

A real node (ledger, libp2p host on 127.0.0.1, built-in proposer) runs N experiments; per
experiment, the trainer's wall time and everything else the loop spends (choosing, claiming,
signing, storing, publishing). From these, experiments per hour at a 300 s budget. Which
proposer finds better configs is bench/proposers.py's question.

    python -m bench.research [--overhead-runs 4]
"""

import argparse
import secrets
import statistics
import tempfile
from pathlib import Path

import trio

from node.home import Home
from node.ledger_reader import LedgerReader
from node.net.swarm import Swarm
from node.research.builtin_proposer import BuiltinProposer
from node.research.loop import ResearchLoop
from node.settings import WorkWeights
from node.store.ledger import Ledger
from protocol.identity import Identity
from protocol.policy import Policy
from trainer.spec import track_for

BUDGET_S = 300


async def loop_overhead(runs: int, steps: int, root: Path) -> list[dict]:
    home = Home.locate(root / "node")
    home.ensure()
    identity = Identity.generate()
    policy = Policy(name="bench", min_runs=2, min_authors=1, budget_kind="steps", budget=steps)
    ledger = Ledger.open(home.ledger_file, policy)
    swarm = Swarm(identity, secrets.token_bytes(32), policy, ledger, listen="/ip4/127.0.0.1/tcp/0")
    track = track_for("cpu", policy.dataset, policy.budget_kind, policy.budget)
    reader = LedgerReader(home.ledger_file, policy)
    research = ResearchLoop(
        name="cpu", identity=identity, reader=reader, swarm=swarm, policy=policy, track=track, device="cpu",
        home=home, proposer=BuiltinProposer(), weights=WorkWeights(), max_experiments=runs,
    )  # fmt: skip
    rows = []
    async with trio.open_nursery() as nursery:
        await nursery.start(swarm.run)
        for _ in range(runs):
            record = await research.run_one()
            metrics = record.body["metrics"]
            rows.append({**research.status.last, "train_ms": metrics["train_ms"], "total_ms": metrics["total_ms"]})
        nursery.cancel_scope.cancel()
    reader.close()
    ledger.close()
    return rows


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        rows = await loop_overhead(args.overhead_runs, 2, root)
        print(f"loop overhead over {len(rows)} experiments of 2 steps (built-in proposer, real host and ledger):")
        print(f"{'kind':<10}{'trainer s':>10}{'of which training s':>21}{'loop overhead s':>17}")
        for row in rows:
            trained = row["train_ms"] / 1000
            print(f"{row['kind']:<10}{row['trainer_s']:>10.2f}{trained:>21.2f}{row['overhead_s']:>17.3f}")
        overhead = statistics.mean(row["overhead_s"] for row in rows)
        fixed = statistics.mean(row["trainer_s"] - row["train_ms"] / 1000 for row in rows)  # startup + eval
        per_hour = 3600 / (BUDGET_S + fixed + overhead)
        print(f"mean loop overhead {overhead:.3f} s (target < 2 s plus the LLM call)")
        print(f"trainer time outside its timed budget (startup, first steps, evaluation): {fixed:.1f} s")
        print(f"=> at a {BUDGET_S} s budget: {per_hour:.2f} experiments/hour per worker\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overhead-runs", type=int, default=4)
    trio.run(main, parser.parse_args())
