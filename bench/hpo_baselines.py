"""The published HPO baselines (random, TPE, CMA-ES, GP), raced on the surrogate landscape.

Each baseline is an optuna sampler over the benchmark's box, driven by ask/tell on an event clock
that simulates parallel GPUs: a free worker asks for a trial while the others' trials stay RUNNING
(how TPE's constant liar sees them), the trial lasts what the landscape charges it, and is told its
observed value, or FAIL, when it ends. Like the benchmark, every search starts from the default config.
The result is the runs in completion order, from which the caller reads what the search would hand
a user at any budget.
"""

import heapq
import math
import warnings
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from bench.hpo_landscape import BOX, SEQ_LEN, SUCCESS_SECONDS, Knob, Landscape, default_params

SECONDS_PER_HOUR = 3600.0


def distribution(knob: Knob) -> BaseDistribution:
    """Powers of two are searched by exponent, so CMA-ES and GP treat them as ordered numbers."""
    if knob.kind == "int":
        return IntDistribution(int(knob.lo), int(knob.hi))
    if knob.kind == "pow2":
        return IntDistribution(int(math.log2(knob.lo)), int(math.log2(knob.hi)))
    if knob.kind == "choice":
        return CategoricalDistribution(knob.choices)
    return FloatDistribution(knob.lo, knob.hi, log=knob.kind == "log")


DISTRIBUTIONS = {knob.name: distribution(knob) for knob in BOX}
POW2 = {knob.name for knob in BOX if knob.kind == "pow2"}


def to_params(sampled: dict) -> dict:
    """A sampled point as knob values, with the batch rule repaired by raising total_batch_tokens."""
    params = {name: 2**value if name in POW2 else value for name, value in sampled.items()}
    params["total_batch_tokens"] = max(params["total_batch_tokens"], params["device_batch_size"] * SEQ_LEN)
    return params


def to_sampled(params: dict) -> dict:
    return {name: int(math.log2(value)) if name in POW2 else value for name, value in params.items()}


def sampler(method: str, seed: int) -> optuna.samplers.BaseSampler:
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if method == "tpe":
        return optuna.samplers.TPESampler(multivariate=True, constant_liar=True, seed=seed)
    if method == "cmaes":
        # the window pattern is categorical, which CMA-ES leaves to an independent random sampler
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if method == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise ValueError(f"unknown baseline method {method!r}")


METHODS = ("random", "tpe", "cmaes", "gp")


@dataclass(frozen=True)
class Run:
    """One finished trial: GPU-hours spent by all workers when it ended, its config, what it measured."""

    gpu_hours: float
    params: dict
    observed: float | None  # None when the run failed


@dataclass(frozen=True)
class Trajectory:
    """A baseline's runs in completion order."""

    method: str
    seed: int
    runs: tuple[Run, ...]

    def handed(self, at_gpu_hours: float) -> Run | None:
        """The best single successful run finished by then: what the search hands a user (None if none)."""
        done = [run for run in self.runs if run.gpu_hours <= at_gpu_hours and run.observed is not None]
        return min(done, key=lambda run: run.observed, default=None)


def new_study(method: str, seed: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(direction="minimize", sampler=sampler(method, seed))
    study.enqueue_trial(to_sampled(default_params()))
    return study


def race_baseline(
    method: str, landscape: Landscape, sigma: float, gpu_hours: float, workers: int = 4, seed: int = 0
) -> Trajectory:
    """Run one baseline on `workers` simulated GPUs sharing `gpu_hours` (each gets gpu_hours / workers of wall).

    A worker starts a trial only while a successful run would still end within its share, so the
    budget is never exceeded and no scheduler needs to know in advance whether a run will fail.
    """
    study = new_study(method, seed)
    rng = np.random.default_rng(seed)
    wall = gpu_hours * SECONDS_PER_HOUR / workers
    events: list[tuple[float, int, int]] = []  # (end time, worker, trial number): ties broken by worker
    pending: dict[int, tuple[optuna.Trial, dict, float | None]] = {}
    runs: list[Run] = []

    def start(worker: int, now: float) -> None:
        if now + SUCCESS_SECONDS > wall:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            trial = study.ask(DISTRIBUTIONS)
        params = to_params(trial.params)
        measurement = landscape.measure(params, rng, sigma)
        pending[trial.number] = (trial, params, measurement.val_bpb)
        heapq.heappush(events, (now + measurement.seconds, worker, trial.number))

    for worker in range(workers):
        start(worker, 0.0)
    while events:
        now, worker, number = heapq.heappop(events)
        trial, params, observed = pending.pop(number)
        if observed is None:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, observed)
        runs.append(Run(now * workers / SECONDS_PER_HOUR, params, observed))
        start(worker, now)
    return Trajectory(method, seed, tuple(runs))
