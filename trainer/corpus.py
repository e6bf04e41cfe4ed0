"""Datasets as token streams: documents, their BPE tokens (cached), training rows, the eval rows and
the holdout rows.

Every document is stored and streamed as a uint16 array that begins with BOS, so a document
boundary is wherever BOS appears. The validation split's documents serve twice: those the frozen
eval packs into its rows are scored as val_bpb; of the rest, never trained on and never in the
eval, the holdout packs its own rows, scored as test_bpb.
"""

import io
import lzma
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from itertools import count
from pathlib import Path

import numpy as np
import tiktoken

from trainer import climbmix, tokenizer
from trainer.atomic import atomic_write
from trainer.climbmix import DataError
from trainer.packing import pack_rows
from trainer.spec import EvalSplit, Spec

SHAKESPEARE_FILE = Path(__file__).with_name("data") / "shakespeare.txt.xz"
SHAKESPEARE_VAL = ("hamlet", "tempest")  # pinned: changing it needs a new eval version
SHAKESPEARE_DOC_CHARS = 250  # speeches grouped into documents of about this size
CLIMBMIX_TOKENIZER_CHARS = 500_000_000
SEPARATOR = "\x1e"
ENCODE_THREADS = max(1, min(8, os.cpu_count() or 1))


@cache
def shakespeare_works() -> dict[str, str]:
    """Work name -> text, from the embedded corpus."""
    try:
        corpus = lzma.decompress(SHAKESPEARE_FILE.read_bytes()).decode("utf-8")
    except (OSError, lzma.LZMAError) as err:
        raise DataError(f"the embedded corpus {SHAKESPEARE_FILE.name} is unreadable: {err}") from None
    works = (record.split("\n", 1) for record in corpus.split(SEPARATOR)[1:])
    return {name: text for name, text in works}


def group_paragraphs(text: str, target_chars: int = SHAKESPEARE_DOC_CHARS) -> list[str]:
    """Cut a long work into documents of whole paragraphs, each about ``target_chars`` long."""
    documents, current = [], ""
    for paragraph in text.split("\n\n"):
        if not paragraph.strip():
            continue
        current = f"{current}\n\n{paragraph}" if current else paragraph
        if len(current) >= target_chars:
            documents.append(current)
            current = ""
    return [*documents, current] if current else documents


def shakespeare_texts(split: str) -> Iterator[str]:
    for name, text in sorted(shakespeare_works().items()):
        if (name in SHAKESPEARE_VAL) == (split == "val"):
            yield from group_paragraphs(text)


def encode_documents(encoding: tiktoken.Encoding, texts: list[str]) -> np.ndarray:
    """Documents as one uint16 array, each document prefixed with BOS."""
    bos = encoding._special_tokens[tokenizer.BOS]
    out = []
    for ids in encoding.encode_ordinary_batch(texts, num_threads=ENCODE_THREADS):
        out.append(bos)
        out.extend(ids)
    return np.array(out, dtype=np.uint16)


def split_documents(tokens: np.ndarray, bos: int) -> list[np.ndarray]:
    return np.split(tokens, np.flatnonzero(tokens == bos)[1:])


