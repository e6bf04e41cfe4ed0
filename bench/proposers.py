"""Which proposer finds the better config in the same number of experiments, on real trainer runs?

Each search starts from a tiny config and runs ``--experiments`` experiments, each a real trainer
subprocess on the embedded corpus with a token budget (so a loaded CPU changes wall time, not
results), one after another like a solo node: every experiment explores from the best single run
so far. Searches run side by side, one trainer process per core, each on one thread. Proposers:
random single-knob search (a uniform knob and a uniform neighbour on its grid, no memory), the
built-in local search, the model-based proposer, which learns from every result of the search, and,
for comparison with a well-kept library, optuna's TPE sampler over every knob (needs optuna). Each
search's final best is then re-run with fresh seeds, so the figure is its real quality and not the
luck of its best run. Printed: per proposer, the mean of those re-runs over search seeds, the spread
between searches, and the seed-noise band of one re-run.

    python -m bench.proposers [--seeds 3] [--experiments 30] [--reruns 4] [--tokens 4096] [--proposers random,model,tpe]
"""

import argparse
import os
import random
import statistics
import tempfile
from pathlib import Path

import trio

from node.research.agent import AgentContext, Observation
from node.research.builtin_proposer import BuiltinProposer, knob_steps
from node.research.model_proposer import ModelProposer
from node.research.runner import TrainerRun
from protocol.config import KNOBS, Knob, Value, check_config, config_hash
from protocol.errors import ConfigError
from tests.trainer.conftest import tiny_config
from trainer.spec import build_spec, track_for

PROPOSERS = ("random", "builtin", "model")  # and "tpe", when asked for
TPE_DRAWS = 64  # asks of the TPE sampler before a search gives up on finding a valid, untried config
RERUN_SEED_BASE = 10_000  # re-run seeds no search used
# The tiny trainer config, smaller still: one layer, short rows, so a run costs seconds, not minutes.
BENCH_CONFIG = {"depth": 1, "aspect_ratio": 64, "seq_len": 64, "device_batch_size": 8, "total_batch_tokens": 512}
# Trainer processes at once, each on one thread: searches that run side by side share the cores this way.
TRAINERS = trio.CapacityLimiter(os.cpu_count() or 1)
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


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


async def search(proposer: str, seed: int, experiments: int, tokens: int, root: Path) -> tuple[dict, float]:
    """The best config a greedy search with ``proposer`` finds, and its single-run val_bpb."""
    rng = random.Random(seed)
    best, parent = check_config(tiny_config(**BENCH_CONFIG, seed=seed)), None
    best_bpb = await val_bpb(best, tokens, root)
    results = [Observation(best, best_bpb if best_bpb < float("inf") else None)]
    for _ in range(experiments - 1):
        if proposer == "random":
            candidate = random_single_knob(best, rng)
        elif proposer == "tpe":
            candidate = {**tpe_config(results, rng), "seed": seed}
        else:
            ctx = AgentContext(
                track_key="bench", best_config=best, best_hash=config_hash(best), parent_config=parent,
                tried=frozenset(config_hash(o.config) for o in results), observations=tuple(results),
            )  # fmt: skip
            chosen = (BuiltinProposer() if proposer == "builtin" else ModelProposer()).propose(ctx, rng)
            candidate = {**chosen.config, "seed": seed}
        bpb = await val_bpb(candidate, tokens, root)
        results.append(Observation(candidate, bpb if bpb < float("inf") else None))
        if bpb < best_bpb:
            best, parent, best_bpb = candidate, best, bpb
    return best, best_bpb


def tpe_config(results: list[Observation], rng: random.Random) -> dict:
    """optuna's TPE sampler over every knob, on the grid two steps around the start config, fed every result.

    optuna is imported here: it is a comparison for this benchmark, not a dependency of the node.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = results[0].config
    space = {knob.name: optuna.distributions.CategoricalDistribution(_grid(knob, start[knob.name]))
             for knob in KNOBS if knob.hashed}  # fmt: skip
    worst = max(o.val_bpb for o in results if o.val_bpb is not None) + 0.1
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=rng.getrandbits(32), multivariate=True))
    for o in results:
        if all(o.config[name] in space[name].choices for name in space):
            params = {name: o.config[name] for name in space}
            study.add_trial(optuna.trial.create_trial(params=params, distributions=space, value=o.val_bpb or worst))
    tried = {config_hash(o.config) for o in results}
    for _ in range(TPE_DRAWS):
        trial = study.ask(space)
        try:
            config = check_config({**start, **trial.params})
        except ConfigError:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        if config_hash(config) not in tried:
            return config
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    raise RuntimeError("TPE found no valid untried config")


def _grid(knob: Knob, value: Value) -> tuple[Value, ...]:
    """A knob's start value and its grid neighbours, one and two steps out."""
    near = [value, *knob_steps(knob, value)]
    return tuple(dict.fromkeys([*near, *(step for v in near[1:] for step in knob_steps(knob, v))]))


async def main(args: argparse.Namespace) -> None:
    finals: dict[str, list[float]] = {name: [] for name in args.proposers.split(",")}
    noise: list[float] = []

    async def search_and_rerun(name: str, seed: int, root: Path) -> None:
        best, best_bpb = await search(name, seed, args.experiments, args.tokens, root)
        reruns = [await val_bpb({**best, "seed": RERUN_SEED_BASE + i}, args.tokens, root) for i in range(args.reruns)]
        finals[name].append(statistics.mean(reruns))
        noise.append(statistics.stdev(reruns))
        print(f"{seed:<6}{name:<10}{best_bpb:>12.4f}{finals[name][-1]:>13.4f}{noise[-1]:>11.4f}", flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        print(f"{args.experiments} experiments per search of {args.tokens} tokens each, best re-run {args.reruns}x")
        print(f"{'seed':<6}{'proposer':<10}{'search best':>12}{'re-run mean':>13}{'re-run sd':>11}", flush=True)
        async with trio.open_nursery() as nursery:
            for seed in range(args.seeds):
                for name in finals:
                    nursery.start_soon(search_and_rerun, name, seed, root)
    band = statistics.mean(noise) / args.reruns**0.5
    print(f"\nseed-noise band of a {args.reruns}-run mean: ±{band:.4f}")
    print(f"{'proposer':<10}{'mean of re-runs':>16}{'spread (sd)':>13}{'searches':>10}")
    for name, values in finals.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{name:<10}{statistics.mean(values):>16.4f}{spread:>13.4f}{len(values):>10}")
    for name, values in finals.items():
        if name != "random" and finals.get("random"):
            gain = statistics.mean(finals["random"]) - statistics.mean(values)
            print(f"{name} beats random by {gain:+.4f} bpb ({gain / band:+.1f}x the noise band)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--experiments", type=int, default=30)
    parser.add_argument("--reruns", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=4096, help="training tokens per experiment")
    parser.add_argument("--proposers", default=",".join(PROPOSERS), help="comma-separated, run in this order")
    trio.run(main, parser.parse_args())
