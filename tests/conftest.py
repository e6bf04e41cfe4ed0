"""Fixtures shared across the test packages."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tokenizer and token cache for the whole session: each dataset's tokenizer is trained once."""
    return tmp_path_factory.mktemp("trainer-cache")
