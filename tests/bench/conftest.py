import pytest

from bench.hpo import DATA
from bench.hpo_landscape import Landscape


@pytest.fixture(scope="session")
def landscape() -> Landscape:
    """The surrogate of the published trials, fitted once (then cached in the user's cache directory)."""
    if not DATA.exists():
        pytest.skip(f"the published trials are absent (expected at {DATA})")
    return Landscape(DATA)
