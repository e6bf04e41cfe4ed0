"""Anti-entropy sync: range-based set reconciliation of two ledgers over one byte stream.

Gossip loses records; this is what makes every node end up holding every valid record. In the
spirit of negentropy, each side works on a snapshot of its record keys ordered by (ts_ms, id):

1. Reconcile, in rounds that alternate between the sides. A round is a list of ranges, each sent
   as a fingerprint or, once the sender holds few records in it, as the list of its IDs. The
   receiver answers a range whose fingerprint differs by splitting it BRANCHES ways (or by listing
   its own IDs when it holds at most LEAF there), and settles a range that came as an ID list on
   the spot: it now knows what each side lacks there, so it will push its extra records and asks
   for the peer's by ID ("wants", carried on its next round). A round with no ranges ends this phase.
2. Transfer: both sides at once stream the records the other lacks in ~64 KB batches, then "done".

Messages are msgpack arrays whose first item names them; the session opens with a version
check. Every message is size-capped and checked field by field; rounds, ranges and wants are
capped too, and the whole session has a deadline. A responder reads a valid ``hello`` before it
touches its index, and every session shares the ledger's one immutable index, so a session
costs little more than its buffers. Received records go through the gate (node/store/gate.py)
like every other record: judged on its workers while the next batches are read, then decided
and stored. Records that are valid but do not count (their author is not a member, or over its
share) are refused without ending the session: two honest nodes may briefly disagree on the
roster. A misbehaving peer ends only its session: ``reconcile`` reports why (``peer_fault``) and
never raises for it, and the caller resets the stream rather than closing it, so the peer's
reads fail at once instead of waiting for its deadline. Our ledger only ever gains valid records.

The stream is anything with trio's HalfCloseableStream methods (``receive_some``, ``send_all``,
``send_eof``): a trio memory stream in tests, an adapter over a libp2p stream in the swarm.
"""

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

import msgpack
import trio

from node.clock import now_ms
from node.errors import NodeError
from node.store.gate import Gate
from node.store.intake import CHUNK_RECORDS, Judging
from protocol.fingerprint import FINGERPRINT_BYTES, HIGHEST, ID_BYTES, LOWEST, MAX_TS, Bound, RangeIndex
from protocol.records import MAX_RECORD_BYTES, Record

PROTOCOL_ID = "/arnode/sync/1"
VERSION = 1
BRANCHES = 16  # a mismatching range is split this many ways
LEAF = 2 * BRANCHES  # at most this many IDs in a range: list them instead of splitting
BATCH_BYTES = 64 * 1024  # target size of one write
MAX_MESSAGE_BYTES = 1024 * 1024  # a record batch may overshoot BATCH_BYTES by one record
MAX_ROUNDS = 32  # an honest session needs about log16(n / LEAF) + 2
MAX_RANGES_PER_ROUND = 1 << 16
RECEIVE_BYTES = 64 * 1024
LOOKUP_IDS = 256  # records read from the ledger per query
READ_AHEAD_BATCHES = 32  # ~64 KB batches read while earlier ones are judged and stored
JUDGING_BATCHES = 16  # worker-sized batches handed to the intake ahead of storing: work queued for every core
# Judged batches joined into one transaction: each one rewrites the ID index's pages, so bigger is
# faster, but storing runs on the event loop, ~40 us a record on an idle 2-core box (bench.sync's
# add_many against decode alone): 2048 keep each store under 100 ms there.
STORE_MIN_RECORDS = 2048
MAX_WANTED = 1 << 17  # IDs asked for in one session (~15 MB of set); a longer catch-up takes more sessions
HELLO_TIMEOUT_S = 10.0
FINGERPRINT, IDS = 0, 1  # how a range is described

log = logging.getLogger("arnode.sync")


