"""``python -m trainer --spec SPEC.json --out RESULT.json``: run one experiment, write one result.

Exit codes: 0 when RESULT.json was written (whatever the outcome), 2 for an invalid spec (one
line on stderr), 1 otherwise. RESULT.json appears atomically, at the very end, or not at all; its
schema is trainer.result.TrainResult. SIGTERM during training ends the run as 'killed', and its
RESULT.json still holds what was measured (steps, tokens, training time, the last loss).
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from trainer.report import code_hash, one_line, summary, write_result
from trainer.result import TrainResult
from trainer.spec import Spec, SpecError, check_spec


def load_spec(path: str) -> Spec:
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as err:
        raise SpecError(f"cannot read spec {path}: {err.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SpecError(f"spec {path} is not JSON: {err}") from None
    return check_spec(raw)


class Stopped(BaseException):
    """SIGTERM arrived: not an Exception, so that no handler inside training mistakes it for a failure."""


def stop_on_sigterm() -> None:
    """From here on, SIGTERM ends training with Stopped (once: a second one must not interrupt the write)."""

    def stop(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Stopped(f"stopped by {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, stop)


def build_result(spec: Spec, stats: Any, outcome: str, error: str, started: float) -> TrainResult:
    import torch

    device = stats.device
    mfu = stats.mfu
    ok = outcome == "ok"
    loop_started = stats.loop_started if stats.loop_started is not None else time.perf_counter()
    return TrainResult(
        outcome=outcome,
        error=error,
        val_bpb=stats.val_bpb if ok else None,
        test_bpb=stats.test_bpb if ok else None,
        steps=stats.steps,
        tokens=stats.tokens,
        train_ms=round(stats.train_seconds * 1000),
        total_ms=round((time.perf_counter() - started) * 1000),
        tokens_per_s=round(stats.tokens_per_s),
        mfu_ppm=round(mfu * 1e6) if mfu is not None else None,
        peak_mem_mb=device.peak_memory_mb() if device else None,
        params=stats.params,
        last_loss=stats.last_loss,
        startup_ms=round((loop_started - started) * 1000),
        compile_ms=round(stats.compile_seconds * 1000),
        eval_ms=round(stats.eval_seconds * 1000),
        depth=spec.config["depth"],
        device_batch_size=stats.device_batch_size or spec.config["device_batch_size"],
        device=device.kind if device else spec.device,
        hardware=device.hardware if device else None,
        torch=torch.__version__,
        code=code_hash(),
    )


def exit_with_parent(poll_s: float = 1.0) -> None:
    """End this process when the node that started it dies: nobody would ever read its result."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    exit_with_parent()
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="the experiment, as JSON")
    parser.add_argument("--out", required=True, help="where to write RESULT.json")
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.spec)
    except SpecError as err:
        print(f"trainer: invalid spec: {err}", file=sys.stderr)
        return 2

    import torch  # only for a valid spec

    from trainer.train import Diverged, DoesNotFit, Stats, run

    stats, outcome, error = Stats(), "ok", ""
    stop_on_sigterm()
    try:
        run(spec, stats, log=lambda line: print(line, flush=True))
    except Stopped as err:
        outcome, error = "killed", str(err)
    except Diverged as err:
        outcome, error = "diverged", one_line(str(err))
    except (DoesNotFit, torch.OutOfMemoryError) as err:
        outcome, error = "oom", one_line(err)
    except Exception as err:
        outcome, error = "crash", one_line(err)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # what was measured is written now, whatever comes
    result = build_result(spec, stats, outcome, error, started)
    write_result(Path(args.out), result)  # first: a reader that has gone away cannot cost the result
    print(summary(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
