"""The built-in proposer: local search around the best config, no LLM needed.

Moves, drawn at random: change one knob of the best config, change two, recombine the diffs of the
top verified configs, or adopt a peer's open hypothesis. Values come from per-knob grids (log-scale
multipliers for rates and scales, small steps for integers, the other choices for enums), so the
same config tends to come up again and is recognised as tried. A draw that breaks the cross-knob
rules is repaired where a coupled change makes sense (halving device_batch_size to keep the batch
divisible), else discarded. When random draws keep hitting tried configs, a sweep over every
single and pair change decides; only if all of those are taken is the space called exhausted.
"""

import logging
import random
from collections.abc import Iterator, Mapping
from itertools import combinations

from node.research.agent import AgentContext, OpenHypothesis, Proposal, ProposerExhausted, clean_hypothesis
from node.research.space import EVERY_KNOB, SearchSpace
from protocol.config import KNOB, KNOBS, Config, Knob, Value, check_config, config_hash, diff_between
from protocol.errors import ConfigError

log = logging.getLogger("arnode.agent")

NAME = "builtin"
RANDOM_DRAWS = 64
MOVE_WEIGHTS = {"one": 0.45, "two": 0.15, "extend": 0.2, "recombine": 0.15, "hypothesis": 0.05}
DONORS = 8  # how many top verified configs recombination draws from

LOG_STEPS = (0.5, 0.7, 1.4, 2.0)  # multipliers for rates, scales and other positive floats
TIMESCALE_STEPS = (0.5, 2.0)  # multipliers on 1 - x: momentum and betas are averaging timescales
FRACTION_STEPS = (-0.2, -0.1, -0.05, 0.05, 0.1, 0.2)
SMALL_INT_STEPS = (-2, -1, 1, 2)
LARGE_INT_STEPS = (0.5, 0.75, 1.25, 2.0)
TIMESCALE_KNOBS = frozenset({"adam_beta1", "adam_beta2", "muon_momentum"})
FRACTION_KNOBS = frozenset({"warmup_ratio", "warmdown_ratio", "final_lr_frac"})
DOUBLING_KNOBS = frozenset({"seq_len", "device_batch_size", "total_batch_tokens", "head_dim", "kv_head_ratio"})
WINDOW_PATTERNS = ("L", "SL", "SSL", "SSSL", "SSSSL", "SSSSSSSL")


class BuiltinProposer:
    """Deterministic given the context and the random generator; never proposes a tried config."""

    name = NAME

    def propose(self, ctx: AgentContext, rng: random.Random) -> Proposal:
        singles = single_changes(ctx.best_config, ctx.space)
        donors = _donor_diffs(ctx)
        adoptable = [h for h in ctx.hypotheses if h.parent == ctx.best_hash]
        extension = extend(ctx.best_config, ctx.parent_config) if ctx.parent_config else None
        moves = {
            "extend": lambda: extension,
            "one": lambda: (rng.choice(singles), ""),
            "two": lambda: _merge(*rng.sample(singles, 2)),
            "recombine": lambda: _recombine(rng, ctx.best_config, donors),
            "hypothesis": lambda: _adopt(rng.choice(adoptable)),
        }
        possible = {
            "one": len(singles) >= 1,
            "two": len(singles) >= 2,
            "extend": extension,
            "recombine": donors,
            "hypothesis": adoptable,
        }
        names = [name for name in MOVE_WEIGHTS if possible[name]]
        for _ in range(RANDOM_DRAWS if names else 0):
            move = rng.choices(names, [MOVE_WEIGHTS[name] for name in names])[0]
            proposal = self.accept(ctx, moves[move]())
            if proposal:
                return proposal
        log.info(
            "random moves around %s all hit tried configs; sweeping every single and pair change", ctx.best_hash[:12]
        )
        for change in _sweep(singles):
            proposal = self.accept(ctx, change)
            if proposal:
                return proposal
        within = " within the search space of config.toml" if ctx.space.restricted else ""
        raise ProposerExhausted(
            f"every single and pair change of config {ctx.best_hash[:12]}{within} is tried or claimed"
        )

    def accept(self, ctx: AgentContext, change: tuple[Config, str] | None) -> Proposal | None:
        """The proposal for ``change`` if it is valid, within the search space, changes something and is untried."""
        if change is None:
            return None
        diff, why = change
        config = _valid(ctx.best_config, diff)
        if config is None or not ctx.space.allows(config, ctx.best_config):
            return None
        diff = diff_between(ctx.best_config, config)
        digest = config_hash(config)
        if not diff or digest in ctx.tried:
            return None
        return Proposal(diff, config, digest, clean_hypothesis(why or _describe(ctx.best_config, diff)), NAME)


def single_changes(config: Mapping[str, Value], space: SearchSpace = EVERY_KNOB) -> list[Config]:
    """Every valid one-knob change of ``config`` on the grids, with coupled repairs, within ``space``
    (default: every knob); seed excluded."""
    changes = []
    for knob in KNOBS:
        if not knob.hashed or not space.allows_knob(knob.name):
            continue
        for value in knob_steps(knob, config[knob.name], space):
            diff = _repair(config, {knob.name: value})
            changed = _valid(config, diff)
            if changed is not None and space.allows(changed, config):
                changes.append(diff)
    return changes


