"""What a result measures: how a run can end, the metrics it carries, and the unit of its scores.

Its own module, free of the signing code, so the trainer can share these facts without importing
the cryptography the records need.
"""

# Every way an experiment can end; the one list the trainer, the runner and the records share.
# oom: the run did not fit the device's memory, a property of the config on that hardware.
OUTCOMES = ("ok", "crash", "timeout", "diverged", "killed", "oom")
METRICS = ("steps", "tokens", "train_ms", "total_ms", "tokens_per_s", "mfu_ppm", "peak_mem_mb", "params")
UBPB = 1_000_000  # scores travel as integer micro-bits per byte
MAX_BPB_UBPB = 100_000_000  # 100 bits per byte: anything above is not a language model
ERROR_CHARS = 300  # the one line a result carries about a failure
