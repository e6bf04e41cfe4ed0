"""How often does the acceptance rule promote seed noise, and how often does it find a real gain?

Each trial is one track: a default config run ``min_runs`` times by several authors (the verified
baseline), then one explored config with a discovery run, then more runs of it until it has
``min_runs``, looking after each run; it is *promoted* when it becomes the track's best at any look
(acceptance is sequential). Null trials have no real effect; power trials have a true gain of 3
sigma. The naive rule, "lowest single val_bpb wins", promotes whenever the discovery run beats every
baseline run. Everything goes through protocol.acceptance.assess, the rule the nodes run.

    python -m bench.acceptance [--trials 1000] [--seed 0]
"""

import argparse
import hashlib
import random

from protocol.acceptance import UBPB, Run, assess
from protocol.config import apply, config_hash, default_config
from protocol.policy import Policy
from protocol.track import Track

SIGMA = 0.002
BASE_BPB = 1.0
TRACK = Track("bench-x1", "seconds", 300, "shakespeare", "bpe4096", 1)
AUTHORS = [f"author-{i}" for i in range(8)]
ROOT = config_hash(default_config("gpu"))
CHILD_DIFF = {"matrix_lr": 0.05}
CHILD = config_hash(apply(default_config("gpu"), CHILD_DIFF))


class Trial:
    def __init__(self, rng: random.Random, policy: Policy, effect_sigmas: float) -> None:
        self.rng, self.policy = rng, policy
        self.child_mean = BASE_BPB - effect_sigmas * SIGMA
        self.runs: list[Run] = []
        for i in range(policy.min_runs):
            self.add(ROOT, BASE_BPB, AUTHORS[i % len(AUTHORS)])

    def add(self, config: str, mean: float, author: str, replicates: bytes | None = None) -> Run:
        ubpb = round(self.rng.gauss(mean, SIGMA) * UBPB)
        run_id = hashlib.sha256(f"{len(self.runs)}-{self.rng.random()}".encode()).digest()
        diff = {} if config == ROOT else CHILD_DIFF
        run = Run(run_id, len(self.runs), author, TRACK, config, ROOT, diff, "ok", ubpb, replicates)
        self.runs.append(run)
        return run

    def view(self):
        return assess(self.runs, self.policy)[TRACK.key]

    def run_ours(self) -> tuple[bool, int]:
        """Explore once, then add runs of the child (re-runs, or explorations from it that change
        nothing: the rule counts both) up to ``min_runs``, looking after every run (acceptance is
        sequential). (promoted at any look, runs spent on the child).
        """
        discovery = self.add(CHILD, self.child_mean, AUTHORS[0])
        for i in range(1, self.policy.min_runs):
            self.add(CHILD, self.child_mean, AUTHORS[i % len(AUTHORS)], replicates=discovery.id)
            best = self.view().best
            if best is not None and best.config == CHILD:
                return True, i + 1
        return False, self.policy.min_runs

    def naive(self) -> bool:
        child = next(run.val_bpb_ubpb for run in self.runs if run.config == CHILD)
        return child < min(run.val_bpb_ubpb for run in self.runs if run.config == ROOT)


def measure(policy: Policy, effect_sigmas: float, trials: int, seed: int) -> tuple[float, float, float]:
    rng = random.Random(seed)
    ours = naive = spent = 0
    for _ in range(trials):
        trial = Trial(rng, policy, effect_sigmas)
        promoted, runs = trial.run_ours()
        ours += promoted
        naive += trial.naive()
        spent += runs
    return ours / trials, naive / trials, spent / trials


def interval(rate: float, trials: int) -> str:
    """A 95% normal-approximation interval, so a reader sees how much the figure can move."""
    half = 1.96 * (rate * (1 - rate) / trials) ** 0.5
    return f"{rate:.1%} ±{half:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    floor = round(SIGMA * UBPB)
    policies = [Policy(min_runs=n, min_authors=a, sigma_floor_ubpb=floor) for n, a in ((2, 1), (3, 2), (4, 1), (4, 2))]
    print(f"{args.trials} trials per cell, sigma {SIGMA}, true gain for power: 3 sigma")
    print(f"{'policy':<24}{'false promotions':>18}{'naive':>8}{'power (3 sigma)':>18}{'naive':>8}{'runs/trial':>12}")
    for policy in policies:
        false_ours, false_naive, spent = measure(policy, 0.0, args.trials, args.seed)
        power_ours, power_naive, _ = measure(policy, 3.0, args.trials, args.seed + 1)
        name = f"min_runs={policy.min_runs} authors={policy.min_authors}"
        false_text, power_text = interval(false_ours, args.trials), interval(power_ours, args.trials)
        print(f"{name:<24}{false_text:>18}{false_naive:>8.1%}{power_text:>18}{power_naive:>8.1%}{spent:>12.2f}")
    print("target: false promotions <= 1%. Power is what a track's first change gets under the starting prior")
    print("(10% of changes help, by about 2 sigma): a lone 3-sigma gain needs more runs than min_runs to reach")
    print("97%; in a swarm its explorations bring them (bench/swarm_sim.py measures the swarm's gain and FDR)")


if __name__ == "__main__":
    main()
