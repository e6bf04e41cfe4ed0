"""The web-scale dataset: autoresearch's climbmix parquet shards, downloaded on demand into a cache.

Shards are fetched whole with retries; an interrupted download resumes from its ``.part`` file
with an HTTP range request. Validation is pinned to the last shard.
"""

import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

BASE_URL = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
LAST_SHARD = 6542
VAL_SHARD = LAST_SHARD
ATTEMPTS = 4
CHUNK = 1 << 20


class DataError(RuntimeError):
    """Data could not be found, fetched or read; ``str(err)`` is one line."""


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.parquet"


def train_shards() -> range:
    return range(0, VAL_SHARD)


def _fetch_once(url: str, part: Path) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        # 206: the server resumed where we stopped; 200: it sent the whole file again
        mode = "ab" if response.status == 206 else "wb"
        with open(part, mode) as out:
            while chunk := response.read(CHUNK):
                out.write(chunk)


def download(index: int, data_dir: Path, base_url: str = BASE_URL) -> Path:
    """The local path of shard ``index``, downloading it first when it is not cached."""
    path = data_dir / shard_name(index)
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    url = f"{base_url}/{path.name}"
    for attempt in range(ATTEMPTS):
        try:
            _fetch_once(url, part)
            pq.read_metadata(part)  # a truncated file fails here and is fetched again
            os.replace(part, path)
            return path
        except urllib.error.HTTPError as err:
            if err.code == 416:  # our .part is already complete or corrupt: start over
                part.unlink(missing_ok=True)
            reason = f"HTTP {err.code}"
        except (OSError, urllib.error.URLError) as err:
            reason = str(getattr(err, "reason", err))
        except ValueError as err:  # pyarrow's ArrowInvalid for a bad file: fetch it again from scratch
            part.unlink(missing_ok=True)
            reason = f"bad parquet file ({err})"
        if attempt + 1 < ATTEMPTS:
            time.sleep(0.5 * 2**attempt)
    raise DataError(f"cannot download {path.name} from {base_url} ({reason}); are we offline? put it in {data_dir}")


def shard_texts(path: Path) -> Iterator[str]:
    """Documents of one shard, in file order."""
    try:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(columns=["text"], batch_size=1024):
            yield from (text for text in batch.column(0).to_pylist() if text)
    except (OSError, KeyError, ValueError) as err:
        raise DataError(f"cannot read {path}: {err}") from None
