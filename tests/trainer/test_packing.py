import numpy as np

from trainer.packing import batches, pack_rows

BOS = 0


def documents(lengths: list[int]) -> list[np.ndarray]:
    return [np.array([BOS, *range(i * 1000 + 1, i * 1000 + n)], dtype=np.int64) for i, n in enumerate(lengths)]


def test_rows_start_at_a_document_and_are_full_without_padding():
    rng = np.random.default_rng(0)
    docs = documents(list(rng.integers(2, 40, size=300)))
    rows = list(pack_rows(docs, row_len=33, buffer_size=16))
    assert rows and all(len(row) == 33 and row[0] == BOS for row in rows)
    every_token = set(np.concatenate(docs).tolist())
    assert all(set(row.tolist()) <= every_token for row in rows)


def test_best_fit_wastes_little_when_documents_are_short():
    rng = np.random.default_rng(1)
    docs = documents(list(rng.integers(2, 30, size=2000)))
    total = sum(len(doc) for doc in docs)
    used = sum(len(row) for row in pack_rows(docs, row_len=129))
    assert used / total > 0.95


def test_each_document_appears_once_and_in_one_piece_when_it_fits():
    docs = documents([5, 3, 8, 2, 6, 4])
    rows = list(pack_rows(docs, row_len=14, buffer_size=8))
    placed = np.concatenate(rows).tolist()
    for doc in docs:
        start = placed.index(int(doc[1]))
        assert placed[start - 1 : start - 1 + len(doc)] == doc.tolist()


def test_batches_stack_rows_and_drop_the_incomplete_last_batch():
    rows = iter([np.arange(4) + i for i in range(7)])
    stacked = list(batches(rows, 3))
    assert [batch.shape for batch in stacked] == [(3, 4), (3, 4)]