@dataclass
class SyncReport:
    ok: bool = False
    reason: str = ""
    round_trips: int = 0  # reconciliation rounds sent and received, in pairs
    bytes_sent: int = 0
    bytes_received: int = 0
    records_received: int = 0  # new records the peer gave us
    records_sent: int = 0
    rejected: int = 0  # invalid records the peer sent; the first one's reason is in ``reason``
    refused: int = 0  # valid records that do not count here (not a member, over its share)
    peer_fault: bool = False  # the peer broke the protocol or sent invalid records: reset the stream
    seconds: float = 0.0
    rounds: int = 0  # reconciliation rounds sent and received


class PeerError(Exception):
    """The peer broke the protocol; the message is the one-line reason the session ended."""


class PeerLeft(PeerError):
    """The peer ended the session early, by closing or by saying why: no fault of the protocol's."""


async def reconcile(
    stream,
    gate: Gate,
    *,
    initiator: bool,
    deadline_s: float = 60.0,
    peer: str = "a peer",
    on_added: Callable[[list[Record]], None] | None = None,
) -> SyncReport:
    """Run one sync session on ``stream`` as initiator or responder; never raises for the peer's faults.

    Received records go through ``gate`` (judged on its workers while the next batch is read, then
    decided and stored; refusals are logged as from ``peer``) and the new ones to ``on_added``.
    The caller ends the stream: a reset if the report says ``peer_fault``, else a close.
    """
    session = _Session(stream, gate, f"sync with {peer}", on_added)
    report = session.report
    started = time.monotonic()
    with trio.move_on_after(deadline_s) as deadline:
        try:
            await session.run(initiator)
            report.ok, report.reason = True, "in sync"
        except PeerError as err:  # nothing more is sent: a peer that broke the protocol gets a reset
            report.reason = str(err)
            report.peer_fault = not isinstance(err, PeerLeft)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as err:
            report.reason = f"stream broke: {err or type(err).__name__}"
        except NodeError:
            raise  # our own disk or files: the daemon must hear of it
        except Exception as err:  # no input from a peer may end the process
            log.exception("sync session failed")
            report.reason = f"internal error: {type(err).__name__}: {err}"
    if deadline.cancelled_caught:
        report.reason = f"deadline of {deadline_s:g} s passed"
    report.round_trips = (report.rounds + 1) // 2
    report.seconds = time.monotonic() - started
    if not report.ok:
        log.info("sync session ended early: %s", report.reason)
    return report


