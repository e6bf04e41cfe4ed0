"""What the trainer reports, without importing torch: RESULT.json, the autoresearch-style summary
block, and the shape of the log lines the node reads a running experiment's progress from."""

import hashlib
import json
import re
from pathlib import Path

from protocol.metrics import ERROR_CHARS
from trainer.atomic import atomic_write
from trainer.result import TrainResult

PACKAGE = Path(__file__).parent

# trainer.train.progress_line, every few seconds: "step 00042 ( 16.72%) | loss 5.1234 | ..."
STEP_LINE = re.compile(r"^step (?P<step>\d+) \(\s*(?P<percent>[\d.]+)%\) \| loss (?P<loss>[\d.]+)")
# trainer.train.evaluating_line, once, when the budget is spent
EVALUATING_LINE = re.compile(r"^evaluating after \d+ steps")


def code_hash() -> str:
    """SHA-256 of the trainer's source: every .py file of the package, by relative path, sorted."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py"), key=lambda p: p.relative_to(PACKAGE).as_posix()):
        name = path.relative_to(PACKAGE).as_posix().encode()
        content = path.read_bytes()
        digest.update(b"%d:%s%d:" % (len(name), name, len(content)) + content)
    return digest.hexdigest()


def one_line(error: BaseException | str) -> str:
    """An error as one line that fits a result record."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:ERROR_CHARS]


def write_result(path: Path, result: TrainResult) -> None:
    atomic_write(path, (json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n").encode())


def summary(result: TrainResult) -> str:
    """autoresearch's closing block, so ``grep "^val_bpb:"`` works on our logs too."""
    mfu = result.mfu_ppm
    lines = {
        "val_bpb": f"{result.val_bpb:.6f}" if result.val_bpb is not None else "nan",
        "test_bpb": f"{result.test_bpb:.6f}" if result.test_bpb is not None else "nan",
        "training_seconds": f"{result.train_ms / 1000:.1f}",
        "total_seconds": f"{result.total_ms / 1000:.1f}",
        "peak_vram_mb": f"{result.peak_mem_mb:.1f}" if result.peak_mem_mb is not None else "n/a",
        "mfu_percent": f"{mfu / 10_000:.2f}" if mfu is not None else "unknown",
        "total_tokens_M": f"{result.tokens / 1e6:.1f}",
        "num_steps": str(result.steps),
        "num_params_M": f"{result.params / 1e6:.1f}",
        "depth": str(result.depth),
    }
    body = "\n".join(f"{key + ':':<18}{value}" for key, value in lines.items())
    return f"---\n{body}\noutcome:          {result.outcome}" + (
        f"\nerror:            {result.error}" if result.error else ""
    )
