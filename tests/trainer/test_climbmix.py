import functools
import http.server
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from protocol.config import default_config
from trainer import climbmix, corpus
from trainer.climbmix import DataError, download, shard_name, shard_texts
from trainer.spec import build_spec, check_spec, track_for

LETTERS = list("abcdefghijklmnopqrstuvwxyz")


def write_shard(path: Path, n_docs: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(LETTERS, size=rng.integers(3, 9))) for _ in range(n_docs * 40)]
    texts = [" ".join(rng.choice(words, size=rng.integers(5, 60))) for _ in range(n_docs)]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": texts, "id": list(range(n_docs))}), path, row_group_size=64)
    return texts


def test_a_shard_yields_its_documents_in_order(tmp_path):
    texts = write_shard(tmp_path / shard_name(0), 300, seed=0)
    assert list(shard_texts(tmp_path / shard_name(0))) == texts


def test_a_cached_shard_is_not_downloaded_again(tmp_path):
    write_shard(tmp_path / shard_name(3), 10, seed=3)
    assert download(3, tmp_path, base_url="http://127.0.0.1:9") == tmp_path / shard_name(3)


def test_download_fetches_from_a_server_into_the_cache(tmp_path):
    served = tmp_path / "served"
    texts = write_shard(served / shard_name(5), 50, seed=5)
    handler = functools.partial(QuietHandler, directory=str(served))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            path = download(5, tmp_path / "cache", base_url=f"http://127.0.0.1:{server.server_port}")
        finally:
            server.shutdown()
    assert list(shard_texts(path)) == texts
    assert not list((tmp_path / "cache").glob("*.part"))


def test_offline_download_fails_with_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(climbmix, "ATTEMPTS", 2)
    with pytest.raises(DataError, match=r"cannot download shard_00007\.parquet") as caught:
        download(7, tmp_path, base_url="http://127.0.0.1:9")
    assert "\n" not in str(caught.value)


def test_a_corpus_of_local_shards_trains_its_tokenizer_and_packs_eval_rows(tmp_path, monkeypatch):
    shards = tmp_path / "data" / "climbmix"
    write_shard(shards / shard_name(0), 1000, seed=0)
    write_shard(shards / shard_name(climbmix.VAL_SHARD), 400, seed=1)
    monkeypatch.setattr(corpus, "CLIMBMIX_TOKENIZER_CHARS", 100_000)  # stay inside the one local shard
    track = track_for("cpu", "climbmix", "steps", 1)
    spec = check_spec(build_spec(default_config("small"), track, "cpu", tmp_path / "data", tmp_path / "cache"))
    shard_corpus = corpus.Corpus(spec)
    assert shard_corpus.encoding.n_vocab == 8192
    documents = shard_corpus.train_documents(seed=0, doc_order="shuffled")
    first = next(documents)
    assert first[0] == shard_corpus.bos
    assert shard_corpus.encoding.decode(first[1:].tolist()) in first_shard_texts(shards)
    val = corpus.split_documents(shard_corpus.split_tokens("val"), shard_corpus.bos)
    rows = corpus.pack_rows(val, 65)
    assert all(row[0] == shard_corpus.bos for row in rows)


def first_shard_texts(shards: Path) -> list[str]:
    return list(shard_texts(shards / shard_name(0)))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass
