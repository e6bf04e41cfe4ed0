"""One experiment as a child process: ``python -m trainer``, a hard deadline, and a log we keep.

Whatever happens in training (a crash, NaN, OOM, a hang), the daemon only sees an outcome here:
the child's RESULT.json when it wrote one, otherwise what we observed from outside.
"""

import contextlib
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from protocol.metrics import ERROR_CHARS
from trainer.result import ResultError, TrainResult

log = logging.getLogger("arnode.runner")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGKILL)
STOP_GRACE_S = 5  # how long each of STOP_SIGNALS is given to end the child
STEP_LINE = re.compile(r"^step \d+ \(\s*([\d.]+)%\)")  # the trainer's progress line: "step 00042 ( 16.7%) | ..."


@dataclass(frozen=True)
class TrainerOutcome:
    outcome: str  # one of protocol.records.OUTCOMES
    result: TrainResult | None  # the child's RESULT.json, when it wrote a valid one
    error: str
    log_digest: str  # SHA-256 hex of the full log
    wall_s: float


class TrainerRun:
    """Runs one spec in ``run_dir`` (spec.json, log.txt, result.json); ``stop()`` ends it as 'killed'."""

    def __init__(self, spec: dict[str, Any], run_dir: Path, timeout_s: float, env: dict[str, str] | None = None):
        self.spec, self.run_dir, self.timeout_s, self.env = spec, run_dir, timeout_s, env
        self.started = time.monotonic()
        self.last_line = ""
        self._progress: list[tuple[float, float]] = []  # (monotonic time, budget fraction): first and latest seen
        self._stop = trio.CancelScope()

    def stop(self) -> None:
        self._stop.cancel()

    async def run(self) -> TrainerOutcome:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        spec_file, result_file, log_file = (self.run_dir / name for name in ("spec.json", "result.json", "log.txt"))
        spec_file.write_text(json.dumps(self.spec, indent=1))
        command = [sys.executable, "-m", "trainer", "--spec", str(spec_file), "--out", str(result_file)]
        with self._stop, trio.move_on_after(self.timeout_s) as deadline, log_file.open("wb") as sink:
            returncode = await self._run_child(command, sink)
        if self._stop.cancelled_caught:
            return self._finish("killed", None, "stopped by the node before the run finished", log_file)
        if deadline.cancelled_caught:
            return self._finish("timeout", None, f"killed after the hard limit of {self.timeout_s:.0f} s", log_file)
        try:
            result = _read_result(result_file)
        except ResultError as err:
            return self._finish("crash", None, f"the trainer's result is unusable: {err}", log_file)
        if result is None:
            if returncode < 0:  # killed from outside, e.g. by the kernel's OOM killer
                return self._finish("crash", None, f"trainer killed by {signal.Signals(-returncode).name}", log_file)
            return self._finish("crash", None, self.last_line or f"trainer exited with code {returncode}", log_file)
        return self._finish(result.outcome, result, result.error, log_file)

    async def _run_child(self, command: list[str], sink) -> int:
        process = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        try:
            buffer = b""
            while chunk := await process.stdout.receive_some(65536):
                sink.write(chunk)
                buffer = (buffer + chunk)[-4096:]
                lines = [line for line in buffer.decode("utf-8", "replace").splitlines() if line.strip()]
                self.last_line = lines[-1].strip()[:ERROR_CHARS] if lines else self.last_line
                self._note_progress(lines)
            return await process.wait()
        finally:
            with trio.move_on_after(len(STOP_SIGNALS) * STOP_GRACE_S + 1, shield=True):
                await _terminate(process)

    def _note_progress(self, lines: list[str]) -> None:
        fractions = [float(match[1]) / 100 for line in lines if (match := STEP_LINE.match(line.strip()))]
        if fractions and (not self._progress or fractions[-1] > self._progress[-1][1]):
            self._progress = [*self._progress[:1], (time.monotonic(), fractions[-1])]

    def phase(self) -> str:
        """starting (imports, data, model), training, or evaluating. The trainer prints no line when its
        budget is spent, so the end of training is its step lines' pace carried forward."""
        if not self._progress:
            return "starting"
        (first_s, first), (last_s, last) = self._progress[0], self._progress[-1]
        pace = (last - first) / (last_s - first_s) if last_s > first_s else 0.0
        spent = last + pace * (time.monotonic() - last_s)
        return "evaluating" if spent >= 1.0 else "training"

    def _finish(self, outcome: str, result: TrainResult | None, error: str, log_file: Path) -> TrainerOutcome:
        digest = hashlib.sha256(log_file.read_bytes() if log_file.exists() else b"").hexdigest()
        wall_s = time.monotonic() - self.started
        log.info("run %s: %s in %.0f s%s", self.run_dir.name, outcome, wall_s, f" ({error})" if error else "")
        return TrainerOutcome(outcome, result, _one_line(error), digest, wall_s)


async def _terminate(process: trio.Process) -> None:
    """Stop the child's whole process group (compile workers included): SIGTERM, then SIGKILL."""
    for sig in STOP_SIGNALS:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with trio.move_on_after(STOP_GRACE_S):
            await process.wait()
            return


def _read_result(path: Path) -> TrainResult | None:
    """The child's result; None when it wrote none; ResultError when what it wrote breaks the schema."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ResultError(f"cannot read {path.name}: {err.strerror}") from None
    try:
        return TrainResult.from_json(json.loads(text))
    except ValueError as err:  # JSONDecodeError and ResultError alike
        raise ResultError(str(err).splitlines()[0] if str(err) else "not JSON") from None


def _one_line(text: str) -> str:
    printable = "".join(char if char.isprintable() else " " for char in text)
    return " ".join(printable.split())[:ERROR_CHARS]
