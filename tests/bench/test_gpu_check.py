"""The GPU check's CPU form runs, so the script does not rot between GPU machines."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.process  # the trainer in another process
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)  # about a minute on two idle cores; far longer on a shared machine
def test_the_cpu_form_trains_the_default_profile_and_prints_every_figure(cache_dir):
    command = [
        sys.executable,
        "-m",
        "bench.gpu_check",
        "--device",
        "cpu",
        "--seconds",
        "20",
        "--cache-dir",
        str(cache_dir),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    for figure in ("val_bpb", "test_bpb", "tokens/s", "mfu", "peak memory", "compile s", "eval s", "experiments/hour"):
        assert f"\n{figure} " in done.stdout, figure
    assert "outcome             ok" in done.stdout and "0.9979" in done.stdout
