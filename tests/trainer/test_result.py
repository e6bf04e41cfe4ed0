"""The trainer's result schema: the one contract between RESULT.json and a signed record."""

import dataclasses
import subprocess
import sys

import pytest

from protocol.metrics import METRICS, OUTCOMES
from trainer.result import TRAINER_OUTCOMES, ResultError, TrainResult


def distinct_result(**changes: object) -> TrainResult:
    """An ok result whose every number differs from every other, so a crossed wire shows."""
    numbers = {field.name: 1000 + i for i, field in enumerate(dataclasses.fields(TrainResult))}
    texts = {"outcome": "ok", "error": "", "device": "cpu", "hardware": "cpu-test-x2", "torch": "2.x", "code": "c" * 64}
    return TrainResult(**{**numbers, "val_bpb": 1.25, "test_bpb": 1.5, "last_loss": 3.5, **texts, **changes})


def test_every_metric_a_record_carries_is_a_result_field_read_by_name():
    result = distinct_result()
    assert result.metrics() == {name: getattr(result, name) for name in METRICS}
    assert None not in result.metrics().values()
    assert (result.val_bpb_ubpb, result.test_bpb_ubpb) == (1_250_000, 1_500_000)


def test_a_result_round_trips_through_json():
    result = distinct_result()
    assert TrainResult.from_json(result.to_json()) == result


def test_a_renamed_key_is_refused_in_one_line_rather_than_read_as_nil():
    raw = distinct_result().to_json()
    raw["peak_memory_mb"] = raw.pop("peak_mem_mb")
    with pytest.raises(ResultError, match=r"missing \['peak_mem_mb'\], unknown \['peak_memory_mb'\]") as caught:
        TrainResult.from_json(raw)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("steps", "30", "steps is str"),
        ("steps", True, "steps is bool"),
        ("val_bpb", None, "val_bpb is set exactly when"),
        ("test_bpb", float("nan"), "test_bpb nan is not"),
        ("outcome", "timeout", "not one of"),
    ],
)
def test_a_mistyped_or_inconsistent_field_is_refused(field, value, reason):
    with pytest.raises(ResultError, match=reason):
        TrainResult.from_json({**distinct_result().to_json(), field: value})


def test_the_trainer_ends_runs_only_in_outcomes_records_know():
    assert set(TRAINER_OUTCOMES) < set(OUTCOMES) and {"oom", "killed"} <= set(TRAINER_OUTCOMES)
    assert "timeout" not in TRAINER_OUTCOMES  # only the node, from outside, knows its deadline passed


def test_the_trainer_imports_nothing_a_bare_gpu_box_lacks():
    # the signing code's cryptography, the network stack and the LLM client stay on the node's side
    probe = "import sys, trainer.__main__, trainer.train; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    )
    assert not loaded & {"cryptography", "nacl", "libp2p", "trio", "openai", "rich"}