def knob_steps(knob: Knob, value: Value, space: SearchSpace = EVERY_KNOB) -> list[Value]:
    """Neighbouring values of one knob on its grid (or the space's choices for it), within its bounds and
    the space's range, without ``value`` itself."""
    if knob.kind is bool:
        candidates = [not value]
    elif knob.choices:
        candidates = [choice for choice in knob.choices if choice != value]
    elif knob.name == "window_pattern":
        candidates = list(WINDOW_PATTERNS)
    elif knob.kind is int:
        candidates = _int_steps(knob, value)
    elif knob.kind is float:
        candidates = _float_steps(knob, value)
    else:
        candidates = []
    steps = []
    for candidate in space.values(knob, candidates):
        try:
            checked = knob.check(candidate)
        except ConfigError:
            continue
        if checked != value and checked not in steps:
            steps.append(checked)
    return steps


def _int_steps(knob: Knob, value: int) -> list[int]:
    if knob.name in DOUBLING_KNOBS:
        return [value // 2, value * 2] if value % 2 == 0 else [value * 2]
    if value < 16:
        return [value + step for step in SMALL_INT_STEPS]
    unit = knob.multiple_of
    return [round(value * factor / unit) * unit for factor in LARGE_INT_STEPS]


def _float_steps(knob: Knob, value: float) -> list[float]:
    if knob.name in FRACTION_KNOBS:
        return [round(value + step, 3) for step in FRACTION_STEPS]
    if knob.name in TIMESCALE_KNOBS:
        return [_tidy(1 - (1 - value) * factor) for factor in TIMESCALE_STEPS]
    if value == 0:  # a disabled scale: switch it on small
        return [_tidy(knob.hi / 100), _tidy(knob.hi / 10)]
    return [_tidy(value * factor) for factor in LOG_STEPS]


def _tidy(value: float) -> float:
    """Three significant digits, so repeated moves land on the same grid points."""
    return float(f"{value:.3g}")


def _repair(config: Mapping[str, Value], diff: Config) -> Config:
    """Halve device_batch_size until the batch divides, unless the change was to that knob itself."""
    if "device_batch_size" in diff:
        return diff
    merged = {**config, **diff}
    rows, seq_len, total = merged["device_batch_size"], merged["seq_len"], merged["total_batch_tokens"]
    while rows > 1 and total % (rows * seq_len):
        rows //= 2
    return diff if rows == merged["device_batch_size"] else {**diff, "device_batch_size": rows}


def _valid(config: Mapping[str, Value], diff: Mapping[str, Value]) -> Config | None:
    if any(not KNOB[name].hashed for name in diff):
        return None
    try:
        return check_config({**config, **diff})
    except ConfigError:
        return None


def _merge(first: Config, second: Config) -> tuple[Config, str] | None:
    """Two changes at once, if they touch different knobs."""
    if set(first) & set(second):
        return None
    return {**first, **second}, ""


def _sweep(singles: list[Config]) -> Iterator[tuple[Config, str] | None]:
    for diff in singles:
        yield diff, ""
    for first, second in combinations(singles, 2):
        yield _merge(first, second)


def extend(best: Mapping[str, Value], parent: Mapping[str, Value]) -> tuple[Config, str] | None:
    """The change that made the best config, one more step the same way (pattern search)."""
    diff: Config = {}
    for name in diff_between(parent, best):
        old, new = parent[name], best[name]
        if KNOB[name].kind is int and name not in DOUBLING_KNOBS:
            diff[name] = new + (new - old)
        elif KNOB[name].kind is int and old > 0 and new % old == 0:
            diff[name] = new * (new // old)
        elif KNOB[name].kind is int and new > 0 and old % new == 0:
            diff[name] = new // (old // new)
        elif name in FRACTION_KNOBS:
            diff[name] = round(new + (new - old), 3)
        elif name in TIMESCALE_KNOBS and old < 1:
            diff[name] = _tidy(1 - (1 - new) ** 2 / (1 - old))
        elif KNOB[name].kind is float and old > 0:
            diff[name] = _tidy(new * new / old)
    if not diff:
        return None
    diff = _repair(best, diff)
    return diff, f"{NAME}: push further the change that made the best config: {_format(diff)}"


def _donor_diffs(ctx: AgentContext) -> list[tuple[str, Config]]:
    """Diffs of the top verified configs other than the best, config knobs only."""
    donors = []
    for stats in ctx.leaderboard:
        if stats.verified and stats.config != ctx.best_hash and not stats.is_default:
            diff = {name: value for name, value in stats.diff.items() if name in KNOB and KNOB[name].hashed}
            if diff:
                donors.append((stats.config, diff))
    return donors[:DONORS]


def _recombine(rng: random.Random, base: Mapping[str, Value], donors: list[tuple[str, Config]]) -> tuple[Config, str]:
    chosen = rng.sample(donors, min(2, len(donors)))
    diff: Config = {}
    for _, donor_diff in chosen:
        diff.update(donor_diff)
    diff = _repair(base, diff)
    names = " and ".join(config[:12] for config, _ in chosen)
    return diff, f"{NAME}: recombine the diffs of {names} on the best config: {_format(diff)}"


def _adopt(hypothesis: OpenHypothesis) -> tuple[Config, str]:
    return dict(hypothesis.diff), f"peer hypothesis from {hypothesis.author[:16]}: {hypothesis.rationale}"


def _describe(base: Mapping[str, Value], diff: Mapping[str, Value]) -> str:
    return f"{NAME}: {changes_in_words(base, diff)}"


def changes_in_words(base: Mapping[str, Value], diff: Mapping[str, Value]) -> str:
    """``diff`` against ``base`` for a hypothesis, e.g. 'depth 4 -> 6, matrix_lr 0.04 -> 0.05'."""
    return ", ".join(f"{name} {base[name]} -> {value}" for name, value in diff.items())


def _format(diff: Mapping[str, Value]) -> str:
    return ", ".join(f"{name}={value}" for name, value in diff.items())
