"""Every knob of the config space changes what the trainer does."""

import pytest

from node.builtin_proposer import knob_steps
from protocol.config import KNOBS, check_config
from protocol.errors import ConfigError
from tests.trainer.conftest import tiny_config
from trainer.spec import build_spec, check_spec, track_for
from trainer.train import Stats, run

STEPS = 3  # enough for the schedule, momentum and second-moment knobs to act


def changed(config: dict, name: str) -> dict:
    """``config`` with knob ``name`` moved to the first other value that keeps the config valid."""
    for value in knob_steps(next(k for k in KNOBS if k.name == name), config[name]):
        try:
            return check_config({**config, name: value})
        except ConfigError:
            continue
    raise AssertionError(f"no valid other value for {name}")


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    root = tmp_path_factory.mktemp("knobs")
    results: dict[tuple, float] = {}

    def val_bpb(config: dict) -> float:
        key = tuple(sorted(config.items()))
        if key not in results:
            spec = check_spec(build_spec(config, track_for("cpu", "shakespeare", "steps", STEPS), "cpu", root, root))
            stats = Stats()
            run(spec, stats, log=lambda line: None)
            results[key] = stats.val_bpb
        return results[key]

    return val_bpb


BASE = tiny_config(warmup_ratio=0.2, window_pattern="SL")  # so the warmup and window knobs have room to act


@pytest.mark.parametrize("name", [knob.name for knob in KNOBS])
def test_changing_the_knob_changes_the_result(train, name):
    assert train(changed(BASE, name)) != train(BASE)
