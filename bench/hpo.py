"""The race on the real landscape: an arnode swarm against optuna's samplers on published autoresearch trials.

The landscape is a surrogate fitted to 11,172 real 5-minute runs of autoresearch's train.py on an
H200 (bench/hpo_landscape.py, which prints its held-out error first): a model of val_bpb and one of
failure, seed noise of ``sigma`` per run, a failure charged its typical seconds. Every method starts
from autoresearch's default config and spends the same GPU-hours on 4 workers inside the
benchmark's 14-knob box:
- swarm: 4 arnode nodes running the node's own decision code (choose_work, assess, the proposer),
  each seeing the others' results and claims, the box given as the user's search space;
- tpe, cmaes, random: optuna's samplers asked by 4 workers (bench/hpo_baselines.py): TPE
  multivariate with a constant liar, CMA-ES, uniform random. optuna's GPSampler is there too
  (--methods gp) but is left out by default: on 2 cores one 24-GPU-hour repetition takes hours.

Printed per sigma, budget and method, as means over repetitions with standard errors: the true
(surrogate) val_bpb of the config the method would hand a user (the swarm's accepted best; the
others' best single run), what the method claims for it and the bias, the swarm's lead over the
method (paired by repetition: the same seed for the noise), the GPU-hours each took to hand a
config within 0.005 of the surrogate's best and, for the swarm, its false discovery rate (accepted
changes that did not really beat their reference). The surrogate is one model of the landscape:
gaps below its held-out error near the top are a statement about this model, not the world.

    python -m bench.hpo [--reps 20] [--sigmas 0.0007,0.002] [--hours 6,24] [--methods swarm,tpe,cmaes,random]
        [--proposer tpe] [--jobs CPUS]
"""

import argparse
import hashlib
import heapq
import multiprocessing
import os
import random
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.hpo_baselines import race_baseline
from bench.hpo_landscape import BOX, SUCCESS_SECONDS, Landscape, Measurement, default_params
from node.research.agent import AgentContext, Observation, Proposer
from node.research.loop import LEADERBOARD_HEAD, OBSERVATIONS
from node.research.model_proposer import ModelProposer
from node.research.sampler_proposer import SamplerProposer
from node.research.space import SearchSpace
from node.research.work import WorkWeights, choose_work, teaches, tried_configs
from protocol.acceptance import UBPB, ConfigStats, Derivations, Run, TrackView, assess
from protocol.config import Config, config_hash, default_config
from protocol.policy import NEW_SWARM_NOISE, Policy
from protocol.track import Track

TRACK = Track("h200-x1", "seconds", 300, "climbmix", "bpe8192", 1)
ROOT_CONFIG = default_config("gpu")
ROOT = config_hash(ROOT_CONFIG)
NODES = 4
NEAR_BEST = 0.005  # bpb: "within reach of the best" for the GPU-hours-to-reach figure
BASELINES = ("tpe", "cmaes", "random")  # and "gp", when asked for
DATA = Path(__file__).resolve().parents[2] / "shared" / "hpo" / "autoresearch-automl-trials.json"


@dataclass(frozen=True)
class Handed:
    """What a method would hand a user at one budget: the config's true val_bpb and what it claims."""

    true_bpb: float
    claimed_bpb: float


@dataclass(frozen=True)
class RaceResult:
    """One repetition of one method: what it hands at each budget, when it first came near the best,
    and (the swarm only) its accepted changes and how many were false."""

    handed: Mapping[float, Handed]
    hours_to_near: float | None
    accepted: int = 0
    false: int = 0


def search_space() -> SearchSpace:
    """The benchmark's box, written as a user writes it in config.toml's [search] table."""
    return SearchSpace.parse({knob.name: list(knob.choices) or [knob.lo, knob.hi] for knob in BOX})


