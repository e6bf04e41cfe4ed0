"""BPE tokenizers: trained once per dataset with rustbpe, cached, and used through tiktoken."""

import base64
import json
from collections.abc import Iterable
from pathlib import Path

import rustbpe
import tiktoken

from trainer.atomic import atomic_write

BOS = "<|bos|>"
SPECIAL_TOKENS = (BOS,)
MIN_VOCAB = 256 + 1 + len(SPECIAL_TOKENS)  # the 256 bytes, at least one merge, the specials
MAX_VOCAB = 2**16  # token arrays are stored as uint16


def check_vocab_size(vocab_size: int) -> None:
    # rustbpe panics (and takes the process down) on a vocabulary smaller than its byte alphabet
    if not MIN_VOCAB <= vocab_size <= MAX_VOCAB:
        raise ValueError(f"vocab size {vocab_size} is outside [{MIN_VOCAB}, {MAX_VOCAB}]")


def train(texts: Iterable[str], vocab_size: int, name: str) -> tiktoken.Encoding:
    """Learn merges from ``texts`` so that, with the special tokens, the vocabulary has ``vocab_size`` ids."""
    check_vocab_size(vocab_size)
    learner = rustbpe.Tokenizer()
    learner.train_from_iterator(iter(texts), vocab_size - len(SPECIAL_TOKENS))
    if learner.vocab_size != vocab_size - len(SPECIAL_TOKENS):
        raise ValueError(
            f"the text is too small to learn a vocabulary of {vocab_size}: it stopped at {learner.vocab_size}"
        )
    return _encoding(name, learner.get_pattern(), dict(learner.get_mergeable_ranks()))


def _encoding(name: str, pattern: str, ranks: dict[bytes, int]) -> tiktoken.Encoding:
    specials = {token: len(ranks) + i for i, token in enumerate(SPECIAL_TOKENS)}
    return tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)


def save(encoding: tiktoken.Encoding, path: Path) -> None:
    ranks = {base64.b64encode(token).decode(): rank for token, rank in encoding._mergeable_ranks.items()}
    blob = json.dumps({"name": encoding.name, "pattern": encoding._pat_str, "ranks": ranks})
    atomic_write(path, blob.encode())


def load(path: Path) -> tiktoken.Encoding:
    blob = json.loads(path.read_text())
    ranks = {base64.b64decode(token): rank for token, rank in blob["ranks"].items()}
    return _encoding(blob["name"], blob["pattern"], ranks)


def load_or_train(path: Path, texts: Iterable[str], vocab_size: int, name: str) -> tiktoken.Encoding:
    """The cached tokenizer at ``path``, training and caching it on first use."""
    if path.exists():
        encoding = load(path)
        if encoding.n_vocab == vocab_size:
            return encoding
    encoding = train(texts, vocab_size, name)
    save(encoding, path)
    return encoding


def token_bytes(encoding: tiktoken.Encoding) -> list[int]:
    """UTF-8 length of each token id; 0 for special tokens, which evaluation leaves out."""
    specials = set(encoding._special_tokens.values())
    return [0 if i in specials else len(encoding.decode_single_token_bytes(i)) for i in range(encoding.n_vocab)]
