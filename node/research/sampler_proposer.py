"""Global search over the user's search space with a well-kept sampler (optuna's TPE), fed from the ledger.

The model proposer (model_proposer.py) moves one or two knobs around the config explored from; a
bounded search space is also a box a global sampler can cover, where depth, width, batch and the
learning rates interact. Every node rebuilds an in-memory study from the track's results each time
(every config tried by any node is a finished trial: its mean val_bpb, or the worst result seen when
it only failed, so a failing region is learnt as bad), enters the configs other nodes are running
as running trials (the sampler's constant liar keeps four nodes off one point), and asks one point.
The point becomes a diff against the config explored from: knobs outside the space keep that
config's values. Deterministic given the context and the random generator. Outside a restricted
space, or while too few results are in, it is the fallback proposer.

optuna is chosen over a hand-written sampler: its TPE is maintained, tested and the reference the
race in bench/hpo.py compares against (its GP sampler took seconds per point on two cores).
"""

import dataclasses
import math
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING

from node.research.agent import AgentContext, Proposal, Proposer, clean_hypothesis
from node.research.builtin_proposer import DOUBLING_KNOBS, FRACTION_KNOBS, BuiltinProposer, changes_in_words
from node.research.model_proposer import ModelProposer
from node.research.space import SearchSpace
from protocol.config import KNOB, Value

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

NAME = "tpe"
MIN_RESULTS = 8  # finished configs in the space before the sampler leads; the fallback's local search until then
ASKS = 32  # points asked before giving up on finding a valid, untried config
LOG_SPAN = 8  # a numeric range this many times wide (and above zero) is searched on a log scale


class SamplerProposer:
    """optuna's multivariate TPE over ``ctx.space``; the fallback outside a restricted space."""

    name = NAME

    def __init__(self, fallback: Proposer | None = None) -> None:
        self.fallback = fallback or ModelProposer()

    def propose(self, ctx: AgentContext, rng: random.Random) -> Proposal:
        if not ctx.space.restricted:
            return self.fallback.propose(ctx, rng)
        import optuna  # here, not at import: read-only commands import node.research without searching

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        space = distributions(ctx.space)
        finished = _finished_trials(space, ctx)
        if len(finished) < MIN_RESULTS:
            return self.fallback.propose(ctx, rng)
        # no random start-up trials: the fallback's local moves from the default gave the first results
        sampler = optuna.samplers.TPESampler(
            seed=rng.getrandbits(32), n_startup_trials=0, multivariate=True, constant_liar=True
        )
        study = optuna.create_study(sampler=sampler)
        study.add_trials(finished)
        running = [params for config in ctx.running if (params := _params(config, space)) is not None]
        for params in running:  # the sampler's constant liar keeps other nodes' points out of its next ask
            study.add_trial(optuna.trial.create_trial(params=params, distributions=space,
                                                      state=optuna.trial.TrialState.RUNNING))  # fmt: skip
        for _ in range(ASKS):
            trial = study.ask(space)
            proposal = self._proposal(ctx, _values(trial.params, space), len(finished))
            if proposal is not None:
                return proposal
            study.tell(trial, state=optuna.trial.TrialState.FAIL)  # invalid or tried: ask again elsewhere
        return self.fallback.propose(ctx, rng)

    def _proposal(self, ctx: AgentContext, params: Mapping[str, Value], finished: int) -> Proposal | None:
        """The proposal for the sampler's point, if the built-in checks accept it (valid, inside the
        space, a change, untried)."""
        proposal = BuiltinProposer().accept(ctx, (dict(params), ""))
        if proposal is None:
            return None
        why = f"{NAME}: a sampler over the search space, from {finished} results, proposes"
        hypothesis = clean_hypothesis(f"{why} {changes_in_words(ctx.best_config, proposal.diff)}")
        return dataclasses.replace(proposal, hypothesis=hypothesis, proposer=NAME)


def distributions(space: SearchSpace) -> dict[str, "BaseDistribution"]:
    """The sampler's view of each knob in ``space``: the choices, the exponent for sizes (powers of two),
    a log scale for wide positive ranges and a linear one for fractions."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    found: dict[str, BaseDistribution] = {}
    for name, allowed in sorted(space.ranges.items()):
        knob = KNOB[name]
        lo = knob.lo if allowed.lo is None else allowed.lo
        hi = knob.hi if allowed.hi is None else allowed.hi
        if allowed.choices:
            found[name] = CategoricalDistribution(allowed.choices)
        elif name in DOUBLING_KNOBS and lo > 0:  # searched as the power of two: an ordered scale, not a set
            found[name] = IntDistribution(math.ceil(math.log2(lo)), math.floor(math.log2(hi)))
        elif knob.kind is int:
            found[name] = IntDistribution(int(lo), int(hi), log=_log_scale(name, lo, hi))
        else:
            found[name] = FloatDistribution(float(lo), float(hi), log=_log_scale(name, lo, hi))
    return found


def _log_scale(name: str, lo: float, hi: float) -> bool:
    return name not in FRACTION_KNOBS and lo > 0 and hi / lo >= LOG_SPAN


def _params(config: Mapping[str, Value], space: Mapping[str, "BaseDistribution"]) -> dict[str, Value] | None:
    """``config``'s values of the space's knobs as the sampler sees them, or None when one lies outside."""
    params = {name: _exponent(config[name]) if _as_exponent(name, space) else config[name] for name in space}
    for name, distribution in space.items():
        try:
            inside = params[name] is not None and distribution._contains(distribution.to_internal_repr(params[name]))
        except (ValueError, TypeError):  # a value of another type than the distribution's
            inside = False
        if not inside:
            return None
    return params


def _values(params: Mapping[str, Value], space: Mapping[str, "BaseDistribution"]) -> dict[str, Value]:
    """The knob values of a point the sampler asked for."""
    return {name: 2**value if _as_exponent(name, space) else value for name, value in params.items()}


def _as_exponent(name: str, space: Mapping[str, "BaseDistribution"]) -> bool:
    return name in DOUBLING_KNOBS and not hasattr(space[name], "choices")


def _exponent(value: Value) -> int | None:
    """log2 of a power of two; None for anything else."""
    return value.bit_length() - 1 if type(value) is int and value > 0 and value & (value - 1) == 0 else None


def _finished_trials(space: Mapping[str, "BaseDistribution"], ctx: AgentContext) -> list["FrozenTrial"]:
    """Every tried config inside the space as a finished trial."""
    from optuna.trial import create_trial

    ok = [o.val_bpb for o in ctx.observations if o.val_bpb is not None]
    worst = max(
        ok, default=None
    )  # a failed config counts as bad as the worst result: avoided, without bending the model
    trials = []
    for observation in ctx.observations:
        params = _params(observation.config, space)
        value = observation.val_bpb if observation.val_bpb is not None else worst
        if params is not None and value is not None:
            trials.append(create_trial(params=params, distributions=space, value=value))
    return trials
