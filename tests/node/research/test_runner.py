"""One experiment as the node runs it: a real trainer subprocess, its log, its progress, and a stop."""

from pathlib import Path

import pytest
import trio

from node.research.run_progress import RunProgress
from node.research.runner import TrainerOutcome, TrainerRun
from tests.trainer.conftest import TINY, tiny_config
from trainer.spec import build_spec, track_for
from trainer.train import UNTIMED_STEPS

pytestmark = pytest.mark.process  # a real trainer in another process

STARTED_WITHIN_S = 300  # a busy 2-core box takes a while to import torch and train a tokenizer


async def stop_once_timed(run: TrainerRun) -> tuple[TrainerOutcome, RunProgress, str]:
    """Stop ``run`` once it reports a step past the untimed warm-up; its outcome, the progress seen
    then and its log as it was on disk at that moment."""
    outcome: list[TrainerOutcome] = []

    async def go() -> None:
        outcome.append(await run.run())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(go)
        with trio.fail_after(STARTED_WITHIN_S):
            while (seen := run.progress()).step is None or seen.step <= UNTIMED_STEPS:
                await trio.sleep(0.2)
        log_then = (run.run_dir / "log.txt").read_text()
        run.stop()
    return outcome[0], seen, log_then


def test_a_stopped_run_keeps_what_it_measured_and_its_log_line_by_line(tmp_path: Path, cache_dir: Path):
    track = track_for("cpu", "shakespeare", "tokens", 10_000_000)  # an hour or more: only the stop ends it
    spec = build_spec(tiny_config(), track, "cpu", tmp_path / "data", cache_dir)
    run = TrainerRun(spec, tmp_path / "run", timeout_s=3600)
    outcome, seen, log_then = trio.run(stop_once_timed, run)

    assert seen.phase == "training" and 0 < seen.fraction < 0.05 and seen.left_s > 0
    assert f"step {seen.step:05d}" in log_then  # on disk while the run went on, not when it ended

    result = outcome.result
    assert outcome.outcome == "killed" and result is not None and result.outcome == "killed"
    assert result.steps >= seen.step and result.tokens == result.steps * TINY["total_batch_tokens"]
    assert result.train_ms > 0 and result.total_ms > result.train_ms and result.tokens_per_s > 0
    assert result.val_bpb is None and result.last_loss == pytest.approx(seen.loss, abs=1.0)
    assert {name for name, value in result.metrics().items() if value is None} == {"mfu_ppm"}  # no peak on a CPU
    assert outcome.error == (
        f"stopped by the node before the run finished; training loss {result.last_loss:.4f} at step {result.steps}"
    )
    log = (run.run_dir / "log.txt").read_text()
    assert log.startswith(log_then) and log.rstrip().endswith(
        "outcome:          killed\nerror:            stopped by SIGTERM"
    )