def in_order(documents: list[np.ndarray], doc_order: str, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
    """``documents`` shuffled by ``rng`` (None: as they are), then, for the curriculum, shortest first."""
    order = rng.permutation(len(documents)) if rng is not None else range(len(documents))
    if doc_order == "short_to_long":
        order = sorted(order, key=lambda i: len(documents[i]))  # stable: equal lengths keep the shuffle
    return (documents[i] for i in order)


def epochs(documents: list[np.ndarray], seed: int, doc_order: str) -> Iterator[np.ndarray]:
    """An endless stream of ``documents``, each epoch in a new order drawn from the seed."""
    for epoch in count():
        yield from in_order(documents, doc_order, np.random.default_rng([seed, epoch]))


class Corpus:
    """One dataset with its tokenizer, its cached token arrays and its pinned validation split."""

    def __init__(self, spec: Spec) -> None:
        self.name = spec.dataset.name
        self.data_dir = spec.data_dir / self.name
        self.cache_dir = spec.cache_dir / "tokens" / f"{self.name}-{spec.dataset.tokenizer}"
        path = spec.cache_dir / "tokenizers" / f"{self.name}-{spec.dataset.tokenizer}.json"
        self.encoding = tokenizer.load_or_train(
            path, self._tokenizer_texts(), spec.dataset.vocab_size, f"{self.name}-{spec.dataset.tokenizer}"
        )
        self.bos = self.encoding._special_tokens[tokenizer.BOS]

    def _tokenizer_texts(self) -> Iterator[str]:
        if self.name == "shakespeare":
            yield from shakespeare_texts("train")
            return
        budget = CLIMBMIX_TOKENIZER_CHARS
        for index in climbmix.train_shards():
            for text in climbmix.shard_texts(climbmix.download(index, self.data_dir)):
                yield text
                budget -= len(text)
                if budget <= 0:
                    return

    def _cached_tokens(self, key: str, texts: Iterator[str]) -> np.ndarray:
        path = self.cache_dir / f"{key}.npy"
        if path.exists():
            return np.load(path)
        tokens = encode_documents(self.encoding, list(texts))
        atomic_write(path, _npy_bytes(tokens))
        return tokens

    def split_tokens(self, split: str) -> np.ndarray:
        """All tokens of the shakespeare split, or of one climbmix shard (``split`` = shard index)."""
        if self.name == "shakespeare":
            return self._cached_tokens(split, shakespeare_texts(split))
        index = climbmix.VAL_SHARD if split == "val" else int(split)
        path = climbmix.download(index, self.data_dir)
        return self._cached_tokens(f"shard_{index:05d}", climbmix.shard_texts(path))

    def train_documents(self, seed: int, doc_order: str) -> Iterator[np.ndarray]:
        """An endless stream of training documents; the seed orders the embedded corpus's epochs."""
        if self.name == "shakespeare":
            yield from epochs(split_documents(self.split_tokens("train"), self.bos), seed, doc_order)
        # climbmix shards are already shuffled: stream them in order, preparing the next one meanwhile
        with ThreadPoolExecutor(max_workers=1) as prefetch:
            shards = (index for _ in count() for index in climbmix.train_shards())
            upcoming: Future = prefetch.submit(self.split_tokens, str(next(shards)))
            while True:
                tokens = upcoming.result()
                upcoming = prefetch.submit(self.split_tokens, str(next(shards)))
                yield from in_order(split_documents(tokens, self.bos), doc_order, None)

    def eval_rows(self, split: EvalSplit) -> np.ndarray:
        """The frozen evaluation rows: validation documents in order, packed into seq_len + 1 tokens."""
        return self.frozen_rows(split)[0]

    def frozen_rows(self, split: EvalSplit) -> tuple[np.ndarray, np.ndarray]:
        """The eval rows and the holdout rows, packed alike from disjoint validation documents."""
        documents = split_documents(self.split_tokens("val"), self.bos)
        placed: set[int] = set()
        val = self._rows(documents, split.seq_len, split.tokens, placed, "validation")
        unscored = [doc for i, doc in enumerate(documents) if i not in placed]
        return val, self._rows(unscored, split.seq_len, split.holdout_tokens, None, "holdout")

    def _rows(self, documents: list, seq_len: int, tokens: int, placed: set[int] | None, name: str) -> np.ndarray:
        n_rows = tokens // seq_len
        packed = pack_rows(documents, seq_len + 1, placed=placed)
        rows = [row for _, row in zip(range(n_rows), packed, strict=False)]
        if len(rows) < n_rows:
            raise DataError(f"{self.name} {name} split has {len(rows)} rows, the eval needs {n_rows}")
        return np.stack(rows)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
