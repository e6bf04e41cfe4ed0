import pytest

from node.research.space import KnobRange, SearchSpace
from protocol.config import KNOB, default_config
from protocol.errors import ConfigError

# the benchmark's space: the knobs autoresearch tunes, within ranges a 5-minute GPU run can take
BENCHMARK = {
    "depth": [4, 24],
    "aspect_ratio": [32, 128],
    "head_dim": [64, 256],
    "device_batch_size": [32, 256],
    "total_batch_tokens": [65536, 2097152],
    "embedding_lr": [0.01, 2.0],
    "unembedding_lr": [0.0005, 0.05],
    "matrix_lr": [0.005, 0.2],
    "scalar_lr": [0.05, 2.0],
    "weight_decay": [0, 0.5],
    "warmup_ratio": [0, 0.3],
    "warmdown_ratio": [0.1, 0.8],
    "final_lr_frac": [0, 0.2],
    "window_pattern": ["SSSL", "SSLL", "SLSL", "LLLL", "SSSS", "LSSL"],
}


def test_the_benchmark_table_parses_to_bounds_for_numbers_and_choices_for_strings():
    space = SearchSpace.parse(BENCHMARK)
    assert space.restricted and set(space.ranges) == set(BENCHMARK)
    assert space.ranges["depth"] == KnobRange(lo=4, hi=24)
    assert space.ranges["window_pattern"].choices == ("SSSL", "SSLL", "SLSL", "LLLL", "SSSS", "LSSL")


def test_an_explicit_set_of_numbers_is_coerced_to_the_knob_type():
    space = SearchSpace.parse({"head_dim": {"choices": [64, 128.0]}, "matrix_lr": {"choices": [1, 0.5]}})
    assert space.ranges["head_dim"].choices == (64, 128)
    assert space.ranges["matrix_lr"].choices == (1.0, 0.5)


def test_an_empty_table_is_every_knob_within_its_own_bounds():
    space = SearchSpace.parse({})
    assert not space.restricted and space == SearchSpace()
    assert all(space.allows_knob(name) for name in KNOB)
    base = default_config("gpu")
    assert space.allows({**base, "depth": 64, "activation": "gelu"}, base)


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"deph": [4, 24]}, "search: unknown knob 'deph'"),
        ({"seed": [0, 10]}, "search.seed: chosen per run"),
        ({"depth": [0, 24]}, "search.depth: [0, 24] is outside the knob's own [1, 64]"),
        ({"depth": [24, 4]}, "search.depth: lo 24 is above hi 4"),
        ({"depth": ["4", "24"]}, "search.depth: the bounds must be numbers"),
        ({"depth": [True, 24]}, "search.depth: the bounds must be numbers"),
        ({"depth": [4, 8, 16]}, "search.depth: expected [lo, hi] or {choices = [...]}"),
        ({"depth": 8}, "search.depth: expected [lo, hi] or {choices = [...]}"),
        ({"head_dim": {"choices": [60]}}, "search.head_dim: 60 is not a multiple of 8"),
        ({"activation": ["relu2", "tanh"]}, "search.activation: 'tanh' is not one of"),
        ({"window_pattern": ["SSXL"]}, "search.window_pattern: 'SSXL' does not match"),
        ({"window_pattern": []}, "search.window_pattern: the choices must be a non-empty list"),
        ({"value_embeds": True}, "search.value_embeds: expected a list of choices"),
        ({"value_embeds": ["yes"]}, "search.value_embeds: expected bool"),
    ],
)
def test_a_bad_table_gives_one_line_naming_the_knob(table, words):
    with pytest.raises(ConfigError) as err:
        SearchSpace.parse(table)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_allows_only_changes_to_listed_knobs_within_their_ranges():
    space, base = SearchSpace.parse(BENCHMARK), default_config("gpu")
    assert space.allows(base, base)
    assert space.allows({**base, "depth": 24, "window_pattern": "LLLL", "weight_decay": 0}, base)
    assert not space.allows({**base, "depth": 25}, base)
    assert not space.allows({**base, "window_pattern": "L"}, base)
    assert not space.allows({**base, "activation": "gelu"}, base)  # not listed: keeps the base value
    assert space.allows({**base, "seed": 7}, base)  # a per-run setting, not a change of config


def test_a_knob_left_at_a_base_value_outside_its_range_does_not_block_other_changes():
    space = SearchSpace.parse({"depth": [4, 6], "matrix_lr": [0.01, 0.1]})
    base = default_config("gpu")  # depth 8
    assert space.allows({**base, "matrix_lr": 0.05}, base)
    assert space.allows({**base, "depth": 6}, base) and not space.allows({**base, "depth": 10}, base)


def test_values_filter_a_grid_to_the_range_and_choices_replace_it():
    space = SearchSpace.parse({"depth": [4, 24], "window_pattern": ["SSLL", "LLLL"]})
    assert space.values(KNOB["depth"], [2, 6, 16, 32]) == [6, 16]
    assert space.values(KNOB["window_pattern"], ["L", "SL"]) == ["SSLL", "LLLL"]
    assert space.values(KNOB["matrix_lr"], [0.02, 0.08]) == []
    assert SearchSpace().values(KNOB["matrix_lr"], [0.02, 0.08]) == [0.02, 0.08]


def test_describe_names_each_knob_and_its_values():
    space = SearchSpace.parse({"total_batch_tokens": [65536, 2097152], "value_embeds": [False]})
    assert space.describe() == ["total_batch_tokens: 65536 to 2097152", "value_embeds: one of false"]
