"""A home is held by one daemon at a time, and let go however the holder ends."""

import os

import pytest

from node.errors import NodeError
from node.home import Home


def test_a_held_home_refuses_a_second_holder_naming_the_first_and_is_free_again_after(tmp_path):
    home = Home.locate(tmp_path / "node")
    refusal = f"in use by another arnode daemon \\(pid {os.getpid()}\\)"
    with home.hold(), pytest.raises(NodeError, match=refusal), home.hold():
        pass
    with home.hold():  # let go on the way out
        assert home.lock_file.read_text().strip() == str(os.getpid())
