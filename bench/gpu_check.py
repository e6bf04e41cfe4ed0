"""One call that proves the CUDA path, on a machine with one NVIDIA GPU and no network.

    python -m bench.gpu_check                              # one GPU: under 9 minutes
    python -m bench.gpu_check --device cpu --seconds 20    # any machine, as CI runs it

1. Checks that everything the trainer and its tests import is installed, and says in one line
   what is missing.
2. On CUDA, runs the trainer tests that need a GPU (tests/trainer/test_cuda.py: bf16, compile,
   attention kernels, batch fitting against real GPU memory, out-of-memory as its own outcome).
3. Runs the device's default profile (``gpu`` on CUDA) on the embedded corpus for ``--seconds``
   of training, as the node runs it: ``python -m trainer`` in a subprocess, torch.compile and
   bf16 on CUDA. It prints tokens/s, MFU, steps, peak memory, val_bpb, test_bpb, startup, compile
   and eval seconds, and experiments per hour including all overhead, beside autoresearch's
   published H100 figures, and checks the targets for one H100/H200: MFU >= 40% and
   startup + compile + eval <= 30 s.

A GPU machine without network has Python 3.12, torch (CUDA), numpy, pyarrow, tiktoken, msgpack
and rich. Bring the rest (rustbpe, and pytest for step 2) as wheels, built on a machine with
network for the GPU machine's Python and platform:

    pip download --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \\
        -d wheelhouse rustbpe pytest
    pip wheel -w wheelhouse PACKAGE        # for anything without a published wheel

then copy wheelhouse/ over with the repository and install offline:

    pip install --no-index --find-links wheelhouse rustbpe pytest
"""

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEEDED = ("torch", "numpy", "pyarrow", "tiktoken", "rustbpe", "msgpack")  # the trainer's imports
NEEDED_FOR_TESTS = ("pytest",)
CUDA_TESTS = "tests/trainer/test_cuda.py"
CUDA_TESTS_TIMEOUT_S = 240
STARTUP_GRACE_S = 300  # on top of the training budget: imports, tokenizer, compile, evaluation
TARGET_MFU = 0.40
TARGET_OVERHEAD_S = 30.0
AUTORESEARCH_H100 = "autoresearch on one H100, its own data: val_bpb 0.9979, 953 steps, MFU 39.8%, peak 45 GB"


def missing(modules: tuple[str, ...]) -> list[str]:
    return [name for name in modules if importlib.util.find_spec(name) is None]


def run_cuda_tests() -> str:
    """One line: how the trainer's CUDA tests went."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", CUDA_TESTS]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=CUDA_TESTS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"FAILED: over {CUDA_TESTS_TIMEOUT_S} s"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    summary = lines[-1] if lines else done.stderr.strip()[-200:]
    if done.returncode != 0:
        print(done.stdout[-4000:], file=sys.stderr)
    return ("ok: " if done.returncode == 0 else "FAILED: ") + summary.strip("= ")


def run_profile(device: str, seconds: int, cache: Path) -> tuple[dict, float, str]:
    """The device's default config trained for ``seconds`` in a trainer subprocess.

    Returns the result, the wall seconds, and the hardware class the node would name its track by.
    """
    from trainer.spec import build_spec, default_config_for, track_for

    track = track_for(device, "shakespeare", "seconds", seconds)
    spec = build_spec(default_config_for(device), track, device, cache / "data", cache, compile="auto")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        spec_file, out = Path(scratch) / "spec.json", Path(scratch) / "result.json"
        spec_file.write_text(json.dumps(spec))
        command = [sys.executable, "-m", "trainer", "--spec", str(spec_file), "--out", str(out)]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + STARTUP_GRACE_S)
        wall = time.perf_counter() - started
        if not out.exists():
            tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
            raise SystemExit(f"gpu_check: the trainer wrote no result (exit {done.returncode}): {tail[0]}")
        return json.loads(out.read_text()), wall, track.hardware


def report(result: dict, wall: float, track_hardware: str) -> list[str]:
    """The figures, one per line, and whether each target is met."""
    mfu = result["mfu_ppm"] / 1e6 if result["mfu_ppm"] is not None else None
    overhead = (result["startup_ms"] + result["compile_ms"] + result["eval_ms"]) / 1000
    memory = f"{result['peak_mem_mb'] / 1024:.1f} GB" if result["peak_mem_mb"] is not None else "unknown"
    score = "{:.6f}".format
    agreement = "the trainer measured the same" if result["hardware"] == track_hardware else "MISMATCH: not signable"
    lines = [
        f"device              {result['device']} ({result['hardware']}), torch {result['torch']}",
        f"track hardware      {track_hardware}: {agreement}",
        f"outcome             {result['outcome']}{': ' + result['error'] if result['error'] else ''}",
        f"val_bpb             {score(result['val_bpb']) if result['val_bpb'] is not None else 'none'}",
        f"test_bpb            {score(result['test_bpb']) if result['test_bpb'] is not None else 'none'}",
        f"steps               {result['steps']} ({result['tokens'] / 1e6:.2f}M tokens)",
        f"tokens/s            {result['tokens_per_s']:,}",
        f"mfu                 {f'{100 * mfu:.1f}%' if mfu is not None else 'unknown (peak of this device not known)'}",
        f"peak memory         {memory} (device batch {result['device_batch_size']} rows)",
        f"startup s           {result['startup_ms'] / 1000:.1f}",
        f"compile s           {result['compile_ms'] / 1000:.1f}",
        f"eval s              {result['eval_ms'] / 1000:.1f}",
        f"experiment wall s   {wall:.1f} (training {result['train_ms'] / 1000:.1f})",
        f"experiments/hour    {3600 / wall:.1f}, all overhead included",
        f"reference           {AUTORESEARCH_H100}",
    ]
    if result["device"] == "cuda":
        mfu_met = mfu is not None and mfu >= TARGET_MFU
        lines.append(f"target mfu >= {100 * TARGET_MFU:.0f}%    {'met' if mfu_met else 'MISSED'}")
        met = "met" if overhead <= TARGET_OVERHEAD_S else "MISSED"
        lines.append(f"target overhead <= {TARGET_OVERHEAD_S:.0f} s  {met} ({overhead:.1f} s startup+compile+eval)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gpu_check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--seconds", type=int, default=300, help="training budget of the profile run")
    parser.add_argument("--cache-dir", type=Path, help="tokenizer and token cache (default: a fresh temp dir)")
    args = parser.parse_args(argv)
    needed = NEEDED + (NEEDED_FOR_TESTS if args.device == "cuda" else ())
    if absent := missing(needed):
        print(f"gpu_check: missing {', '.join(absent)}; install them offline from a wheelhouse (see --help)")
        return 2
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: torch {torch.__version__} sees no CUDA GPU (built for CUDA {torch.version.cuda})")
        return 2
    started = time.perf_counter()
    print(f"cuda tests          {run_cuda_tests() if args.device == 'cuda' else 'skipped on cpu'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu-check-cache-") as scratch:
        result, wall, track_hardware = run_profile(args.device, args.seconds, args.cache_dir or Path(scratch))
    for line in report(result, wall, track_hardware):
        print(line)
    print(f"gpu_check took      {time.perf_counter() - started:.0f} s")
    return 0 if result["outcome"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
