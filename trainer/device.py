"""The torch side of a device: which one, its precision, compilation, synchronisation and memory."""

import contextlib
import os
import resource
import sys
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import torch

from trainer import hardware

IDLE_SAMPLE_S = 0.5  # how long the CPU's idle time is watched before choosing the training threads


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def idle_cores(sample_s: float = IDLE_SAMPLE_S) -> float | None:
    """How many of the machine's cores sat idle over ``sample_s`` (Linux's /proc/stat); None elsewhere."""

    def times() -> tuple[int, int]:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle and iowait; every state

    try:
        idle_before, total_before = times()
        time.sleep(sample_s)
        idle_after, total_after = times()
    except (OSError, ValueError, IndexError):  # no /proc (macOS, Windows) or a format we do not know
        return None
    elapsed = total_after - total_before
    return (os.cpu_count() or 1) * (idle_after - idle_before) / elapsed if elapsed > 0 else None


def cpu_threads() -> int:
    """Training threads on the CPU: the cores idle right now, at least one, unless OMP_NUM_THREADS decides.

    torch takes every core by default. Where other work holds some of them, its threads wait for
    each other at every operation: on a busy 2-core box, 2 threads trained up to 8x slower than 1.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    idle = idle_cores()
    return usable if idle is None else max(1, min(usable, round(idle)))


@dataclass(frozen=True)
class Device:
    kind: str  # cuda, mps or cpu
    name: str
    bf16: bool
    compile: bool

    @property
    def torch(self) -> torch.device:
        return torch.device(self.kind)

    @property
    def hardware(self) -> str:
        return hardware.hardware_of(self.kind, self.name)

    @property
    def peak_flops(self) -> float | None:
        return hardware.peak_flops(self.name) if self.kind == "cuda" else None

    def precision(self) -> AbstractContextManager:
        if self.bf16:
            return torch.autocast(self.kind, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        if self.kind == "cuda":
            torch.cuda.synchronize()
        elif self.kind == "mps":
            torch.mps.synchronize()

    def peak_memory_mb(self) -> int:
        if self.kind == "cuda":
            return torch.cuda.max_memory_allocated() // 2**20
        if self.kind == "mps":
            return torch.mps.driver_allocated_memory() // 2**20
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
        return peak // 2**20 if sys.platform == "darwin" else peak // 2**10


def open_device(requested: str, compile: str) -> Device:
    """Resolve 'auto', check the device exists, and set it up for fast training."""
    kind = requested
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device cuda requested but torch sees no CUDA GPU")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("device mps requested but torch sees no MPS device")
    if kind == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats()
        name = torch.cuda.get_device_name()
        bf16 = torch.cuda.is_bf16_supported()
    elif kind == "mps":
        name, bf16 = hardware.device_name("mps"), False
    else:
        name, bf16 = hardware.device_name("cpu"), _cpu_has_bf16()
        torch.set_num_threads(cpu_threads())
    torch.set_float32_matmul_precision("high")
    compiled = compile == "on" or (compile == "auto" and kind == "cuda")
    return Device(kind, name, bf16, compiled)
