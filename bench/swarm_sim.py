"""A swarm researching one track, simulated: how much real gain per run, and how honest the claims.

The nodes' decisions are the node's own code: node.research.work.choose_work picks each run's kind,
the config to re-run or the parent to explore from, and protocol.acceptance.assess names the best.
Only the trainer is simulated. Truth model: every explored change has a true effect on val_bpb drawn
from a regime, and every run adds Gaussian seed noise of sigma = 0.002 bpb. N nodes run one
experiment at a time each, of slightly varying length, and see each other's results and claims at
once. The reference is the greedy rule of autoresearch (swarmed: every run explores from the best
single run so far, and a run that beats it becomes the best) on the same number of runs, and the
ceiling is that rule with noiseless runs: the physical limit of the search, not a target.

Figures per regime, means over swarms (gains in sigma): the true gain of the final best over the
default, the gain the ledger claims for it (the default's evidence mean less the best's, as every
node shows it) and that claim's bias, the false discovery rate (accepted changes that did not
really beat their parent, pooled over swarms), and how many swarms ended with no accepted best
at all. The ± is the standard error over swarms. Every rule meets the same changes in the same
order, so ratios compare rules rather than luck, but a regime of rare large wins still varies from
swarm to swarm: compare rules on --swarms 40 or more, and on a second --seed (a different set of
swarms). --stagger has nodes join one by one, as a swarm grows.

    python -m bench.swarm_sim [--swarms 10] [--runs 400] [--nodes 4] [--seed 0]
        [--regimes hard,middle,easy,real] [--jobs CPUS] [--min-runs 4] [--min-authors 1] [--stagger]
        [--sigma-prior-df 4] [--clip-floors 3]
"""

import argparse
import collections
import hashlib
import heapq
import math
import multiprocessing
import os
import random
import statistics
import time
from dataclasses import dataclass, field

from node.research.work import WorkWeights, choose_work
from protocol.acceptance import UBPB, Derivations, Run, TrackView, assess
from protocol.config import apply, config_hash, default_config
from protocol.policy import NEW_SWARM_NOISE, Policy
from protocol.track import Track

SIGMA = 0.002
BASE_BPB = 1.0
TRACK = Track("sim-x1", "seconds", 300, "shakespeare", "bpe4096", 1)
PROFILE = "gpu"
ROOT_CONFIG = default_config(PROFILE)
ROOT = config_hash(ROOT_CONFIG)
KNOB = "logit_softcap"  # each explored config sets it to a value of its own, so every config is new
SEED_SET = 1_000_000  # swarm seeds of one --seed: seed * SEED_SET + i
RUN_LENGTH = (0.9, 1.1)  # a run's duration in units of the budget: startup and evaluation vary


@dataclass(frozen=True)
class Regime:
    """Where explored changes land: a share helps by a range of sigmas, a share does nothing, the rest hurts."""

    helps: float
    help_sigmas: tuple[float, float]
    nothing: float
    hurt_sigmas: tuple[float, float] = (1.0, 20.0)
    hurt_log_uniform: bool = False  # harm spread evenly over orders of magnitude, not over sigmas

    def effect(self, rng: random.Random) -> float:
        """A change's true effect on val_bpb in bpb (negative helps)."""
        draw = rng.random()
        if draw < self.helps:
            return -rng.uniform(*self.help_sigmas) * SIGMA
        if draw < self.helps + self.nothing:
            return 0.0
        low, high = self.hurt_sigmas
        if self.hurt_log_uniform:
            return math.exp(rng.uniform(math.log(low), math.log(high))) * SIGMA
        return rng.uniform(low, high) * SIGMA


REGIMES = {
    "hard": Regime(0.05, (0.3, 1.5), 0.60),
    "middle": Regime(0.05, (0.5, 3.0), 0.60),
    "easy": Regime(0.05, (1.0, 5.0), 0.60),
    # fitted to ~5,000 experiments of 34 public autoresearch logs, in units of 0.002 bpb: rare, large wins
    "real": Regime(0.034, (0.6, 25.0), 0.86, (1.5, 80.0), hurt_log_uniform=True),
}


@dataclass
class Outcome:
    """One swarm's end: gains in sigma, and its accepted changes (how many did not really help)."""

    real: float
    claimed: float
    accepted: int
    false: int
    no_best: bool = False  # it ended with no accepted config at all, not even the default


