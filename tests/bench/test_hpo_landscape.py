"""The HPO surrogate landscape and the optuna baselines raced on it, fitted on the published trials."""

import json

import numpy as np
import pytest

from bench.hpo import DATA
from bench.hpo_baselines import race_baseline
from bench.hpo_landscape import DATA_NAMES, EXCLUDED_METHOD, default_params, in_box

SIGMA = 0.0007  # the default config's run-to-run sd in the data
DEFAULT_MEAN = 0.992  # the data's mean over the default's 44 runs


def test_the_box_accepts_the_default_and_rejects_what_lies_outside():
    params = default_params()
    assert in_box(params)
    for name, value in [
        ("depth", 25),
        ("depth", 8.5),
        ("head_dim", 96),
        ("embedding_lr", 2.5),
        ("warmdown_ratio", 0.05),
        ("window_pattern", "SLLX"),
    ]:
        assert not in_box(params | {name: value}), name
    assert not in_box({k: v for k, v in params.items() if k != "depth"})
    # the batch rule: a step must hold at least one device batch of 2048-token sequences
    assert not in_box(params | {"device_batch_size": 256, "total_batch_tokens": 262144})
    assert in_box(params | {"device_batch_size": 256, "total_batch_tokens": 524288})


def test_the_default_is_the_first_trial_of_every_method(landscape):
    data = json.loads(DATA.read_text())
    for method, seeds in data.items():
        if method == EXCLUDED_METHOD:
            continue
        for runs in seeds.values():
            first = {name: runs[0][DATA_NAMES.get(name, name.upper())] for name in default_params()}
            assert first == default_params(), method


def test_the_default_measures_near_its_published_mean(landscape):
    rng = np.random.default_rng(0)
    runs = [landscape.measure(default_params(), rng, SIGMA) for _ in range(50)]
    values = [run.val_bpb for run in runs if run.val_bpb is not None]
    assert len(values) >= 48 and landscape.p_fail(default_params()) < 0.05
    assert abs(np.mean(values) - DEFAULT_MEAN) < 0.002
    assert all(run.seconds == 300.0 for run in runs if run.val_bpb is not None)


def test_a_huge_model_on_a_huge_device_batch_fails_fast(landscape):
    # every run in the data with depth >= 20 and aspect ratio >= 100 failed (out of memory)
    huge = default_params() | {"depth": 24, "aspect_ratio": 128, "device_batch_size": 256, "total_batch_tokens": 524288}
    assert landscape.p_fail(huge) > 0.9
    rng = np.random.default_rng(0)
    runs = [landscape.measure(huge, rng, SIGMA) for _ in range(20)]
    assert sum(run.val_bpb is None for run in runs) >= 17
    assert all(run.seconds == landscape.fail_seconds < 60 for run in runs if run.val_bpb is None)


def test_batch_predictions_match_single_ones_and_validation_is_stated(landscape):
    configs = [default_params(), default_params() | {"depth": 12, "matrix_lr": 0.02}]
    assert np.allclose(landscape.true_bpb_many(configs), [landscape.true_bpb(c) for c in configs])
    assert np.allclose(landscape.p_fail_many(configs), [landscape.p_fail(c) for c in configs])
    assert landscape.best_known() < landscape.true_bpb(default_params())
    validation = landscape.validation()
    assert validation.failure_auc > 0.95 and "AUC" in validation.report()


@pytest.mark.parametrize("method", ["random", "tpe", "cmaes"])
def test_a_baseline_race_is_deterministic_and_within_budget(landscape, method):
    first, again = (race_baseline(method, landscape, SIGMA, gpu_hours=1.0, workers=2, seed=3) for _ in range(2))
    assert first == again
    assert first.runs and first.runs[-1].gpu_hours <= 1.0
    assert all(in_box(run.params) for run in first.runs)
    assert any(run.params == default_params() for run in first.runs)  # every search starts from the default
    other = race_baseline(method, landscape, SIGMA, gpu_hours=1.0, workers=2, seed=4)
    assert other != first
    handed = first.handed(1.0)
    assert handed is not None and handed.observed == min(r.observed for r in first.runs if r.observed is not None)