class _Session:
    def __init__(self, stream, gate: Gate, source: str, on_added: Callable[[list[Record]], None] | None) -> None:
        self.stream = stream
        self.gate = gate
        self.ledger = gate.ledger
        self.source = source  # who sent what the gate refuses, in its log
        self.on_added = on_added
        self.report = SyncReport()
        self.unpacker = msgpack.Unpacker(
            max_buffer_size=MAX_MESSAGE_BYTES, raw=False, strict_map_key=True, max_ext_len=0, use_list=True
        )
        self.message_end = 0  # stream offset where the last whole message ended
        self.to_send: dict[bytes, None] = {}  # record IDs the peer lacks, in order, without repeats
        self.wanted: set[bytes] = set()  # IDs we asked for
        self.refused: set[bytes] = set()  # IDs the peer sent that the ledger refused

    async def run(self, initiator: bool) -> None:
        if initiator:
            index = self.ledger.range_index()
            await self.send([["hello", VERSION]])
            await self.send_round(_describe(index, LOWEST, HIGHEST, 0, len(index)), [])
        else:
            with trio.move_on_after(HELLO_TIMEOUT_S) as waiting:
                await self.expect_hello()
            if waiting.cancelled_caught:
                raise PeerError(f"no hello within {HELLO_TIMEOUT_S:g} s")
            index = self.ledger.range_index()
        await self.reconcile_ranges(index)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.send_records)
                await self.receive_records()
        except BaseExceptionGroup as group:
            raise _first_failure(group) from None

    # --- phase 1: reconcile ---

    async def expect_hello(self) -> None:
        message = await self.receive()
        if message[0] != "hello" or len(message) != 2:
            raise PeerError(f"expected hello, got {_name(message)}")
        if message[1] != VERSION:
            raise PeerError(f"peer speaks sync version {str(message[1])[:12]}, we speak {VERSION}")

    async def reconcile_ranges(self, index: RangeIndex) -> None:
        for _ in range(MAX_ROUNDS):
            entries = await self.receive_round(index)
            if not entries:
                return
            reply, wants = self.answer(index, entries)
            await self.send_round(reply, wants)
            if not reply:
                return
        raise PeerError(f"no agreement after {MAX_ROUNDS} rounds")

    def answer(self, index: RangeIndex, entries: list) -> tuple[list, list[bytes]]:
        """Our reply to one round of the peer's ranges, and the IDs we want from it."""
        reply, wants = [], []
        for lower, upper, mode, payload in entries:
            start, stop = index.position(lower), index.position(upper)
            if mode == FINGERPRINT:
                if index.fingerprint(start, stop) == payload:
                    continue
                if stop - start <= LEAF:
                    reply.extend(_describe(index, lower, upper, start, stop))
                else:
                    for part in index.split(lower, upper, start, stop, BRANCHES):
                        reply.extend(_describe(index, *part, leaf=1))
            else:
                theirs, ours = set(payload), index.ids(start, stop)
                self.to_send.update((record_id, None) for record_id in ours if record_id not in theirs)
                missing = theirs.difference(ours, self.wanted)
                room = MAX_WANTED - len(self.wanted)
                found = [record_id for record_id in payload if record_id in missing and not self.ledger.has(record_id)]
                wants.extend(found[:room])
                self.wanted.update(found[:room])
        return reply, wants

    async def send_round(self, entries: list, wants: list[bytes]) -> None:
        """One round as ~64 KB messages: ranges first, then wants, the last message marked."""
        messages, chunk, wanted, size = [], [], [], 0
        for (lower_ts, lower_id), (upper_ts, upper_id), mode, payload in entries:
            chunk.append([lower_ts, lower_id, upper_ts, upper_id, mode, payload])
            size += _entry_size(mode, payload)
            if size >= BATCH_BYTES:
                messages.append(["ranges", chunk, [], False])
                chunk, size = [], 0
        for record_id in wants:
            wanted.append(record_id)
            size += ID_BYTES + 2
            if size >= BATCH_BYTES:
                messages.append(["ranges", chunk, wanted, False])
                chunk, wanted, size = [], [], 0
        messages.append(["ranges", chunk, wanted, True])
        self.report.rounds += 1
        for message in messages:
            await self.send([message])

    async def receive_round(self, index: RangeIndex) -> list:
        """The peer's next round, checked: ranges in order and apart; its wants are noted."""
        entries: list = []
        previous_upper = LOWEST
        while True:
            message = await self.receive()
            if message[0] != "ranges" or len(message) != 4:
                raise PeerError(f"expected ranges, got {_name(message)}")
            _, chunk, wants, last = message
            if not isinstance(chunk, list) or not isinstance(wants, list) or not isinstance(last, bool):
                raise PeerError("malformed ranges message")
            for raw_entry in chunk:
                entry = _check_entry(raw_entry)
                if entry[0] < previous_upper:
                    raise PeerError("ranges overlap or are out of order")
                previous_upper = entry[1]
                entries.append(entry)
            self.note_wants(wants, index)
            if len(entries) > MAX_RANGES_PER_ROUND:
                raise PeerError(f"a round of more than {MAX_RANGES_PER_ROUND} ranges")
            if last:
                self.report.rounds += 1
                return entries
            if not chunk and not wants:
                raise PeerError("an empty message in the middle of a round")

    def note_wants(self, wants: list, index: RangeIndex) -> None:
        for record_id in wants:
            if type(record_id) is not bytes or len(record_id) != ID_BYTES:
                raise PeerError("a wanted ID is not 32 bytes")
            self.to_send[record_id] = None
        if len(self.to_send) > len(index) + LEAF:
            raise PeerError("peer wants more records than we hold")

    # --- phase 2: transfer ---

    async def send_records(self) -> None:
        """Everything the peer lacks in ~64 KB batches (IDs we never had are skipped), then done."""
        batch, size = [], 0
        wanted = list(self.to_send)
        for start in range(0, len(wanted), LOOKUP_IDS):
            for raw in self.ledger.get_many(wanted[start : start + LOOKUP_IDS]):
                batch.append(raw)
                size += len(raw)
                if size >= BATCH_BYTES:
                    await self.send([["records", batch]])
                    self.report.records_sent += len(batch)
                    batch, size = [], 0
        self.report.records_sent += len(batch)
        await self.send(([["records", batch]] if batch else []) + [["done"]])
        await self.stream.send_eof()

    async def receive_records(self) -> None:
        """Read, judge and store at once, as a pipeline: while batch k is stored, the next ones are being
        judged on every core and more are read.

        What arrived before a peer's fault is still judged and kept; the fault ends the session after.
        """
        to_judge, batches = trio.open_memory_channel[list[bytes]](READ_AHEAD_BATCHES)
        to_store, judging = trio.open_memory_channel[Judging](JUDGING_BATCHES)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.judge_records, batches, to_store)
            nursery.start_soon(self.store_records, judging)
            async with to_judge:
                fault = await self.forward_batches(to_judge)
        if fault is not None:
            raise fault
        unsent = sum(1 for i in self.wanted if i not in self.refused and not self.ledger.has(i))
        if unsent:
            raise PeerError(f"peer listed {unsent} records it did not send")

    async def forward_batches(self, to_judge: trio.MemorySendChannel[list[bytes]]) -> Exception | None:
        """Each batch the peer sends, until done; the peer's fault, if any, returned rather than raised."""
        try:
            while (message := await self.receive()) != ["done"]:
                if message[0] != "records" or len(message) != 2 or not isinstance(message[1], list):
                    raise PeerError(f"expected records or done, got {_name(message)}")
                if not all(type(raw) is bytes and len(raw) <= MAX_RECORD_BYTES for raw in message[1]):
                    raise PeerError("a record in a batch is not bytes under the size cap")
                await to_judge.send(message[1])
        except (PeerError, trio.BrokenResourceError, trio.ClosedResourceError) as fault:
            return fault
        return None

    async def judge_records(
        self, batches: trio.MemoryReceiveChannel[list[bytes]], to_store: trio.MemorySendChannel[Judging]
    ) -> None:
        """Hand queued batches, joined into worker-sized ones, to the gate without waiting for its verdict.

        The workers verify the next batches while the ones before are stored.
        """
        async with to_store:
            async for raws in batches:
                while len(raws) < CHUNK_RECORDS:
                    try:
                        raws = raws + batches.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await to_store.send(self.gate.start(raws, now_ms()))

    async def store_records(self, judging: trio.MemoryReceiveChannel[Judging]) -> None:
        """Insert verdicts in the order the batches came, several judged batches to a transaction.

        When the session ends early, batches still queued are taken back from the workers.
        """
        try:
            await self._store_judged(judging)
        finally:
            with suppress(trio.WouldBlock, trio.EndOfChannel):
                while True:
                    judging.receive_nowait().cancel()

    async def _store_judged(self, judging: trio.MemoryReceiveChannel[Judging]) -> None:
        async for first in judging:
            records, rejected = await trio.to_thread.run_sync(first.result)
            while len(records) < STORE_MIN_RECORDS and not rejected:
                try:
                    more = judging.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                more_records, rejected = await trio.to_thread.run_sync(more.result)
                records += more_records
            self.gate.note_rejected(rejected, self.source)
            added, refused = self.gate.store(records, self.source)
            self.report.records_received += len(added)
            self.refused.update(refused)
            self.report.refused += len(refused)
            if added and self.on_added is not None:
                self.on_added(added)
            if rejected:
                self.report.rejected += len(rejected)
                raise PeerError(f"peer sent {len(rejected)} invalid records: {rejected[0].reason}")

    # --- framing ---

    async def send(self, messages: list) -> None:
        data = b"".join(msgpack.packb(message, use_bin_type=True) for message in messages)
        self.report.bytes_sent += len(data)
        await self.stream.send_all(data)

    async def receive(self) -> list:
        """The next message, a non-empty array naming itself; PeerError on garbage, oversize or EOF."""
        while True:
            try:
                message = next(self.unpacker)
            except StopIteration:
                pass
            except (ValueError, msgpack.UnpackException) as err:
                raise PeerError(f"not msgpack: {type(err).__name__}") from None
            else:
                if not isinstance(message, list) or not message or not isinstance(message[0], str):
                    raise PeerError("a message is an array that starts with its name")
                if message[0] == "error" and len(message) == 2:
                    raise PeerLeft(f"peer gave up: {str(message[1])[:200]!r}")
                self.message_end = self.unpacker.tell()
                return message
            data = await self.stream.receive_some(RECEIVE_BYTES)
            if not data and self.report.bytes_received > self.message_end:
                raise PeerError("the stream ended inside a message")  # a cut message is garbage, not a goodbye
            if not data:
                raise PeerLeft("peer closed the stream mid-session")
            self.report.bytes_received += len(data)
            try:
                self.unpacker.feed(data)
            except msgpack.BufferFull:
                raise PeerError(f"a message over {MAX_MESSAGE_BYTES} bytes") from None