@dataclass
class Truth:
    """The simulated world: each config's true val_bpb, the effect draws of explored changes and seed noise.

    Effects and noise come from separate streams seeded by the swarm, so the k-th change a swarm
    explores has the same true effect under every rule: rules are compared on the same luck.
    """

    regime: Regime
    seed: int
    effects: random.Random = field(init=False)
    noise: random.Random = field(init=False)
    true_bpb: dict[str, float] = field(default_factory=lambda: {ROOT: BASE_BPB})
    full: dict[str, dict] = field(default_factory=lambda: {ROOT: ROOT_CONFIG})

    def __post_init__(self) -> None:
        self.effects, self.noise = random.Random(f"effects/{self.seed}"), random.Random(f"noise/{self.seed}")

    def explore(self, parent: str) -> tuple[str, dict]:
        """A new config one change away from ``parent``, with its true value drawn from the regime."""
        diff = {KNOB: round(1.0 + len(self.true_bpb) * 0.01, 2)}
        config = apply(self.full[parent], diff)
        digest = config_hash(config)
        self.full[digest] = config
        self.true_bpb[digest] = self.true_bpb[parent] + self.regime.effect(self.effects)
        return digest, diff

    def measure(self, config: str, sigma: float) -> int:
        return round(self.noise.gauss(self.true_bpb[config], sigma) * UBPB)


class Clock:
    """Run ends in time order: which node acts next; a node starts a fresh run as soon as one ends.

    Every node starts at once, or, staggered, node k joins only once k runs have ended: a swarm that
    grows one member at a time, whose early nodes see the baseline run before others join.
    """

    def __init__(self, nodes: int, rng: random.Random, stagger: bool = False) -> None:
        self.rng = rng
        firsts = [(rng.uniform(0, 0.01), node) for node in range(nodes)]
        self.queue = firsts[:1] if stagger else firsts
        heapq.heapify(self.queue)
        self.joins = collections.deque((k if stagger else 0, k) for k in range(nodes))  # (runs ended, node)
        self.now, self.ended = 0.0, 0

    def next_node(self) -> int:
        """A node that joins now, or the node whose run ends next."""
        if self.joins and self.ended >= self.joins[0][0]:
            _, node = self.joins.popleft()
            if all(other != node for _, other in self.queue):
                heapq.heappush(self.queue, (self.now + self.rng.uniform(*RUN_LENGTH), node))
            return node
        self.now, node = heapq.heappop(self.queue)
        heapq.heappush(self.queue, (self.now + self.rng.uniform(*RUN_LENGTH), node))
        self.ended += 1
        return node


def simulate_ours(
    regime: Regime, seed: int, runs: int, nodes: int, policy: Policy, stagger: bool = False
) -> tuple[Outcome, list[Run]]:
    """The swarm running the node's decision code; its outcome and its records."""
    rng = random.Random(seed)
    truth = Truth(regime, seed)
    names = [f"node-{i}" for i in range(nodes)]
    records: list[Run] = []
    running: dict[int, tuple[str, str, dict, bytes | None]] = {}  # node -> (config, parent, diff, replicates)
    view: TrackView | None = None
    derivations: Derivations = {}  # the records only grow: each config is derived from its parent once
    clock = Clock(nodes, rng, stagger)
    step = 0
    while len(records) < runs:
        node = clock.next_node()
        step += 1
        if node in running:  # its run ends: the result is everyone's at once
            config, parent, diff, replicates = running.pop(node)
            run_id = hashlib.sha256(f"{seed}/{step}".encode()).digest()
            ubpb = truth.measure(config, SIGMA)
            records.append(Run(run_id, step, names[node], TRACK, config, parent, diff, "ok", ubpb, replicates))
            view = assess(records, policy, derivations).get(TRACK.key)
        if len(records) + len(running) >= runs:
            continue
        claimed = {config for other, (config, *_) in running.items() if other != node}
        work = choose_work(view, ROOT, names[node], claimed, policy, WorkWeights(), rng)
        if work.kind == "baseline":
            running[node] = (ROOT, ROOT, {}, None)
        elif work.kind == "explore":
            config, diff = truth.explore(work.target.config)
            running[node] = (config, work.target.config, diff, None)
        else:
            target = work.target
            running[node] = (target.config, target.parent, dict(target.diff), target.discovery)
    best = view.best if view else None
    root = {s.config: s for s in view.leaderboard}[ROOT]
    accepted = [s for s in view.leaderboard if s.accepted and not s.is_default]
    false = sum(truth.true_bpb[s.config] >= truth.true_bpb[s.reference] for s in accepted)
    if best is None:
        return Outcome(0.0, 0.0, 0, 0, no_best=True), records
    real = (BASE_BPB - truth.true_bpb[best.config]) / SIGMA
    claimed = (root.evidence_mean - best.evidence_mean) / SIGMA  # what the ledger shows: pooled evidence means
    return Outcome(real, claimed, len(accepted), false), records


