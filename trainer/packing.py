"""BOS-aligned best-fit packing: every row starts at a document start and holds no padding.

Documents (each already prefixed with BOS) wait in a buffer sorted by length. To fill a row we
always place the longest waiting document that fits the space left; when none fits, the shortest
one is cropped to fill the row exactly, which wastes the fewest tokens.
"""

import bisect
from collections.abc import Iterable, Iterator

import numpy as np


class _Buffer:
    def __init__(self, documents: Iterable[np.ndarray], size: int) -> None:
        self.source = iter(documents)
        self.size = size
        self.lengths: list[int] = []  # sorted, parallel to ``docs``
        self.docs: list[np.ndarray] = []

    def refill(self) -> bool:
        """Top the buffer up; False once it is empty for good."""
        while len(self.docs) < self.size:
            doc = next(self.source, None)
            if doc is None:
                break
            if len(doc):
                at = bisect.bisect_right(self.lengths, len(doc))
                self.lengths.insert(at, len(doc))
                self.docs.insert(at, doc)
        return bool(self.docs)

    def take_best_fit(self, space: int) -> np.ndarray:
        at = max(bisect.bisect_right(self.lengths, space) - 1, 0)  # index 0: the shortest, to be cropped
        self.lengths.pop(at)
        return self.docs.pop(at)


def pack_rows(documents: Iterable[np.ndarray], row_len: int, buffer_size: int = 512) -> Iterator[np.ndarray]:
    """Rows of exactly ``row_len`` tokens; stops when the documents run out (a last partial row is dropped)."""
    buffer = _Buffer(documents, buffer_size)
    while buffer.refill():
        row, filled = np.empty(row_len, dtype=buffer.docs[0].dtype), 0
        while filled < row_len and buffer.refill():
            doc = buffer.take_best_fit(row_len - filled)
            take = min(len(doc), row_len - filled)
            row[filled : filled + take] = doc[:take]
            filled += take
        if filled < row_len:
            return
        yield row


def batches(rows: Iterator[np.ndarray], batch_rows: int) -> Iterator[np.ndarray]:
    """Stack rows into (batch_rows, row_len) arrays; a last incomplete batch is dropped."""
    while True:
        batch = [row for _, row in zip(range(batch_rows), rows, strict=False)]
        if len(batch) < batch_rows:
            return
        yield np.stack(batch)
