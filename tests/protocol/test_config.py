import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.config import (
    KNOB,
    KNOBS,
    MAX_DIFF_KNOBS,
    PROFILES,
    ROOTS,
    apply,
    check_config,
    check_diff,
    config_hash,
    default_config,
    diff_between,
    model_shape,
)
from protocol.errors import ConfigError

SMALL = default_config("small")


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_default_is_a_valid_config_and_a_root(profile):
    config = default_config(profile)
    assert check_config(config) == config
    assert ROOTS[config_hash(config)] == profile


def test_an_unknown_profile_is_rejected():
    with pytest.raises(ConfigError, match="unknown profile"):
        default_config("tpu")


@pytest.mark.parametrize(
    ("diff", "reason"),
    [
        ({"learning_rate": 0.1}, "unknown knob"),
        ({"depth": "8"}, "expected int"),
        ({"depth": True}, "expected int, got bool"),
        ({"value_embeds": 1}, "expected bool"),
        ({"matrix_lr": 1}, "expected float, got int"),
        ({"depth": 8.0}, "expected int, got float"),
        ({"depth": 0}, "outside"),
        ({"depth": 65}, "outside"),
        ({"matrix_lr": 1.5}, "outside"),
        ({"matrix_lr": math.nan}, "not finite"),
        ({"matrix_lr": math.inf}, "not finite"),
        ({"head_dim": 36}, "not a multiple of 8"),
        ({"activation": "tanh"}, "not one of"),
        ({"window_pattern": "SSXL"}, "does not match"),
        ({"window_pattern": ""}, "does not match"),
        ([("depth", 8)], "a diff is a map"),
    ],
)
def test_a_bad_diff_is_rejected_with_the_reason(diff, reason):
    with pytest.raises(ConfigError, match=reason) as caught:
        check_diff(diff)
    assert "\n" not in str(caught.value)


def test_a_diff_larger_than_the_table_is_rejected():
    with pytest.raises(ConfigError, match="at most"):
        check_diff({f"knob{index}": 1 for index in range(MAX_DIFF_KNOBS + 1)})


def test_lenient_mode_coerces_whole_numbers_only_when_asked():
    assert check_diff({"matrix_lr": 1, "depth": 8.0}, strict=False) == {"matrix_lr": 1.0, "depth": 8}
    assert type(check_diff({"matrix_lr": 1}, strict=False)["matrix_lr"]) is float
    with pytest.raises(ConfigError, match="expected int"):
        check_diff({"depth": 8.5}, strict=False)
    with pytest.raises(ConfigError, match="expected int, got bool"):
        check_diff({"depth": True}, strict=False)
    with pytest.raises(ConfigError, match="outside"):
        check_diff({"depth": 100.0}, strict=False)


@pytest.mark.parametrize(
    ("diff", "reason"),
    [
        ({"total_batch_tokens": 4096 + 16}, "multiple of device_batch_size x seq_len"),
        ({"warmup_ratio": 0.6, "warmdown_ratio": 0.6}, "must not exceed 1"),
        ({"kv_head_ratio": 3}, "does not divide"),
    ],
)
def test_knobs_that_disagree_with_each_other_are_rejected(diff, reason):
    with pytest.raises(ConfigError, match=reason):
        apply(SMALL, diff)


def test_apply_changes_only_the_diffed_knobs():
    config = apply(SMALL, {"depth": 6, "matrix_lr": 0.05})
    assert diff_between(SMALL, config) == {"depth": 6, "matrix_lr": 0.05}
    assert apply(SMALL, {}) == SMALL


def test_a_config_missing_a_knob_is_rejected():
    partial = dict(SMALL)
    del partial["depth"]
    with pytest.raises(ConfigError, match="lacks depth"):
        check_config(partial)


@given(st.sampled_from([knob for knob in KNOBS if knob.kind is int and knob.hashed]), st.integers(0, 3))
def test_diff_between_then_apply_round_trips(knob, step):
    value = min(int(knob.hi), int(knob.lo) + step * knob.multiple_of)
    try:
        config = apply(SMALL, {knob.name: value})
    except ConfigError:
        return  # a cross-knob constraint refused it; that is tested above
    assert apply(SMALL, diff_between(SMALL, config)) == config


