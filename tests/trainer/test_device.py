"""How many threads the trainer trains with on a CPU: the idle cores, so a busy box is not made slower."""

import os
import subprocess
import sys

import pytest

from trainer.device import cpu_threads, idle_cores

SPIN = "import time\nend = time.time() + 30\nwhile time.time() < end: pass"


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="idle time is read from Linux's /proc/stat")
@pytest.mark.process  # busy processes beside the test
def test_cores_held_by_other_work_are_left_to_it(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(os.cpu_count() or 1)]
    try:
        assert idle_cores() < 0.75  # every core is busy
        assert cpu_threads() == 1
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
