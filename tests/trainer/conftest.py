"""Shared pieces for trainer tests: a tiny config and spec files on a session-wide token cache."""

import json
from pathlib import Path

import pytest

from protocol.config import default_config
from trainer.spec import build_spec, track_for

# Small enough for seconds on two CPU cores, big enough to learn Shakespeare's unigrams and more.
TINY = {
    "depth": 2,
    "aspect_ratio": 32,
    "head_dim": 32,
    "seq_len": 128,
    "device_batch_size": 8,
    "total_batch_tokens": 2048,
    "matrix_lr": 0.08,
    "unembedding_lr": 0.02,
}


def tiny_config(**changes: object) -> dict:
    return {**default_config("small"), **TINY, **changes}


@pytest.fixture
def write_spec(tmp_path: Path, cache_dir: Path):
    """Write a spec for ``config`` and a budget to a file; return its path."""

    def write(config: dict, budget_kind: str = "steps", budget: int = 30, **fields: object) -> Path:
        track = track_for("cpu", "shakespeare", budget_kind, budget)
        spec = build_spec(config, track, "cpu", tmp_path / "data", cache_dir)
        spec.update(fields)
        path = tmp_path / "spec.json"
        path.write_text(json.dumps(spec))
        return path

    return write
