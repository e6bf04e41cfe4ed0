import re

import pytest

from node.errors import NodeError
from node.research.space import KnobRange
from node.settings import DEFAULT_TEXT, Settings, load_settings, write_default_settings


def test_the_default_file_is_commented_and_loads_as_the_defaults(tmp_path):
    path = tmp_path / "config.toml"
    assert write_default_settings(path)
    assert "#" in path.read_text()
    assert load_settings(path) == Settings()


def test_an_existing_file_is_never_overwritten(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('device = "cpu"\n')
    assert not write_default_settings(path)
    assert load_settings(path).device == "cpu"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[work", "unreadable"),
        ("devise = 'cpu'", "unknown key devise"),
        ("device = 3", "device must be a str"),
        ("[work]\nnoise = -1", "work.noise must be a non-negative number"),
        ("[llm]\nmodle = 'x'", "unknown key llm.modle"),
        ("work = 3", "work must be a table"),
        ("[search]\ndeph = [4, 24]", "search: unknown knob 'deph'"),
        ("[search]\ndepth = [24, 4]", "search.depth: lo 24 is above hi 4"),
        ("search = 3", "search must be a table"),
    ],
)
def test_a_bad_file_gives_one_line_naming_the_file_and_key(tmp_path, text, words):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(NodeError) as err:
        load_settings(path)
    assert str(path) in str(err.value) and words in str(err.value) and "\n" not in str(err.value)
    assert path.read_text() == text


def test_a_file_from_before_re_runs_were_chosen_by_value_of_information_still_loads(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[work]\nverify = 3.0\nexplore = 2.0\n")
    assert load_settings(path).work.explore == 2.0


def test_the_search_table_restricts_the_knobs_and_the_commented_example_loads(tmp_path):
    path = tmp_path / "config.toml"
    assert not load_settings(path).search.restricted
    example = DEFAULT_TEXT[DEFAULT_TEXT.index("[search]") :]
    path.write_text(re.sub(r"^# (\w+ = )", r"\1", example, flags=re.MULTILINE))  # uncomment the knob lines
    search = load_settings(path).search
    assert search.ranges["depth"] == KnobRange(lo=4, hi=24)
    assert search.ranges["head_dim"].choices == (64, 128)
    assert search.ranges["window_pattern"].choices == ("SSSL", "SSLL", "LLLL")
