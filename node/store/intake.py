"""Intake: untrusted record bytes judged once (decode, signature, the swarm's policy) before storage.

Membership and quotas depend on what the ledger holds, so the ledger applies them as it inserts.

Validation lives here and storage in the ledger, whose ``insert`` trusts its caller: every path
into the ledger (gossip, sync, our own results) verifies a record exactly once. Verification is
the cost of a catch-up (~70 us a record, most of it Ed25519), so large batches go to a pool of
worker processes, one per core, started on first need; small ones are checked inline, where a
round trip to a worker would cost more than it saves.
"""

import concurrent.futures
import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool

from protocol.errors import RecordError
from protocol.policy import Policy
from protocol.records import Record, decode

log = logging.getLogger("arnode.intake")

POOL_MIN_RECORDS = 128  # below this a batch is checked inline
CHUNK_RECORDS = 256  # records per task sent to a worker


class Intake:
    """Judges records for one swarm's ledger; a context manager that owns its worker pool."""

    def __init__(self, policy: Policy, workers: int | None = None) -> None:
        self.policy = policy
        self.workers = workers if workers is not None else os.cpu_count() or 1
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def __enter__(self) -> "Intake":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def admit(self, raw: bytes, now_ms: int) -> Record:
        """The record in ``raw`` if it is valid and belongs in this swarm; RecordError with the reason."""
        return self._admitted(decode(raw, now_ms))

    def admit_many(self, raws: Sequence[bytes], now_ms: int) -> tuple[list[Record], list[str]]:
        """(valid records, one reason per invalid one), in input order; on the pool when the batch is large."""
        records, rejected = [], []
        for item in self._decoded(raws, now_ms):
            if isinstance(item, str):
                rejected.append(item)
                continue
            try:
                records.append(self._admitted(item))
            except RecordError as err:
                rejected.append(str(err))
        return records, rejected

    def _decoded(self, raws: Sequence[bytes], now_ms: int) -> list[Record | str]:
        if self.workers < 2 or len(raws) < POOL_MIN_RECORDS:
            return _decode_chunk(raws, now_ms)
        chunks = [raws[start : start + CHUNK_RECORDS] for start in range(0, len(raws), CHUNK_RECORDS)]
        try:
            return [item for part in self._worker_pool().map(_decode_chunk, chunks, [now_ms] * len(chunks))
                    for item in part]  # fmt: skip
        except BrokenProcessPool:  # a worker was killed from outside (e.g. for memory): a fresh pool next time
            log.warning("a record-verifying worker died; this batch is checked here and the pool restarted")
            self.close()
            return _decode_chunk(raws, now_ms)

    def _admitted(self, record: Record) -> Record:
        self.policy.check(record)  # our track, after the swarm's creation, a plausible val_bpb
        return record

    def _worker_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            # forkserver, not fork: the daemon has threads, and a forked copy of them could deadlock
            context = multiprocessing.get_context("forkserver")
            self._pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context)
        return self._pool


def _decode_chunk(raws: Sequence[bytes], now_ms: int) -> list[Record | str]:
    """Each raw decoded, or the one-line reason it is not a record (a worker's task: plain data out)."""
    out: list[Record | str] = []
    for raw in raws:
        try:
            out.append(decode(raw, now_ms))
        except RecordError as err:
            out.append(str(err))
    return out