def test_config_hash_ignores_the_seed_and_insertion_order():
    reseeded = apply(SMALL, {"seed": 42})
    assert config_hash(reseeded) == config_hash(SMALL)
    assert config_hash(dict(reversed(list(SMALL.items())))) == config_hash(SMALL)
    assert config_hash(apply(SMALL, {"depth": 6})) != config_hash(SMALL)


def test_config_hash_tells_int_from_float():
    # canonical msgpack keeps the type: 0 and 0.0 must not name the same config
    assert config_hash({**SMALL, "warmup_ratio": 0}) != config_hash(SMALL)


def test_model_shape_rounds_width_up_to_whole_heads():
    shape = model_shape({**SMALL, "depth": 3, "aspect_ratio": 10, "head_dim": 16, "kv_head_ratio": 2})
    assert (shape.model_dim, shape.n_head, shape.n_kv_head) == (32, 2, 1)


def test_every_knob_default_passes_its_own_check():
    for knob in KNOBS:
        for profile in PROFILES:
            assert KNOB[knob.name].check(getattr(knob, profile)) == getattr(knob, profile)


@pytest.mark.parametrize("diff", [{"k" * 10_000: 1}, {"window_pattern": "X" * 10_000}, {"activation": "y" * 10_000}])
def test_a_long_bad_input_is_quoted_short(diff):
    with pytest.raises(ConfigError) as caught:
        check_diff(diff)
    assert len(str(caught.value)) < 120


# Hashes computed by the first release, before any later knob existed: they must never change.
FIRST_RELEASE_HASHES = {
    "5a49330cb660df7d600e694c4aa468b660649409c695221bc71d487958c32037": ("gpu", {}),
    "2782f7d5f4c6573aca9275db45e2ee37fbff4c429c6007597b8602f1e2989ff0": ("small", {}),
    "cdc090a2746c733cfae7ef7abe0a419361c2300c5e29a717ab241050fdcda955": ("small", {"depth": 6, "matrix_lr": 0.05}),
    "90627493eca727b36d79947c67eb80d6864946211175b3e8be228d8b4dda8ae3": (
        "gpu",
        {"window_pattern": "L", "value_embeds": False, "total_batch_tokens": 2**18},
    ),
}
FIRST_RELEASE_KNOBS = {
    "depth", "aspect_ratio", "head_dim", "kv_head_ratio", "window_pattern", "short_window_frac", "activation",
    "mlp_ratio", "value_embeds", "logit_softcap", "seq_len", "device_batch_size", "total_batch_tokens",
    "embedding_lr", "unembedding_lr", "matrix_lr", "scalar_lr", "adam_beta1", "adam_beta2", "weight_decay",
    "muon_momentum", "warmup_ratio", "warmdown_ratio", "final_lr_frac", "init_scale", "embed_init_std",
    "unembed_init_std", "seed",
}  # fmt: skip


@pytest.mark.parametrize(("expected", "made_of"), FIRST_RELEASE_HASHES.items())
def test_a_config_named_before_new_knobs_existed_keeps_its_hash(expected, made_of):
    profile, diff = made_of
    assert config_hash(apply(default_config(profile), diff)) == expected


def test_every_knob_added_after_the_first_release_has_a_neutral_value_both_profiles_default_to():
    later = [knob for knob in KNOBS if knob.name not in FIRST_RELEASE_KNOBS]
    assert later, "the table has grown since the first release"
    assert {knob.name for knob in KNOBS if knob.neutral is None} == FIRST_RELEASE_KNOBS
    for knob in later:
        assert knob.check(knob.neutral) == knob.gpu == knob.small == knob.neutral, knob.name


def test_a_later_knob_renames_a_config_only_when_moved_off_its_neutral_value():
    later = next(knob for knob in KNOBS if knob.neutral is not None and knob.kind is float)
    assert config_hash({**SMALL, later.name: later.neutral}) == config_hash(SMALL)
    moved = apply(SMALL, {later.name: min(later.hi, later.neutral + 0.05)})
    assert config_hash(moved) != config_hash(SMALL)


def test_a_knob_from_a_newer_arnode_is_refused_with_one_clear_line():
    with pytest.raises(ConfigError, match="unknown knob 'fancy_new_lever': from a newer arnode") as caught:
        check_diff({"fancy_new_lever": 1})
    assert "\n" not in str(caught.value)
