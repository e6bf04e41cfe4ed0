"""The trainer's result: one typed schema, written as RESULT.json by the trainer and read back by the node.

Importable without torch, so the node can read what the trainer wrote. A signed result record
takes its scores and every one of its metrics from here (``metrics`` is built from the field of
the same name), and ``from_json`` refuses a file with a missing, unknown or mistyped field: a
renamed key fails loudly instead of becoming nil in a signed record.
"""

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from protocol.metrics import METRICS, OUTCOMES, UBPB

# How the trainer itself can end a run: 'killed' when it was told to stop (SIGTERM) and still wrote
# what it had measured. The node adds 'timeout' from outside, and 'killed' for a trainer that wrote nothing.
TRAINER_OUTCOMES = ("ok", "crash", "diverged", "oom", "killed")
assert set(TRAINER_OUTCOMES) <= set(OUTCOMES)


class ResultError(ValueError):
    """RESULT.json does not follow the schema; ``str(err)`` is one line."""


@dataclass(frozen=True)
class TrainResult:
    outcome: str
    error: str
    val_bpb: float | None  # the frozen eval's bits per byte; set exactly when the outcome is ok
    test_bpb: float | None  # the holdout's: for people only, never read by the acceptance rule
    # the record's metrics, named as protocol.records.METRICS
    steps: int
    tokens: int
    train_ms: int
    total_ms: int
    tokens_per_s: int
    mfu_ppm: int | None  # None where the device's peak is unknown
    peak_mem_mb: int | None
    params: int
    # for people and benchmarks: not signed
    last_loss: float | None  # the training loss of the last step; None before the first one
    startup_ms: int  # process start to the first training step
    compile_ms: int  # what the untimed warm-up steps took beyond the steady step time
    eval_ms: int  # scoring the eval and holdout rows
    depth: int
    device_batch_size: int  # rows per forward pass, after fitting the device's memory
    device: str
    hardware: str | None  # the track hardware class of the device the run measured; None if none opened
    torch: str
    code: str

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, field.type) or (isinstance(value, bool) and field.type is not bool):
                raise ResultError(f"result field {field.name} is {type(value).__name__}, expected {field.type}")
        if self.outcome not in TRAINER_OUTCOMES:
            raise ResultError(f"result outcome {self.outcome!r:.40} is not one of {', '.join(TRAINER_OUTCOMES)}")
        if (self.outcome == "ok") != (self.val_bpb is not None):
            raise ResultError("result val_bpb is set exactly when the outcome is ok")
        for name in ("val_bpb", "test_bpb"):
            score = getattr(self, name)
            if score is not None and not 0 < score < math.inf:
                raise ResultError(f"result {name} {score} is not a positive finite number")

    @property
    def val_bpb_ubpb(self) -> int | None:
        return _ubpb(self.val_bpb)

    @property
    def test_bpb_ubpb(self) -> int | None:
        return _ubpb(self.test_bpb)

    def metrics(self) -> dict[str, int | None]:
        """The record's metrics, each from the field of its name."""
        return {name: getattr(self, name) for name in METRICS}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Any) -> "TrainResult":
        """Read a decoded RESULT.json; ResultError names the first thing wrong."""
        if not isinstance(raw, dict):
            raise ResultError(f"a result is a JSON object, not {type(raw).__name__}")
        names = {field.name for field in fields(cls)}
        if raw.keys() != names:
            missing, unknown = sorted(names - raw.keys()), sorted(raw.keys() - names)
            raise ResultError(f"result fields wrong: missing {missing or 'none'}, unknown {unknown or 'none'}")
        return cls(**raw)


def _ubpb(bpb: float | None) -> int | None:
    return round(bpb * UBPB) if bpb is not None else None


# every metric a record carries is a field here: checked once, at import
assert set(METRICS) <= {field.name for field in fields(TrainResult)}, "a record metric has no result field"