class SimulatedSwarm:
    """``NODES`` arnode nodes on the landscape: the node's decision code, each node seeing every result
    and every other node's claim at once; only the trainer is the surrogate."""

    def __init__(self, landscape: Landscape, sigma: float, seed: int, proposer: Proposer, policy: Policy) -> None:
        self.landscape, self.sigma, self.proposer, self.policy = landscape, sigma, proposer, policy
        self.rng = random.Random(seed)
        self.noise = np.random.default_rng(seed)
        self.space = search_space()
        self.names = [f"node-{i}" for i in range(NODES)]
        self.full: dict[str, Config] = {ROOT: ROOT_CONFIG}
        self.records: list[Run] = []
        self.derivations: Derivations = {}
        self.view: TrackView | None = None
        self.best_known = landscape.best_known()
        self.truth: dict[str, float] = {}  # config -> its true val_bpb; the surrogate is costly to ask
        self.failing: dict[str, float] = {}  # config -> its probability of failing

    def race(self, hours: list[float]) -> RaceResult:
        """Every node runs back to back on its own GPU, starting a run only while one of full length
        still ends within its share of the budget (as the baselines do)."""
        wall_s = hours[-1] * 3600 / NODES
        clock: list[tuple[float, int]] = []  # (when a node's run ends, in wall seconds; the node)
        running: dict[int, _Running] = {}
        handed: dict[float, Handed] = {}
        near = None
        for node in range(NODES):
            self._start(node, 0.0, running, clock)
        while clock:
            now, node = heapq.heappop(clock)
            self._finish(node, now, running.pop(node))
            current = self._handed()
            for mark in hours:
                if now <= mark * 3600 / NODES:
                    handed[mark] = current  # the last view before the budget mark is what a user gets
            if near is None and current.true_bpb <= self.best_known + NEAR_BEST:
                near = now * NODES / 3600
            if now + SUCCESS_SECONDS <= wall_s:
                self._start(node, now, running, clock)
        accepted = [s for s in self.view.leaderboard if s.accepted and not s.is_default]
        false = sum(self._true(s.config) >= self._true(s.reference) for s in accepted)
        return RaceResult(handed, near, len(accepted), false)

    def _start(self, node: int, now: float, running: dict[int, "_Running"], clock: list) -> None:
        """Choose and start ``node``'s next run."""
        claimed = {run.config for other, run in running.items() if other != node}
        work = choose_work(self.view, ROOT, self.names[node], claimed, self.policy, WorkWeights(), self.rng)
        if work.kind == "baseline":
            config, parent, diff, replicates = ROOT, ROOT, {}, None
        elif work.kind == "explore":
            others = tuple(self.full[c] for c in sorted(claimed))
            proposal = self.proposer.propose(self._context(node, work.target, claimed, others), self.rng)
            config, parent, diff, replicates = proposal.config_hash, work.target.config, proposal.diff, None
            self.full[config] = proposal.config
        else:
            target = work.target
            config, parent, diff, replicates = target.config, target.parent, dict(target.diff), target.discovery
        measured = self._measure(config)
        running[node] = _Running(config, parent, diff, replicates, measured)
        heapq.heappush(clock, (now + measured.seconds, node))

    def _finish(self, node: int, now: float, run: "_Running") -> None:
        run_id = hashlib.sha256(f"{len(self.records)}/{node}/{now}".encode()).digest()
        val_bpb = run.measured.val_bpb
        outcome, ubpb = ("ok", round(val_bpb * UBPB)) if val_bpb is not None else ("crash", None)
        record = Run(run_id, round(now * 1000), self.names[node], TRACK, run.config, run.parent, run.diff, outcome,
                     ubpb, run.replicates)  # fmt: skip
        self.records.append(record)
        self.view = assess(self.records, self.policy, self.derivations).get(TRACK.key)

    def _context(self, node: int, parent: ConfigStats, claimed: set[str], running: tuple[Config, ...]) -> AgentContext:
        """What a node's proposer reads, as node/research/loop.py builds it from the ledger."""
        view = self.view
        done = tried_configs(self.records, self.names[node], self.policy)
        tried = done | claimed
        observations = tuple(
            Observation(self.full[s.config], s.mean) for s in view.leaderboard[:OBSERVATIONS] if teaches(s, done)
        )
        return AgentContext(
            track_key=TRACK.key, best_config=self.full[parent.config], best_hash=parent.config, best_stats=parent,
            parent_config=None if parent.is_default else self.full[parent.parent], sigma=view.sigma,
            leaderboard=view.leaderboard[:LEADERBOARD_HEAD], tried=frozenset(tried), observations=observations,
            space=self.space, running=running,
        )  # fmt: skip

    def _handed(self) -> Handed:
        best = self.view.best if self.view else None
        if best is None:  # nothing accepted: the user is handed the default, with no claim of its own
            truth = self._true(ROOT)
            return Handed(truth, truth)
        return Handed(self._true(best.config), best.evidence_mean if best.evidence_mean is not None else best.mean)

    def _true(self, config: str) -> float:
        if config not in self.truth:
            self.truth[config] = self.landscape.true_bpb(_params(self.full[config]))
        return self.truth[config]

    def _measure(self, config: str) -> Measurement:
        """One run of ``config``: the landscape's measure, with each config's truth looked up once."""
        if config not in self.failing:
            self.failing[config] = self.landscape.p_fail(_params(self.full[config]))
        return self.landscape.draw(self._true(config), self.failing[config], self.noise, self.sigma)


@dataclass(frozen=True)
class _Running:
    """A run under way: what it will record, and what the landscape already decided it measures."""

    config: str
    parent: str
    diff: dict
    replicates: bytes | None
    measured: Measurement


