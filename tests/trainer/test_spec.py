import pytest

from protocol.config import default_config
from trainer.spec import DATASETS, SpecError, build_spec, check_spec, default_config_for, tokenizer_id, track_for


def valid_spec() -> dict:
    return build_spec(default_config("small"), track_for("cpu", "shakespeare", "steps", 5), "cpu", "/d", "/c")


def test_a_built_spec_passes_its_own_check():
    spec = check_spec(valid_spec())
    assert spec.track.tokenizer == tokenizer_id("shakespeare") == "bpe4096"
    assert spec.eval_split is DATASETS["shakespeare"].evals[1]


def test_tokenizer_and_profile_are_known_without_torch():
    assert tokenizer_id("climbmix") == "bpe8192"
    assert default_config_for("cpu") == default_config("small")
    assert default_config_for("cuda") == default_config("gpu")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"device": "tpu"}, "device"),
        ({"seed": 7}, "seed"),
        ({"v": 2}, "version"),
        ({"compile": "maybe"}, "compile"),
        ({"extra": 1}, "unknown"),
        ({"config": {"depth": 4}}, "lacks"),
        ({"cache_dir": ""}, "cache_dir"),
    ],
)
def test_bad_specs_fail_with_one_clear_line(change: dict, message: str):
    with pytest.raises(SpecError, match=message) as caught:
        check_spec({**valid_spec(), **change})
    assert "\n" not in str(caught.value)


def test_a_track_with_the_wrong_tokenizer_is_rejected():
    spec = valid_spec()
    spec["track"]["tokenizer"] = "bpe8192"
    with pytest.raises(SpecError, match="tokenizer"):
        check_spec(spec)


def test_an_unknown_dataset_is_rejected():
    with pytest.raises(SpecError, match="unknown dataset"):
        track_for("cpu", "wikipedia", "seconds", 300)
