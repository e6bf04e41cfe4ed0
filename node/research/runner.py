"""One experiment as a child process: ``python -m trainer``, a hard deadline, and a log we keep.

Whatever happens in training (a crash, NaN, OOM, a hang), the daemon only sees an outcome here:
the child's RESULT.json when it wrote one, otherwise what we observed from outside. A run stopped
by the node or by its deadline gets SIGTERM first, so the trainer still writes what it measured,
and its log is kept to the last line.
"""

import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from node.research.run_progress import ProgressTracker, RunProgress
from protocol.metrics import ERROR_CHARS
from trainer.result import ResultError, TrainResult

log = logging.getLogger("arnode.runner")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGKILL)
STOP_GRACE_S = 5  # how long each of STOP_SIGNALS is given to end the child
MAX_LINE = 4096  # a longer line from the trainer is cut here


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
        self.tracker = ProgressTracker()
        self._partial_line = b""
        self._stop = trio.CancelScope()

    def stop(self) -> None:
        self._stop.cancel()

    async def run(self) -> TrainerOutcome:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        spec_file, result_file, log_file = (self.run_dir / name for name in ("spec.json", "result.json", "log.txt"))
        spec_file.write_text(json.dumps(self.spec, indent=1))
        command = [sys.executable, "-m", "trainer", "--spec", str(spec_file), "--out", str(result_file)]
        # unbuffered: the log on disk is as far as the trainer is, line by line
        with self._stop, trio.move_on_after(self.timeout_s) as deadline, log_file.open("wb", buffering=0) as sink:
            returncode = await self._run_child(command, sink)
        ended_from_outside = self._stop.cancelled_caught or deadline.cancelled_caught
        try:
            result = _read_result(result_file)
        except ResultError as err:
            if not ended_from_outside:
                return self._finish("crash", None, f"the trainer's result is unusable: {err}", log_file)
            result = None
        if ended_from_outside and (result is None or result.outcome == "killed"):
            outcome, why = (
                ("killed", "stopped by the node before the run finished")
                if self._stop.cancelled_caught
                else ("timeout", f"killed after the hard limit of {self.timeout_s:.0f} s")
            )
            measured = result if result is not None and result.steps else None  # nothing measured: no metrics
            return self._finish(outcome, measured, _with_last_loss(why, measured), log_file)
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
            await self._copy_output(process, sink)
            return await process.wait()
        finally:
            # shielded: a stopped run still ends its child, and its last lines (the summary) reach the log
            with trio.move_on_after(len(STOP_SIGNALS) * STOP_GRACE_S + 1, shield=True):
                await _terminate(process, lambda: self._copy_output(process, sink))

    async def _copy_output(self, process: trio.Process, sink) -> None:
        """The child's output into the log file, and each line to the progress tracker, until it closes."""
        while chunk := await process.stdout.receive_some(65536):
            sink.write(chunk)
            *lines, rest = (self._partial_line + chunk).split(b"\n")
            self._partial_line = rest[-MAX_LINE:]
            for line in lines:
                self._note(line)
        if self._partial_line:
            self._note(self._partial_line)
            self._partial_line = b""

    def _note(self, raw: bytes) -> None:
        line = raw[:MAX_LINE].decode("utf-8", "replace").strip()
        if line:
            self.last_line = line[:ERROR_CHARS]
            self.tracker.note(line)

    def progress(self) -> RunProgress:
        """How far the run is: its phase, the share of its budget spent, time left, its loss curve."""
        return self.tracker.progress()

    def _finish(self, outcome: str, result: TrainResult | None, error: str, log_file: Path) -> TrainerOutcome:
        digest = hashlib.sha256(log_file.read_bytes() if log_file.exists() else b"").hexdigest()
        wall_s = time.monotonic() - self.started
        log.info("run %s: %s in %.0f s%s", self.run_dir.name, outcome, wall_s, f" ({error})" if error else "")
        return TrainerOutcome(outcome, result, _one_line(error), digest, wall_s)


async def _terminate(process: trio.Process, drain: Callable[[], Awaitable[None]]) -> None:
    """Stop the child's whole process group (compile workers included): SIGTERM, then SIGKILL.
    ``drain`` reads what it still writes (the trainer answers SIGTERM with its result and summary)."""
    for sig in STOP_SIGNALS:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with trio.move_on_after(STOP_GRACE_S):
            await drain()
            await process.wait()
            return


def _with_last_loss(why: str, measured: TrainResult | None) -> str:
    """The error line of a run ended from outside, with the loss it had reached (its metrics hold the rest)."""
    if measured is None or measured.last_loss is None:
        return why
    return f"{why}; training loss {measured.last_loss:.4f} at step {measured.steps}"


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
