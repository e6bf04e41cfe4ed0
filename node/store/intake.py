"""Intake: untrusted record bytes judged once (size, decode, signature, the swarm's policy).

The gate (gate.py) uses it for every record from outside and then decides whether the record
counts (membership and limits, which depend on what the ledger holds). Each invalid record gets
a Rejection: one of the kinds below and a one-line reason. Verification is
the cost of a catch-up (~100 us a record, 60 of them Ed25519), so large batches go to a pool of
worker processes, one per core, started on first need; small ones are checked inline, where a
round trip to a worker would cost more than it saves. ``start`` hands a batch to the workers and
returns at once, so a caller can keep every core busy while it stores what was judged before.

A worker sends back only what the raw bytes do not already say cheaply, as marshal data (plain
values, a few times faster to load than pickled Records); this process rebuilds the Records
around the raw bytes it kept, sharing one Track object per track.
"""

import concurrent.futures
import functools
import hashlib
import logging
import marshal
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from protocol import canonical
from protocol.errors import ProtocolError, RecordError
from protocol.policy import Policy
from protocol.records import MAX_RECORD_BYTES, Record, decode
from protocol.track import Track

log = logging.getLogger("arnode.intake")

POOL_MIN_RECORDS = 128  # below this a batch is checked inline
CHUNK_RECORDS = 256  # records per task sent to a worker
KNOWN_TRACKS = 256  # Track objects kept for rebuilding records: a swarm has a handful of tracks

SIGNATURE_BYTES = 64  # Ed25519
# What is wrong with an invalid record: too big, no signature, a signature its author did not
# make, not plausible in this swarm (another track, before its creation, from the future, a
# val_bpb out of range), or not a record this version can read.
OVERSIZED, UNSIGNED, FORGED, IMPLAUSIBLE, MALFORMED = "oversized", "unsigned", "forged", "implausible", "malformed"


@dataclass(frozen=True)
class Rejection:
    kind: str
    reason: str


Verdicts = tuple[list[Record], list[Rejection]]  # (valid records, one per invalid one), in input order


