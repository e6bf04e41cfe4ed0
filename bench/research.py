"""Research-loop figures on this machine's CPU, with real trainer subprocesses.

1. Loop overhead: a real node (ledger, libp2p host on 127.0.0.1, built-in proposer) runs N
   experiments; per experiment, the trainer's wall time and everything else the loop spends
   (choosing, claiming, signing, storing, publishing). From these, experiments per hour at a
   300 s budget.
2. Proposers: greedy search from the tiny test config for 10 experiments on the embedded corpus
   with a short token budget, the built-in proposer against random single-knob search (a uniform
   knob and a uniform value from the same per-knob grid, no memory of what was tried); best
   val_bpb after 10 experiments, mean over seeds. A token budget, not a step budget: with steps,
   doubling the batch doubles the data and wins without being a better config.

    python -m bench.research [--overhead-runs 4] [--seeds 3] [--experiments 10] [--tokens 40960]
"""

import argparse
import os
import random
import secrets
import statistics
import tempfile
from pathlib import Path

import trio

from node.home import Home
from node.net.swarm import Swarm
from node.research.agent import AgentContext
from node.research.builtin_proposer import BuiltinProposer, knob_steps
from node.research.loop import ResearchLoop
from node.research.runner import TrainerRun
from node.settings import WorkWeights
from node.store.ledger import Ledger
from protocol.config import KNOBS, check_config, config_hash
from protocol.errors import ConfigError
from protocol.identity import Identity
from protocol.policy import Policy
from tests.trainer.conftest import tiny_config
from trainer.spec import build_spec, track_for

BUDGET_S = 300
# Trainer processes at once, each on one thread: searches that run side by side share the cores this way.
TRAINERS = trio.CapacityLimiter(os.cpu_count() or 1)
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


async def loop_overhead(runs: int, steps: int, root: Path) -> list[dict]:
    home = Home.locate(root / "node")
    home.ensure()
    identity = Identity.generate()
    policy = Policy(name="bench", min_runs=2, min_authors=1, budget_kind="steps", budget=steps)
    ledger = Ledger.open(home.ledger_file, policy)
    swarm = Swarm(identity, secrets.token_bytes(32), policy, ledger, listen="/ip4/127.0.0.1/tcp/0")
    track = track_for("cpu", policy.dataset, policy.budget_kind, policy.budget)
    research = ResearchLoop(
        name="cpu", identity=identity, ledger=ledger, swarm=swarm, policy=policy, track=track, device="cpu",
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
    ledger.close()
    return rows


def random_single_knob(config: dict, rng: random.Random) -> dict:
    """One knob moved to a uniformly drawn neighbour on its grid; redrawn until the config is valid."""
    knobs = [knob for knob in KNOBS if knob.hashed]
    while True:
        knob = rng.choice(knobs)
        steps = knob_steps(knob, config[knob.name])
        if not steps:
            continue
        try:
            return check_config({**config, knob.name: rng.choice(steps)})
        except ConfigError:
            continue


async def val_bpb(config: dict, tokens: int, root: Path) -> float:
    track = track_for("cpu", "shakespeare", "tokens", tokens)
    spec = build_spec(config, track, "cpu", root / "data", root / "cache")
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=root))  # a fresh directory: no stale result to read
    async with TRAINERS:
        outcome = await TrainerRun(spec, run_dir, timeout_s=900, env=ONE_THREAD).run()
    return outcome.result.val_bpb if outcome.outcome == "ok" else float("inf")


async def greedy_search(strategy: str, seed: int, experiments: int, tokens: int, root: Path) -> float:
    rng = random.Random(seed)
    best, parent = check_config(tiny_config(seed=seed)), None
    best_bpb = await val_bpb(best, tokens, root)
    tried = {config_hash(best)}
    for _ in range(experiments - 1):
        if strategy == "builtin":
            ctx = AgentContext(
                track_key="bench", best_config=best, best_hash=config_hash(best), parent_config=parent,
                tried=frozenset(tried),
            )  # fmt: skip
            candidate = {**BuiltinProposer().propose(ctx, rng).config, "seed": seed}
        else:
            candidate = random_single_knob(best, rng)
        tried.add(config_hash(candidate))
        bpb = await val_bpb(candidate, tokens, root)
        if bpb < best_bpb:
            best, parent, best_bpb = candidate, best, bpb
    return best_bpb


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

        print(f"greedy search, {args.experiments} experiments of {args.tokens} tokens from the tiny config:")
        print(f"{'seed':<6}{'built-in best val_bpb':>24}{'random single-knob':>20}")
        results = {"builtin": [], "random": []}
        for seed in range(args.seeds):
            for strategy in results:
                results[strategy].append(await greedy_search(strategy, seed, args.experiments, args.tokens, root))
            print(f"{seed:<6}{results['builtin'][-1]:>24.4f}{results['random'][-1]:>20.4f}")
        print(f"{'mean':<6}{statistics.mean(results['builtin']):>24.4f}{statistics.mean(results['random']):>20.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overhead-runs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--experiments", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=20 * 2048, help="training tokens per experiment")
    trio.run(main, parser.parse_args())
