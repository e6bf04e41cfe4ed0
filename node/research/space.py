"""The search space the user chooses: which knobs the proposers may change, and the values each may take.

Read from the ``[search]`` table of config.toml (see node/settings.py). An empty space is every knob
within its own bounds. A restricted space lists knobs: any other knob keeps the value of the config
explored from, and a listed knob may move only within its range, or among its choices.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol.config import KNOB, Knob, Value
from protocol.errors import ConfigError


@dataclass(frozen=True)
class KnobRange:
    """What one knob may take in the search: inclusive numeric bounds, or an explicit set of values."""

    lo: float | None = None
    hi: float | None = None
    choices: tuple[Value, ...] = ()

    def allows(self, value: Value) -> bool:
        if self.choices:
            return value in self.choices
        return type(value) in (int, float) and self.lo <= value <= self.hi


@dataclass(frozen=True)
class SearchSpace:
    ranges: Mapping[str, KnobRange] = field(default_factory=dict)  # empty: every knob, within its own bounds

    @classmethod
    def parse(cls, table: Mapping[str, Any]) -> "SearchSpace":
        """The space in a ``[search]`` table: ``knob = [lo, hi]`` for numbers, ``knob = [choices]`` for
        strings and booleans, ``knob = {choices = [...]}`` for any knob; ConfigError names the bad knob."""
        if not isinstance(table, Mapping):
            raise ConfigError("search must be a table of knob names")
        return cls({name: _parse_range(name, spec) for name, spec in table.items()})

    @property
    def restricted(self) -> bool:
        return bool(self.ranges)

    def allows_knob(self, name: str) -> bool:
        return not self.restricted or name in self.ranges

    def allows(self, config: Mapping[str, Value], base: Mapping[str, Value]) -> bool:
        """Whether every knob of ``config`` that differs from ``base`` is in the space and within its range."""
        if not self.restricted:
            return True
        changed = [name for name, knob in KNOB.items() if knob.hashed and config[name] != base[name]]
        return all(name in self.ranges and self.ranges[name].allows(config[name]) for name in changed)

    def values(self, knob: Knob, candidates: list[Value]) -> list[Value]:
        """The values of ``knob`` worth trying: the space's choices where it lists them, else the
        ``candidates`` (a proposer's grid) within the knob's range."""
        if not self.restricted:
            return candidates
        if knob.name not in self.ranges:
            return []
        allowed = self.ranges[knob.name]
        return list(allowed.choices) or [value for value in candidates if allowed.allows(value)]

    def describe(self) -> list[str]:
        """One line a knob, e.g. 'depth: 4 to 24', for people and the LLM prompt."""
        return [f"{name}: {_range_words(allowed)}" for name, allowed in self.ranges.items()]


EVERY_KNOB = SearchSpace()  # today's behaviour: every knob, within its own bounds


def _range_words(allowed: KnobRange) -> str:
    if allowed.choices:
        return "one of " + ", ".join(json.dumps(choice) for choice in allowed.choices)
    return f"{json.dumps(allowed.lo)} to {json.dumps(allowed.hi)}"


def _parse_range(name: str, spec: Any) -> KnobRange:
    if name not in KNOB:
        raise ConfigError(f"search: unknown knob {name!r:.40}")
    knob = KNOB[name]
    if not knob.hashed:
        raise ConfigError(f"search.{name}: chosen per run, not searched; leave it out")
    numeric = knob.kind in (int, float)
    if isinstance(spec, Mapping) and set(spec) == {"choices"}:
        return KnobRange(choices=_choices(knob, spec["choices"]))
    if isinstance(spec, list) and not numeric:
        return KnobRange(choices=_choices(knob, spec))
    if isinstance(spec, list) and len(spec) == 2:
        return _bounds(knob, *spec)
    form = "[lo, hi] or {choices = [...]}" if numeric else "a list of choices"
    raise ConfigError(f"search.{name}: expected {form}, not {spec!r:.60}")


def _choices(knob: Knob, values: Any) -> tuple[Value, ...]:
    if not isinstance(values, list) or not values:
        raise ConfigError(f"search.{knob.name}: the choices must be a non-empty list")
    try:
        return tuple(dict.fromkeys(knob.check(value, strict=False) for value in values))
    except ConfigError as err:
        raise ConfigError(f"search.{err}") from None


def _bounds(knob: Knob, lo: Any, hi: Any) -> KnobRange:
    if any(type(bound) not in (int, float) for bound in (lo, hi)):
        raise ConfigError(f"search.{knob.name}: the bounds must be numbers, not {lo!r:.20} and {hi!r:.20}")
    if lo > hi:
        raise ConfigError(f"search.{knob.name}: lo {lo} is above hi {hi}")
    if lo < knob.lo or hi > knob.hi:
        raise ConfigError(f"search.{knob.name}: [{lo}, {hi}] is outside the knob's own [{knob.lo}, {knob.hi}]")
    return KnobRange(lo=lo, hi=hi)