class RejectedRecord(RecordError):
    """An invalid record; ``rejection`` says which kind of invalid."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.reason)
        self.rejection = rejection


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
        """The record in ``raw`` if it is valid and belongs in this swarm; else RejectedRecord (kind and reason)."""
        return _admitted(raw, now_ms, self.policy)

    def admit_many(self, raws: Sequence[bytes], now_ms: int) -> Verdicts:
        """(valid records, a Rejection per invalid one), in input order; on the pool when the batch is large."""
        parts = [self.start(raws[at : at + CHUNK_RECORDS], now_ms) for at in range(0, len(raws), CHUNK_RECORDS)]
        records, rejected = [], []
        for part in parts:
            part_records, part_rejected = part.result()
            records += part_records
            rejected += part_rejected
        return records, rejected

    def start(self, raws: Sequence[bytes], now_ms: int) -> "Judging":
        """Begin judging ``raws``: on a worker if the batch is large enough, else inline when its result is asked."""
        if self.workers < 2 or len(raws) < POOL_MIN_RECORDS:
            return Judging(self, raws, now_ms, None, None)
        pool = self._worker_pool()
        try:
            return Judging(self, raws, now_ms, pool, pool.submit(_judge_on_worker, raws, now_ms, self.policy))
        except BrokenProcessPool:  # it broke since the last batch: this one is checked here
            self._discard(pool)
            return Judging(self, raws, now_ms, None, None)

    def _worker_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            # forkserver, not fork: the daemon has threads, and a forked copy of them could deadlock
            context = multiprocessing.get_context("forkserver")
            self._pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context)
        return self._pool

    def _discard(self, pool: concurrent.futures.ProcessPoolExecutor) -> None:
        """Drop a broken pool, unless a fresh one already replaced it; the next large batch starts another."""
        if self._pool is pool:
            self._pool = None
        pool.shutdown(cancel_futures=True)


class Judging:
    """A batch being judged; ``result()`` blocks until it is (call it off the event loop)."""

    def __init__(
        self,
        intake: Intake,
        raws: Sequence[bytes],
        now_ms: int,
        pool: concurrent.futures.ProcessPoolExecutor | None,
        future: concurrent.futures.Future | None,
    ) -> None:
        self._intake, self._raws, self._now_ms, self._pool, self._future = intake, raws, now_ms, pool, future

    def result(self) -> Verdicts:
        if self._pool is not None and self._future is not None:
            try:
                return _rebuilt(self._raws, marshal.loads(self._future.result()))
            except BrokenProcessPool:  # a worker was killed from outside (e.g. for memory): a fresh pool next time
                log.warning("a record-verifying worker died; this batch is checked here and the pool restarted")
                self._intake._discard(self._pool)
        return _split(_judge(self._raws, self._now_ms, self._intake.policy))

    def cancel(self) -> None:
        """The verdict is no longer wanted: a worker that has not begun this batch skips it."""
        if self._future is not None:
            self._future.cancel()


def record_id_of(raw: bytes) -> bytes:
    """The ID that the record in ``raw`` would have: known before any judging."""
    return hashlib.sha256(raw).digest() if isinstance(raw, bytes) else b""


def _admitted(raw: bytes, now_ms: int, policy: Policy) -> Record:
    """The record in ``raw``; RejectedRecord (the kind and the reason) if it is invalid."""
    if len(raw) > MAX_RECORD_BYTES:
        raise RejectedRecord(Rejection(OVERSIZED, f"{len(raw)} bytes is over the record cap of {MAX_RECORD_BYTES}"))
    try:
        record = decode(raw, now_ms)
    except RecordError as err:
        raise RejectedRecord(Rejection(_kind_of(raw, str(err)), str(err))) from None
    try:
        policy.check(record)  # our track, after the swarm's creation, a plausible val_bpb
    except RecordError as err:
        raise RejectedRecord(Rejection(IMPLAUSIBLE, str(err))) from None
    return record


def _kind_of(raw: bytes, reason: str) -> str:
    """The kind of a record that ``decode`` refused for ``reason``: asked only of invalid records."""
    try:
        outer = canonical.unpack(raw, MAX_RECORD_BYTES)
    except ProtocolError:
        return MALFORMED
    if not (isinstance(outer, list) and len(outer) == 2 and all(isinstance(part, bytes) for part in outer)):
        return MALFORMED
    if len(outer[1]) != SIGNATURE_BYTES:
        return UNSIGNED
    if reason == "bad signature":  # protocol.envelope's words for a signature that does not verify
        return FORGED
    if reason.startswith("timestamp is"):  # from the future: a clock, not a forger
        return IMPLAUSIBLE
    return MALFORMED


def _judge(raws: Sequence[bytes], now_ms: int, policy: Policy) -> list[Record | Rejection]:
    """Each raw's record, or its Rejection."""
    out: list[Record | Rejection] = []
    for raw in raws:
        try:
            out.append(_admitted(raw, now_ms, policy))
        except RejectedRecord as err:
            out.append(err.rejection)
    return out


def _split(judged: list[Record | Rejection]) -> Verdicts:
    records, rejected = [], []
    for item in judged:
        (rejected if isinstance(item, Rejection) else records).append(item)
    return records, rejected


def _judge_on_worker(raws: Sequence[bytes], now_ms: int, policy: Policy) -> bytes:
    """A worker's task: per raw, (id, kind, author, ts_ms, body) or (kind, reason), as marshal bytes (plain data)."""
    judged = _judge(raws, now_ms, policy)
    return marshal.dumps(
        [
            (item.kind, item.reason)
            if isinstance(item, Rejection)
            else (item.id, item.kind, item.author, item.ts_ms, item.body)
            for item in judged
        ]
    )


def _rebuilt(raws: Sequence[bytes], verdicts: list) -> Verdicts:
    """The worker's verdicts on ``raws`` as Records, each equal to the one ``decode`` gives."""
    records, rejected = [], []
    for raw, verdict in zip(raws, verdicts, strict=True):
        if len(verdict) == 2:
            rejected.append(Rejection(*verdict))
            continue
        record_id, kind, author, ts_ms, body = verdict
        track = _track(tuple(body["track"].items())) if "track" in body else None
        records.append(Record(record_id, raw, kind, author, ts_ms, body, track))
    return records, rejected


@functools.lru_cache(maxsize=KNOWN_TRACKS)
def _track(wire: tuple) -> Track:
    return Track.from_wire(dict(wire))