def _params(config: Mapping) -> dict:
    return {knob.name: config[knob.name] for knob in BOX}


def baseline_result(method: str, landscape: Landscape, sigma: float, hours: list[float], seed: int) -> RaceResult:
    trajectory = race_baseline(method, landscape, sigma, max(hours), workers=NODES, seed=seed)
    handed = {}
    for mark in hours:
        run = trajectory.handed(mark)
        truth = landscape.true_bpb(run.params if run else default_params())
        handed[mark] = Handed(truth, run.observed if run else truth)
    best_known = landscape.best_known()
    near = next(
        (
            run.gpu_hours
            for run in trajectory.runs
            if (best := trajectory.handed(run.gpu_hours)) is not None
            and landscape.true_bpb(best.params) <= best_known + NEAR_BEST
        ),
        None,
    )
    return RaceResult(handed, near)


def _one(job: tuple[str, float, int, list[float], str]) -> tuple[str, float, RaceResult, float]:
    method, sigma, seed, hours, proposer = job
    started = time.monotonic()
    landscape = Landscape(DATA)
    if method == "swarm":
        chosen = SamplerProposer() if proposer == "tpe" else ModelProposer()
        policy = Policy(**NEW_SWARM_NOISE)  # what a swarm founded now gets, whatever the track's real noise
        result = SimulatedSwarm(landscape, sigma, seed, chosen, policy).race(hours)
    else:
        result = baseline_result(method, landscape, sigma, hours, seed)
    return method, sigma, result, time.monotonic() - started


def _mean_se(values: list[float]) -> tuple[float, float]:
    mean = statistics.mean(values)
    return mean, (statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0)


def report(results: dict[tuple[str, float], list[RaceResult]], sigma: float, hours: list[float], methods: list[str],
           best_known: float) -> None:  # fmt: skip
    for mark in hours:
        print(f"\nsigma {sigma}, {mark:g} GPU-hours ({NODES} workers); surrogate's best {best_known:.4f}")
        print(
            f"{'method':<8}{'true val_bpb':>18}{'claimed':>10}{'bias':>9}{'swarm lead':>20}{'h to near':>15}{'FDR':>7}"
        )
        swarm = results.get(("swarm", sigma))
        for method in methods:
            rows = results[method, sigma]
            true_mean, true_se = _mean_se([r.handed[mark].true_bpb for r in rows])
            claim = statistics.mean(r.handed[mark].claimed_bpb for r in rows)
            lead = ""
            if swarm is not None and method != "swarm":
                gaps = [b.handed[mark].true_bpb - a.handed[mark].true_bpb for a, b in zip(swarm, rows, strict=True)]
                gap, gap_se = _mean_se(gaps)
                lead = f"{gap:+.4f} ±{gap_se:.4f}"
            reached = [r.hours_to_near for r in rows if r.hours_to_near is not None]
            near = f"{statistics.mean(reached):.1f} ({len(reached)}/{len(rows)})" if reached else f"- (0/{len(rows)})"
            accepted = sum(r.accepted for r in rows)
            fdr = f"{sum(r.false for r in rows) / accepted:.1%}" if accepted else ""
            print(f"{method:<8}{true_mean:>10.4f} ±{true_se:.4f}{claim:>10.4f}{claim - true_mean:>+9.4f}{lead:>20}"
                  f"{near:>15}{fdr:>7}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--sigmas", default="0.0007,0.002")
    parser.add_argument("--hours", default="6,24")
    parser.add_argument("--methods", default=",".join(("swarm", *BASELINES)))
    parser.add_argument("--proposer", default="tpe", help="the swarm's proposer: tpe or model")
    parser.add_argument("--seed", type=int, default=0, help="which set of repetitions")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    sigmas = [float(s) for s in args.sigmas.split(",")]
    hours = sorted(float(h) for h in args.hours.split(","))
    methods = args.methods.split(",")
    landscape = Landscape(DATA)
    print(landscape.validation().report())
    jobs = [
        (m, s, args.seed * 1000 + r, hours, args.proposer) for s in sigmas for m in methods for r in range(args.reps)
    ]
    results: dict[tuple[str, float], list[RaceResult]] = {(m, s): [] for m in methods for s in sigmas}
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    with multiprocessing.Pool(args.jobs) as pool:
        for method, sigma, result, spent in pool.imap(_one, jobs):
            results[method, sigma].append(result)
            seconds[method].append(spent)
    print("seconds per repetition: " + ", ".join(f"{m} {statistics.mean(s):.0f}" for m, s in seconds.items()))
    for sigma in sigmas:
        report(results, sigma, hours, methods, landscape.best_known())


if __name__ == "__main__":
    main()
