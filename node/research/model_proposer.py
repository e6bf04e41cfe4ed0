"""The model-based proposer: learn from every result on the track, then pick the most promising move.

A surrogate of val_bpb is fitted to every config tried on the track, by any node: Bayesian linear
regression on each knob's change from the parent explored from (log scale for rates and sizes, a
linear and a squared term per numeric knob, one indicator per categorical value). Curvature has a
tighter prior than slope, so a change that hurt one way makes the opposite change look promising.
The spread of results is measured robustly (median absolute deviation); the noise is the track's
sigma when it is known, else that spread. Failed configs and wild results count as a fixed number
of spreads worse than the median: the model steers away from them without one crippled config
drowning every real effect. The candidates are the built-in proposer's moves (every single-knob
grid step, pairs of the most promising ones, the extension of the last change, peers' open
hypotheses), never a tried or claimed config. One draw of the model's weights from their posterior
(Thompson sampling) scores them all and the lowest predicted val_bpb wins: knobs nobody has moved
keep their prior uncertainty, so the search keeps exploring them until the results say they do not
matter. An open hypothesis the model does not expect to hurt (its posterior mean within half the
noise) is run first, so peers' ideas get answered. With fewer results than it takes to fit, or no
untried candidate, it is the built-in proposer.
"""

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from node.research import builtin_proposer
from node.research.agent import AgentContext, Observation, Proposal, clean_hypothesis
from node.research.builtin_proposer import (
    DOUBLING_KNOBS,
    FRACTION_KNOBS,
    TIMESCALE_KNOBS,
    BuiltinProposer,
    changes_in_words,
    single_changes,
)
from protocol.config import KNOBS, Config, Knob, Value

NAME = "model"
MIN_RESULTS = 4  # ok results on the track before the model is fitted; the built-in search until then
PAIR_POOL = 8  # the most promising single changes, paired with each other as candidates
RIDGE = 4.0  # prior precision of a weight: an untried knob step is expected to move val_bpb by half the spread
CURVATURE_RIDGE = 16.0  # prior precision of a squared term: curvature is expected half the size of a slope
# A result this many spreads worse than the median counts as only this bad, and a failed config as
# that too: the model learns to avoid both without one wild value bending every other estimate.
OUTLIER_SPREADS = 6.0
MAD_TO_SD = 1.4826  # a normal distribution's standard deviation per unit of median absolute deviation
MODELLED = tuple(knob for knob in KNOBS if knob.hashed)


class ModelProposer:
    """Deterministic given the context and the random generator; never proposes a tried config."""

    name = NAME

    def __init__(self, fallback: BuiltinProposer | None = None) -> None:
        self.fallback = fallback or BuiltinProposer()

    def propose(self, ctx: AgentContext, rng: random.Random) -> Proposal:
        ok = [o for o in ctx.observations if o.val_bpb is not None]
        if len(ok) < MIN_RESULTS:
            return self.fallback.propose(ctx, rng)
        features = Features(ctx.best_config, [o.config for o in ctx.observations])
        posterior = Posterior.fit(features, ctx.observations, ctx.sigma)
        weights = posterior.draw(rng)
        adoptable = [h for h in ctx.hypotheses if h.parent == ctx.best_hash and self._untried(ctx, [dict(h.diff)])]
        promising = [h for h in adoptable if features.predict(posterior.mean, h.diff) <= posterior.noise / 2]
        if promising:  # a peer's open idea the results do not argue against: run it, answering it for everyone
            chosen = min(promising, key=lambda h: features.predict(weights, h.diff))
            proposal = self._untried(ctx, [dict(chosen.diff)])[0]
            why = f"peer hypothesis from {chosen.author[:16]}: {chosen.rationale}"
            return Proposal(proposal.diff, proposal.config, proposal.config_hash, clean_hypothesis(why), NAME)
        singles = sorted(single_changes(ctx.best_config, ctx.space), key=lambda diff: features.predict(weights, diff))
        # pairs of the single changes the draw expects to help most, tried or not: two guesses at once
        # are rarely worth a run, but a known good change plus a promising one often is
        pool = [diff for diff in singles[:PAIR_POOL] if features.predict(weights, diff) < 0]
        candidates = self._untried(ctx, [*singles, *_pairs(pool), *_other_moves(ctx)])
        if not candidates:
            return self.fallback.propose(ctx, rng)
        chosen = min(candidates, key=lambda proposal: features.predict(weights, proposal.diff))
        why = f"{NAME}: a surrogate of {len(ctx.observations)} results on the track favours"
        hypothesis = clean_hypothesis(f"{why} {changes_in_words(ctx.best_config, chosen.diff)}")
        return Proposal(chosen.diff, chosen.config, chosen.config_hash, hypothesis, NAME)

    def _untried(self, ctx: AgentContext, diffs: list[Config]) -> list[Proposal]:
        """Proposals for those of ``diffs`` that are valid, change something, and nobody tried or claimed."""
        return [proposal for diff in diffs if (proposal := self.fallback.accept(ctx, (diff, ""))) is not None]


