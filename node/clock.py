"""The wall clock, in the unit records carry: one source for every timestamp a node signs."""

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