def simulate_greedy(regime: Regime, seed: int, runs: int, nodes: int, noise: float, stagger: bool = False) -> Outcome:
    """autoresearch's rule, swarmed: explore from the best single run; a run that beats it is the new best."""
    rng = random.Random(seed)
    truth = Truth(regime, seed)
    running: dict[int, tuple[str, str]] = {}  # node -> (config, parent)
    best: tuple[int, str] | None = None  # (val_bpb, config) of the best single run
    baseline = accepted = false = 0
    done = 0
    clock = Clock(nodes, rng, stagger)
    step = 0
    while done < runs:
        node = clock.next_node()
        step += 1
        if node in running:
            config, parent = running.pop(node)
            value = truth.measure(config, noise)
            done += 1
            if best is None:
                best, baseline = (value, config), value
            elif value < best[0]:
                best = (value, config)
                accepted += 1
                false += truth.true_bpb[config] >= truth.true_bpb[parent]
        if done + len(running) >= runs:
            continue
        running[node] = (ROOT, ROOT) if best is None else (truth.explore(best[1])[0], best[1])
    real = (BASE_BPB - truth.true_bpb[best[1]]) / SIGMA
    return Outcome(real, (baseline - best[0]) / UBPB / SIGMA, accepted, false)


def summarize(outcomes: list[Outcome]) -> str:
    real = statistics.mean(o.real for o in outcomes)
    spread = statistics.stdev(o.real for o in outcomes) / len(outcomes) ** 0.5 if len(outcomes) > 1 else 0.0
    claimed = statistics.mean(o.claimed for o in outcomes)
    accepted = sum(o.accepted for o in outcomes)
    fdr = sum(o.false for o in outcomes) / accepted if accepted else 0.0
    per_swarm = accepted / len(outcomes)
    no_best = sum(o.no_best for o in outcomes)
    return (
        f"{real:>7.2f} ±{spread:<5.2f}{claimed:>9.2f}{claimed - real:>+8.2f}{fdr:>8.1%}{per_swarm:>10.1f}{no_best:>9}"
    )


def run_regime(
    name: str, seeds: list[int], runs: int, nodes: int, policy: Policy, jobs: int, stagger: bool = False
) -> dict[str, list]:
    """Every rule's outcomes on the same swarms; ours, the costly one, spread over ``jobs`` processes."""
    regime = REGIMES[name]
    with multiprocessing.Pool(jobs) as workers:
        ours = workers.starmap(_ours_outcome, [(regime, s, runs, nodes, policy, stagger) for s in seeds])
    return {
        "ours": ours,
        "greedy": [simulate_greedy(regime, s, runs, nodes, SIGMA, stagger) for s in seeds],
        "ceiling": [simulate_greedy(regime, s, runs, nodes, 0.0, stagger) for s in seeds],
    }


def _ours_outcome(regime: Regime, seed: int, runs: int, nodes: int, policy: Policy, stagger: bool) -> Outcome:
    return simulate_ours(regime, seed, runs, nodes, policy, stagger)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swarms", type=int, default=10)
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="which set of swarms: each seed is a different set")
    parser.add_argument("--regimes", default=",".join(REGIMES))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--min-runs", type=int, default=Policy.min_runs, help="the policy's min_runs")
    parser.add_argument("--min-authors", type=int, default=Policy.min_authors, help="the policy's min_authors")
    parser.add_argument("--stagger", action="store_true", help="nodes join one by one: node k after k runs")
    for name, value in NEW_SWARM_NOISE.items():  # a new swarm's noise model unless told otherwise
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=value, help=f"the policy's {name}")
    args = parser.parse_args()
    policy = Policy(
        min_runs=args.min_runs,
        min_authors=args.min_authors,
        sigma_floor_ubpb=round(SIGMA * UBPB),
        **{name: getattr(args, name) for name in NEW_SWARM_NOISE},
    )
    print(
        f"{args.swarms} swarms x {args.runs} runs, {args.nodes} nodes{' joining one by one' if args.stagger else ''}, "
        f"sigma {SIGMA}, seed set {args.seed}, policy min_runs={policy.min_runs} min_authors={policy.min_authors} "
        f"sigma_prior_df={policy.sigma_prior_df} clip_floors={policy.clip_floors}"
    )
    columns = f"{'real gain (sigma)':>16}{'claimed':>9}{'bias':>8}{'FDR':>8}{'accepted':>10}{'no best':>9}"
    print(f"{'regime':<8}{'rule':<10}{columns}")
    for name in args.regimes.split(","):
        started = time.monotonic()
        seeds = [args.seed * SEED_SET + i for i in range(args.swarms)]
        outcomes = run_regime(name, seeds, args.runs, args.nodes, policy, args.jobs, args.stagger)
        for rule, rule_outcomes in outcomes.items():
            print(f"{name:<8}{rule:<10}{summarize(rule_outcomes)}")
        ratio = statistics.mean(o.real for o in outcomes["ours"]) / max(
            statistics.mean(o.real for o in outcomes["greedy"]), 1e-9
        )
        # paired: both rules met the same changes, so the difference is far less noisy than either gain
        gaps = [a.real - b.real for a, b in zip(outcomes["ours"], outcomes["greedy"], strict=True)]
        spread = statistics.stdev(gaps) / len(gaps) ** 0.5 if len(gaps) > 1 else 0.0
        print(
            f"{name:<8}ours/greedy real gain {ratio:.2f}x, ours-greedy {statistics.mean(gaps):+.2f} ±{spread:.2f} sigma"
            f" ({time.monotonic() - started:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