class Features:
    """Each config as its knobs' changes from a base config, in the units the model is linear in."""

    def __init__(self, base: Mapping[str, Value], configs: list[Mapping[str, Value]]) -> None:
        self.base = base
        self.choices = {
            knob.name: sorted({str(c[knob.name]) for c in [base, *configs]}) for knob in MODELLED if not _numeric(knob)
        }
        # a knob's curvature is expected smaller than its slope, so a result on one side of the base
        # config says something about the other side: halving a rate hurt, so doubling it may help
        self.prior_precision = np.array(
            [
                precision
                for knob in MODELLED
                for precision in ([RIDGE] * len(self.choices[knob.name]) if knob.name in self.choices
                                  else [RIDGE, CURVATURE_RIDGE])
            ]
        )  # fmt: skip

    def row(self, diff: Mapping[str, Value]) -> np.ndarray:
        values: list[float] = []
        for knob in MODELLED:
            value = diff.get(knob.name, self.base[knob.name])
            if knob.name in self.choices:
                values += [float(str(value) == choice) - float(str(self.base[knob.name]) == choice)
                           for choice in self.choices[knob.name]]  # fmt: skip
            else:
                change = _scale(knob, value) - _scale(knob, self.base[knob.name])
                values += [change, change * change]
        return np.array(values)

    def predict(self, weights: np.ndarray, diff: Mapping[str, Value]) -> float:
        row = self.row(diff)
        return float(row @ weights[1:]) if row.shape[0] == weights.shape[0] - 1 else math.inf


def _numeric(knob: Knob) -> bool:
    return knob.kind in (int, float)


def _scale(knob: Knob, value: Value) -> float:
    """A knob's value where equal steps mean comparable changes: logs for rates, sizes and timescales."""
    if knob.name in TIMESCALE_KNOBS:
        return math.log(max(1 - float(value), 1e-6))
    if knob.name in FRACTION_KNOBS:
        return 4 * float(value)  # a 0.25 step is about as bold as doubling a rate
    if knob.kind is float and value == 0:  # a disabled scale: switching it on at 1% of its range is one doubling
        return math.log2(knob.hi / 200)
    if knob.name in DOUBLING_KNOBS or knob.kind is float:
        return math.log2(max(float(value), 1e-6))
    return math.log2(max(float(value), 1.0))


@dataclass(frozen=True)
class Posterior:
    """The Bayesian linear regression's posterior over (intercept, weights), and the noise it assumed."""

    mean: np.ndarray
    covariance: np.ndarray
    noise: float

    @classmethod
    def fit(cls, features: Features, observations: tuple[Observation, ...], sigma: float | None) -> "Posterior":
        ok = np.array([o.val_bpb for o in observations if o.val_bpb is not None])
        # a robust spread: a few diverged or crippled configs must not make every real effect look like noise
        spread = MAD_TO_SD * float(np.median(np.abs(ok - np.median(ok)))) or float(np.std(ok)) or 1e-3
        noise = sigma or spread
        worst = float(np.median(ok)) + OUTLIER_SPREADS * spread
        diffs = [{k: o.config[k] for k in o.config if o.config[k] != features.base.get(k)} for o in observations]
        rows = np.array([[1.0, *features.row(diff)] for diff in diffs])
        targets = np.array([min(o.val_bpb, worst) if o.val_bpb is not None else worst for o in observations])
        precision = rows.T @ rows / noise**2 + np.diag([1e-6, *(features.prior_precision / spread**2)])
        covariance = np.linalg.inv(precision)
        return cls(covariance @ rows.T @ targets / noise**2, (covariance + covariance.T) / 2, noise)

    def draw(self, rng: random.Random) -> np.ndarray:
        """One draw of the weights, for Thompson sampling."""
        return np.random.default_rng(rng.getrandbits(64)).multivariate_normal(self.mean, self.covariance)


def _pairs(singles: list[Config]) -> list[Config]:
    return [{**a, **b} for i, a in enumerate(singles) for b in singles[i + 1 :] if not set(a) & set(b)]


def _other_moves(ctx: AgentContext) -> list[Config]:
    """The extension of the last change and open hypotheses on the parent, when there are any."""
    moves = [dict(h.diff) for h in ctx.hypotheses if h.parent == ctx.best_hash]  # scored like any move
    if ctx.parent_config:
        extension = builtin_proposer.extend(ctx.best_config, ctx.parent_config)
        if extension:
            moves.append(extension[0])
    return moves