def _describe(index: RangeIndex, lower: Bound, upper: Bound, start: int, stop: int, leaf: int = LEAF) -> list:
    """How we present ``[lower, upper)``: its IDs when we hold at most ``leaf`` there, else its fingerprint.

    The parts of a split range go as fingerprints unless (nearly) empty: most of them usually match,
    and 16 fingerprints cost less than 16 ID lists.
    """
    if stop - start <= leaf:
        return [(lower, upper, IDS, index.ids(start, stop))]
    return [(lower, upper, FINGERPRINT, index.fingerprint(start, stop))]


def _entry_size(mode: int, payload: bytes | list[bytes]) -> int:
    """A generous estimate of a range's encoded size: two bounds and the payload."""
    return 2 * (ID_BYTES + 10) + (len(payload) * (ID_BYTES + 2) if mode == IDS else FINGERPRINT_BYTES + 2)


def _check_entry(raw_entry: object) -> tuple[Bound, Bound, int, object]:
    """A range from the wire: [lower ts, lower prefix, upper ts, upper prefix, mode, payload]."""
    if not isinstance(raw_entry, list) or len(raw_entry) != 6:
        raise PeerError("a range is [lower ts, lower id, upper ts, upper id, mode, payload]")
    lower_ts, lower_id, upper_ts, upper_id, mode, payload = raw_entry
    lower, upper = _check_bound(lower_ts, lower_id), _check_bound(upper_ts, upper_id)
    if not lower < upper:
        raise PeerError("a range ends before it starts")
    if mode == FINGERPRINT and type(mode) is int:
        if type(payload) is not bytes or len(payload) != FINGERPRINT_BYTES:
            raise PeerError(f"a fingerprint is {FINGERPRINT_BYTES} bytes")
    elif mode == IDS and type(mode) is int:
        if not isinstance(payload, list) or len(payload) > LEAF:
            raise PeerError(f"an ID list holds at most {LEAF} IDs")
        if not all(type(record_id) is bytes and len(record_id) == ID_BYTES for record_id in payload):
            raise PeerError("an ID is 32 bytes")
    else:
        raise PeerError(f"unknown range mode {str(mode)[:12]}")
    return lower, upper, mode, payload


def _check_bound(ts_ms: object, prefix: object) -> Bound:
    if type(ts_ms) is not int or not 0 <= ts_ms <= MAX_TS:
        raise PeerError("a bound's timestamp is not an integer in range")
    if type(prefix) is not bytes or len(prefix) > ID_BYTES:
        raise PeerError("a bound's ID prefix is not at most 32 bytes")
    return ts_ms, prefix


def _first_failure(group: BaseExceptionGroup) -> BaseException:
    """The exception that ended the transfer: the first one that is not trio cancelling the rest."""
    leaves = [error for error in _leaves(group) if not isinstance(error, trio.Cancelled)]
    return leaves[0] if leaves else group


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _name(message: list) -> str:
    return repr(message[0])[:40]
