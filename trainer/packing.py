"""Packing documents into rows of tokens, two ways, neither with padding.

best_fit (BOS-aligned): documents (each already prefixed with BOS) wait in a buffer sorted by
length. To fill a row we always place the longest waiting document that fits the space left; when
none fits, the shortest one is cropped to fill the row exactly, which wastes the fewest tokens.
Every row starts at a document start.

concat: documents in their order, end to end, cut into rows; a document may continue in the next
row, so nothing is cropped, but most rows start mid-document.
"""

import bisect
from collections.abc import Iterable, Iterator

import numpy as np


class _Buffer:
    def __init__(self, documents: Iterable[np.ndarray], size: int) -> None:
        self.source = iter(documents)
        self.size = size
        self.lengths: list[int] = []  # sorted, parallel to ``docs`` and ``indices``
        self.docs: list[np.ndarray] = []
        self.indices: list[int] = []  # each document's position in the source
        self.read = 0

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
                self.indices.insert(at, self.read)
            self.read += 1
        return bool(self.docs)

    def take_best_fit(self, space: int) -> tuple[int, np.ndarray]:
        at = max(bisect.bisect_right(self.lengths, space) - 1, 0)  # index 0: the shortest, to be cropped
        self.lengths.pop(at)
        return self.indices.pop(at), self.docs.pop(at)


def pack_rows(
    documents: Iterable[np.ndarray], row_len: int, buffer_size: int = 512, placed: set[int] | None = None
) -> Iterator[np.ndarray]:
    """Rows of exactly ``row_len`` tokens; stops when the documents run out (a last partial row is dropped).

    ``placed``, when given, collects the source position of every document put into a row.
    """
    buffer = _Buffer(documents, buffer_size)
    while buffer.refill():
        row, filled = np.empty(row_len, dtype=buffer.docs[0].dtype), 0
        while filled < row_len and buffer.refill():
            index, doc = buffer.take_best_fit(row_len - filled)
            if placed is not None:
                placed.add(index)
            take = min(len(doc), row_len - filled)
            row[filled : filled + take] = doc[:take]
            filled += take
        if filled < row_len:
            return
        yield row


def concat_rows(documents: Iterable[np.ndarray], row_len: int) -> Iterator[np.ndarray]:
    """Documents end to end, cut into rows of exactly ``row_len`` tokens; a last partial row is dropped."""
    pending: list[np.ndarray] = []
    filled = 0
    for doc in documents:
        pending.append(doc)
        filled += len(doc)
        if filled >= row_len:
            joined = np.concatenate(pending)
            cut = len(joined) - len(joined) % row_len
            yield from joined[:cut].reshape(-1, row_len)
            pending, filled = [joined[cut:]], len(joined) - cut


PACKINGS = {"best_fit": pack_rows, "concat": concat_rows}


def pack(documents: Iterable[np.ndarray], row_len: int, packing: str) -> Iterator[np.ndarray]:
    """Rows for training, packed the way the config's ``packing`` knob names."""
    return PACKINGS[packing](documents, row_len)


def batches(rows: Iterator[np.ndarray], batch_rows: int) -> Iterator[np.ndarray]:
    """Stack rows into (batch_rows, row_len) arrays; a last incomplete batch is dropped."""
    while True:
        batch = [row for _, row in zip(range(batch_rows), rows, strict=False)]
        if len(batch) < batch_rows:
            return
        yield np.stack(batch)
