"""What a device is called and how fast it can go, found without importing torch.

The node calls this to name its track before any training starts; the trainer calls it too, so
both agree on the hardware class.
"""

import os
import platform
import shutil
import subprocess
import sys

from protocol.track import hardware_class

DEVICES = ("auto", "cuda", "cpu", "mps")

# Dense bf16 tensor-core peaks in FLOP/s, from the vendors' data sheets; matched by substring of
# the lowercased device name, first match wins, so the more specific names come first. A GPU not
# listed has no MFU ("unknown"): a guessed peak would be worse than none.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    # NVIDIA data centre
    ("gh200", 989.5e12),
    ("h200", 989.5e12),
    ("h100 nvl", 835e12),
    ("h100 pcie", 756e12),
    ("h100", 989.5e12),
    ("h800", 989.5e12),
    ("h20", 148e12),
    ("b200", 2250e12),
    ("a100", 312e12),
    ("a800", 312e12),
    ("a40", 149.7e12),
    ("a10g", 70e12),
    ("a10", 125e12),
    ("l40s", 362e12),
    ("l40", 181e12),
    ("l4", 121e12),
    # NVIDIA workstation and consumer
    ("rtx 6000 ada", 364.2e12),
    ("rtx a6000", 154.8e12),
    ("rtx 5090", 209.5e12),
    ("rtx 4090", 165.2e12),
    ("rtx 4080", 97.5e12),
    ("rtx 3090", 71e12),
    # AMD Instinct and Radeon (ROCm builds of torch name them through torch.cuda)
    ("mi325x", 1307.4e12),
    ("mi300x", 1307.4e12),
    ("mi250x", 383e12),
    ("mi250", 362.1e12),
    ("mi210", 181e12),
    ("7900 xtx", 122.8e12),
)


def peak_flops(device_name: str) -> float | None:
    """Peak dense bf16 FLOP/s of a known GPU, None when we do not know it (CPUs, MPS, others)."""
    name = device_name.lower()
    return next((flops for key, flops in PEAK_BF16_FLOPS if key in name), None)


def _nvidia_gpu_names() -> list[str]:
    """Names of all NVIDIA GPUs on the machine, in nvidia-smi's order; empty without a driver."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [name.strip() for name in out.stdout.splitlines() if name.strip()] if out.returncode == 0 else []


def gpu_count() -> int:
    """How many NVIDIA GPUs the machine has."""
    return len(_nvidia_gpu_names())


def _nvidia_gpu_name() -> str | None:
    """The GPU a CUDA process would use first, honouring a numeric CUDA_VISIBLE_DEVICES."""
    names = _nvidia_gpu_names()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    index = int(visible) if visible.isdigit() else 0
    return names[index] if index < len(names) else None


def _apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def resolve_device(device: str) -> str:
    """'auto' becomes cuda when an NVIDIA GPU is present, else mps on Apple silicon, else cpu."""
    if device != "auto":
        return device
    if _nvidia_gpu_name():
        return "cuda"
    return "mps" if _apple_silicon() else "cpu"


def cpu_count() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return platform.processor() or platform.machine() or "cpu"


def device_name(device: str) -> str:
    """The human name of a resolved device, e.g. 'NVIDIA H100 80GB HBM3' or 'cpu Intel(R) Xeon(R)'."""
    if device == "cuda":
        return _nvidia_gpu_name() or "cuda unknown"
    if device == "mps":
        return f"mps {_cpu_name()}"
    return f"cpu {_cpu_name()}"


def hardware_of(device: str, name: str | None = None) -> str:
    """Hardware class of a resolved device: one GPU, or a CPU with the cores we may use."""
    name = name or device_name(device)
    return hardware_class(name, cpu_count() if device == "cpu" else 1)
