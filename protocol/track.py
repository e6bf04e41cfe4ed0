"""Tracks: results are comparable only among runs on the same hardware, budget, data and eval."""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocol.errors import ConfigError

BUDGET_UNITS = {"seconds": "s", "tokens": "tok", "steps": "steps"}  # steps: smoke tests only
MAX_BUDGET = 10**12
_SLUG = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")


@dataclass(frozen=True, order=True)
class Track:
    hardware: str
    budget_kind: str
    budget: int
    dataset: str
    tokenizer: str
    eval_version: int

    def __post_init__(self) -> None:
        for name in ("hardware", "dataset", "tokenizer"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _SLUG.fullmatch(value):
                raise ConfigError(f"track {name} {value!r:.40} is not a lowercase slug of at most 64 chars")
        if not isinstance(self.budget_kind, str) or self.budget_kind not in BUDGET_UNITS:
            raise ConfigError(f"track budget kind {self.budget_kind!r:.40} is not one of {', '.join(BUDGET_UNITS)}")
        for name in ("budget", "eval_version"):
            value = getattr(self, name)
            if type(value) is not int or not 0 < value <= MAX_BUDGET:
                raise ConfigError(f"track {name} must be a positive integer")

    @property
    def key(self) -> str:
        """A readable name, e.g. ``nvidia-h100-80gb-hbm3-x1/300s/climbmix/bpe8192/eval1``."""
        unit = BUDGET_UNITS[self.budget_kind]
        return f"{self.hardware}/{self.budget}{unit}/{self.dataset}/{self.tokenizer}/eval{self.eval_version}"

    def to_wire(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in self.__dataclass_fields__}

    @classmethod
    def from_wire(cls, value: Any) -> "Track":
        if not isinstance(value, Mapping) or set(value) != set(cls.__dataclass_fields__):
            raise ConfigError(f"a track has exactly the fields {', '.join(cls.__dataclass_fields__)}")
        return cls(**value)


def hardware_class(device_name: str, count: int = 1) -> str:
    """A slug for a device model and count: 'NVIDIA H100 80GB HBM3' x1 -> 'nvidia-h100-80gb-hbm3-x1'."""
    slug = re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-")[:56] or "unknown"
    return f"{slug}-x{count}"
