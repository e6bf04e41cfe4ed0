"""The model-based proposer: learn from every result on the track, then pick the most promising move.

A surrogate of val_bpb is fitted to every config tried on the track, by any node: Bayesian linear
regression on each knob's change from the parent explored from (log scale for rates and sizes, a
linear and a squared term per numeric knob, one indicator per categorical value). Failed configs
count as results worse than any that ran, so the model steers away from them. The candidates are
the built-in proposer's moves (every single-knob grid step, pairs of the most promising ones, the
extension of the last change, peers' open hypotheses), never a tried or claimed config. One draw
of the model's weights from their posterior (Thompson sampling) scores them all and the lowest
predicted val_bpb wins: knobs nobody has moved keep their prior uncertainty, so the search keeps
exploring them until the results say they do not matter. An open hypothesis the draw does not
expect to hurt is run first, so peers' ideas get answered. With fewer results than it takes to
fit, or no untried candidate, it is the built-in proposer.
"""

import math
import random
from collections.abc import Mapping

import numpy as np

from node.research import builtin_proposer
from node.research.agent import AgentContext, Observation, Proposal, clean_hypothesis
from node.research.builtin_proposer import (
    DOUBLING_KNOBS,
    FRACTION_KNOBS,
    TIMESCALE_KNOBS,
    BuiltinProposer,
    single_changes,
)
from protocol.config import KNOBS, Config, Knob, Value

NAME = "model"
MIN_RESULTS = 4  # ok results on the track before the model is fitted; the built-in search until then
PAIR_POOL = 8  # the most promising single changes, paired with each other as candidates
RIDGE = 4.0  # prior precision of a weight: an untried knob step is expected to move val_bpb by half the spread
FAILURE_PENALTY = 2.0  # a failed config counts as this many result spreads worse than the worst run
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
        weights = _posterior_draw(features, ctx.observations, rng)
        adoptable = [h for h in ctx.hypotheses if h.parent == ctx.best_hash and self._untried(ctx, [dict(h.diff)])]
        promising = [h for h in adoptable if features.predict(weights, h.diff) <= 0]
        if promising:  # a peer's open idea the results do not argue against: run it, answering it for everyone
            chosen = min(promising, key=lambda h: features.predict(weights, h.diff))
            proposal = self._untried(ctx, [dict(chosen.diff)])[0]
            why = f"peer hypothesis from {chosen.author[:16]}: {chosen.rationale}"
            return Proposal(proposal.diff, proposal.config, proposal.config_hash, clean_hypothesis(why), NAME)
        singles = sorted(single_changes(ctx.best_config), key=lambda diff: features.predict(weights, diff))
        # pairs of the single changes the draw expects to help most, tried or not: two guesses at once
        # are rarely worth a run, but a known good change plus a promising one often is
        pool = [diff for diff in singles[:PAIR_POOL] if features.predict(weights, diff) < 0]
        candidates = self._untried(ctx, [*singles, *_pairs(pool), *_other_moves(ctx)])
        if not candidates:
            return self.fallback.propose(ctx, rng)
        chosen = min(candidates, key=lambda proposal: features.predict(weights, proposal.diff))
        why = f"{NAME}: a surrogate of {len(ctx.observations)} results on the track favours"
        hypothesis = clean_hypothesis(f"{why} {_format(ctx.best_config, chosen.diff)}")
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
        self.size = sum(len(self.choices[k.name]) if k.name in self.choices else 2 for k in MODELLED)

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
    if knob.name in DOUBLING_KNOBS or knob.kind is float:
        return math.log2(max(float(value), 1e-6))
    return math.log2(max(float(value), 1.0))


def _posterior_draw(features: Features, observations: tuple[Observation, ...], rng: random.Random) -> np.ndarray:
    """One draw of (intercept, weights) from the Bayesian linear regression's posterior."""
    ok = [o.val_bpb for o in observations if o.val_bpb is not None]
    spread = float(np.std(ok)) or 1e-3
    worst = max(ok) + FAILURE_PENALTY * spread
    diffs = [{k: o.config[k] for k in o.config if o.config[k] != features.base.get(k)} for o in observations]
    rows = np.array([[1.0, *features.row(diff)] for diff in diffs])
    targets = np.array([o.val_bpb if o.val_bpb is not None else worst for o in observations])
    precision = rows.T @ rows / spread**2 + np.diag([1e-6, *[RIDGE / spread**2] * features.size])
    covariance = np.linalg.inv(precision)
    mean = covariance @ rows.T @ targets / spread**2
    draw = np.random.default_rng(rng.getrandbits(64)).multivariate_normal(mean, (covariance + covariance.T) / 2)
    return draw


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


def _format(base: Mapping[str, Value], diff: Mapping[str, Value]) -> str:
    return ", ".join(f"{name} {base[name]} -> {value}" for name, value in diff.items())
