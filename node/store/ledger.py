"""The ledger: a grow-only set of signed records (a G-Set CRDT) in one SQLite file.

The raw record bytes are the source of truth; the columns beside them are derived once, at
insert, so views can run the acceptance rule over 100k results without decoding a record.
Nothing is ever updated or deleted, so every view is a pure function of the set, and the
set's size names its version: views are cached until it grows.

The ledger only stores: what may come in is decided once, by the gate (gate.py), and ``store``
trusts it. Membership (protocol/roster.py) is derived from the set too, and every view, the sync
index included, reads only the records of those who count now: a revocation hides a member's
records wherever they are, before or after it arrived, and a node that stored them first shows
the same views as one that never saw them.

One writer: a Ledger belongs to one task and its calls are short and synchronous. Durability:
WAL with synchronous=NORMAL, so a committed batch survives the process being killed; a power
cut may lose the last batches, which anti-entropy sync brings back from peers.
"""

import functools
import logging
import os
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from node.errors import NodeError
from node.store.gate import AddReport, Gate
from node.store.intake import record_id_of
from node.store.members import WINDOW_MS, Usage, UsageRows
from node.store.views import Views
from protocol import canonical, envelope
from protocol.acceptance import ConfigStats, Run, TrackView
from protocol.config import Config
from protocol.errors import ConfigError
from protocol.fingerprint import Key, RangeIndex
from protocol.policy import Policy
from protocol.records import MAX_RECORD_BYTES, ROSTER_KINDS, Record, decode
from protocol.roster import Roster, build_roster
from protocol.track import Track

log = logging.getLogger("arnode.ledger")

APPLICATION_ID = 0x61726E6C  # "arnl": marks an SQLite file as an arnode ledger
FORMAT = "arnode-ledger/1"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_KNOWN_DIFFS = 4096  # packed diffs kept: a track's configs in a long catch-up, each packed once
_RUN_COLUMNS = "id, ts_ms, author, track, config, parent, diff, outcome, val_bpb, replicates"  # what a Run holds
_SQL_VARIABLES = 500  # IDs per IN (...) query, well under SQLite's limit on bound variables
_FAR_FUTURE_MS = 2**62  # reading back our own records: the future-timestamp check was done at insert

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tracks (key TEXT PRIMARY KEY, wire BLOB NOT NULL);
CREATE TABLE records (
    seq INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    ts_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    author TEXT NOT NULL,
    track TEXT NOT NULL REFERENCES tracks(key),
    parent TEXT NOT NULL,
    diff BLOB NOT NULL,
    config TEXT,
    outcome TEXT,
    val_bpb INTEGER,
    replicates BLOB,
    test_bpb INTEGER
);
CREATE INDEX records_by_order ON records (ts_ms, id);
CREATE INDEX records_by_config ON records (config);
CREATE INDEX records_by_track ON records (track, kind);
CREATE TABLE raw (seq INTEGER PRIMARY KEY REFERENCES records(seq), bytes BLOB NOT NULL);
"""


class LedgerError(NodeError):
    """The ledger file is corrupt, foreign or unreadable; the message names it."""


@dataclass(frozen=True)
class PendingWork:
    """Work this node could pick up next, most useful first."""

    replicate: tuple[tuple[str, ConfigStats], ...]  # (track key, candidate) that we have not run ourselves
    hypotheses: tuple[Record, ...]  # hypothesis records no result on their track has tried yet


@dataclass(frozen=True)
class HypothesisStatus:
    """A hypothesis record and the configs of the results that ran it (same track, parent and diff)."""

    record: Record
    answers: tuple[str, ...]

    @property
    def answered(self) -> bool:
        return bool(self.answers)


class Ledger:
    def __init__(self, path: Path, db: sqlite3.Connection, policy: Policy) -> None:
        self.path = path
        self.policy = policy
        self._db = db
        self._depth = 0  # transactions open: the outermost one commits
        self._count = db.execute("SELECT count(*) FROM records").fetchone()[0]
        self._tracks = self._read_tracks()
        self._keys: tuple[tuple, list[Key]] = ((), [])  # ((count, roster version) it was read at, keys)
        self._index: tuple[tuple, RangeIndex | None] = ((), None)
        # Per track: its results as Runs, read at the first view and then kept current by inserts, and
        # its view with the number of runs it was computed from. A record changes only its own track.
        self._runs: dict[str, list[Run]] = {}
        self._views = Views(policy)  # each track's view, kept until its runs or the roster change
        self._roster_records = [decode(raw, _FAR_FUTURE_MS) for raw in self._raw_of_kinds(ROSTER_KINDS)]
        self.roster: Roster = build_roster(policy.admins, self._roster_records)
        self._roster_version = 0  # grows with every roster change: what member-filtered caches are keyed on
        self._member_runs: dict[str, tuple[tuple[int, int], list[Run]]] = {}
        self._has_test_bpb = _has_test_bpb(db)  # false only for a reader of a ledger no writer has migrated
        self.usage = Usage(self._usage_rows)  # each member's share used, kept by the gate that admits
        self._gate: Gate | None = None  # for add and add_many

    # --- opening ---

    @classmethod
    def open(cls, path: Path, policy: Policy, read_only: bool = False) -> "Ledger":
        """Open the ledger at ``path``, creating it if absent; a file that is not one is never touched.

        ``read_only`` is for readers beside a running daemon: SQLite's mode=ro, no integrity scan and
        no journal change (the writer checks and sets those), and the file must exist.
        """
        path = Path(path)
        if not path.exists() and not read_only:
            _create(path)
        _check_header(path)
        try:
            mode = "ro" if read_only else "rw"
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True, isolation_level=None)
        except sqlite3.Error as err:
            raise LedgerError(f"cannot open ledger {path}: {err}") from None
        try:
            _check_contents(db, path, integrity=not read_only)
            if not read_only:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                _add_test_bpb(db)
            db.execute("PRAGMA cache_size=-65536")  # 64 MB: random record IDs touch the whole ID index
            return cls(path, db, policy)
        except sqlite3.DatabaseError as err:
            db.close()
            raise LedgerError(f"ledger {path} is corrupt ({err}); move it away to start a new one") from None
        except LedgerError:
            db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the set ---

    def __len__(self) -> int:
        return self._count

    def has(self, record_id: bytes) -> bool:
        return self._db.execute("SELECT 1 FROM records WHERE id = ?", (record_id,)).fetchone() is not None

    def get_many(self, record_ids: list[bytes]) -> list[bytes]:
        """The raw bytes of those of ``record_ids`` we hold (in record order within each 500)."""
        found = []
        for start in range(0, len(record_ids), _SQL_VARIABLES):
            chunk = record_ids[start : start + _SQL_VARIABLES]
            query = (
                "SELECT raw.bytes FROM records JOIN raw USING (seq)"
                f" WHERE records.id IN ({','.join('?' * len(chunk))}) ORDER BY ts_ms, id"
            )
            found += [raw for (raw,) in self._db.execute(query, chunk)]
        return found

    def add(self, raw: bytes, now_ms: int | None = None) -> Record | None:
        """Shorthand for tools and tests: ``Gate.add`` through this ledger's inline gate."""
        return self.gate().add(raw, now_ms)

    def add_many(self, raws: Iterable[bytes], now_ms: int | None = None) -> AddReport:
        """Shorthand for tools and tests: ``Gate.add_many`` through this ledger's inline gate."""
        return self.gate().add_many(raws, now_ms)

    def gate(self) -> Gate:
        """This ledger's gate that verifies inline, on this thread (a node's swarm has its own, with workers)."""
        if self._gate is None:
            self._gate = Gate(self, workers=1)
        return self._gate

    def store(self, records: list[Record]) -> list[Record]:
        """Keep ``records``, which the gate admitted and none of which we hold (``new_records``), in the
        caller's transaction or one of their own; a roster record rebuilds the roster. Judges nothing."""
        if not records:
            return records
        with self.transaction():
            self._insert_new(records)
            roster = [record for record in records if record.kind in ROSTER_KINDS]
            if roster:
                self._roster_records += roster
                self._set_roster(build_roster(self.policy.admins, self._roster_records))
        return records

    def new_records(self, records: Iterable[Record]) -> list[Record]:
        """Those of ``records`` we do not hold, each once, in their order."""
        by_id = {record.id: record for record in records}
        held = self._held(list(by_id))
        return [record for record_id, record in by_id.items() if record_id not in held]

    def unheld(self, raws: Iterable[bytes]) -> list[bytes]:
        """Those of ``raws`` whose records we do not hold yet, each once: what is worth verifying."""
        by_id = {record_id_of(raw): raw for raw in raws}
        held = self._held(list(by_id))
        return [raw for record_id, raw in by_id.items() if record_id not in held]

    def is_member(self, peer_id: str) -> bool:
        return self.roster.is_member(peer_id)

    def holdout_pairs(self, track_key: str, configs: Iterable[str]) -> dict[str, list[tuple[int, int]]]:
        """Per config, (val_bpb, test_bpb) of each ok run by a member that measured the holdout, read from
        the stored columns (no record decoded). A reader of a ledger from before the test_bpb column,
        which no writer has opened since, sees none."""
        wanted = sorted(set(configs))
        pairs: dict[str, list[tuple[int, int]]] = defaultdict(list)
        if not self._has_test_bpb:
            return {}
        for start in range(0, len(wanted), _SQL_VARIABLES):
            chunk = wanted[start : start + _SQL_VARIABLES]
            rows = self._db.execute(
                "SELECT config, author, val_bpb, test_bpb FROM records WHERE kind = 'result' AND track = ?"
                f" AND config IN ({','.join('?' * len(chunk))}) AND outcome = 'ok' AND test_bpb IS NOT NULL",
                (track_key, *chunk),
            )
            for config, author, val_bpb, test_bpb in rows:
                if self.roster.is_member(author):
                    pairs[config].append((val_bpb, test_bpb))
        return dict(pairs)

    def _usage_rows(self) -> UsageRows:
        """(author, minute, records, bytes) of every record held: what each member's share starts from."""
        return self._db.execute(
            "SELECT author, ts_ms / ?, count(*), sum(length(raw.bytes)) FROM records JOIN raw USING (seq)"
            " GROUP BY 1, 2",
            (WINDOW_MS,),
        )

    def _held(self, record_ids: list[bytes]) -> set[bytes]:
        """Those of ``record_ids`` already in the set: one query per batch, not one per record."""
        held = set()
        for start in range(0, len(record_ids), _SQL_VARIABLES):
            chunk = record_ids[start : start + _SQL_VARIABLES]
            query = f"SELECT id FROM records WHERE id IN ({','.join('?' * len(chunk))})"
            held.update(record_id for (record_id,) in self._db.execute(query, chunk))
        return held

    def records(self, kind: str | None = None) -> Iterator[Record]:
        """Every record (of ``kind``) that counts, in (ts_ms, id) order, decoded again: slow, for exports and tools."""
        query = (
            "SELECT author, kind, raw.bytes FROM records JOIN raw USING (seq)"
            " WHERE ? IS NULL OR kind = ? ORDER BY ts_ms, id"
        )
        for author, row_kind, raw in self._db.execute(query, (kind, kind)):
            if self.roster.counts(author, row_kind):
                yield decode(raw, _FAR_FUTURE_MS)

    def recent(self, limit: int) -> list[Record]:
        """The ``limit`` latest records, newest first."""
        query = "SELECT raw.bytes FROM records JOIN raw USING (seq) ORDER BY ts_ms DESC, id DESC LIMIT ?"
        return [decode(raw, _FAR_FUTURE_MS) for (raw,) in self._db.execute(query, (limit,))]

    def records_by_id(self, record_ids: list[bytes]) -> list[Record]:
        """Those of ``record_ids`` we hold, decoded, in (ts_ms, id) order within each chunk."""
        return [decode(raw, _FAR_FUTURE_MS) for raw in self.get_many(record_ids)]

    def keys(self) -> list[Key]:
        """The (ts_ms, id) of every record that counts, in that order (read-only): what set reconciliation
        works on, so nodes that agree on the roster agree on the set, whatever else they once stored."""
        version = (self._count, self._roster_version)
        if self._keys[0] != version:
            rows = self._db.execute("SELECT ts_ms, id, author, kind FROM records ORDER BY ts_ms, id")
            counts = self.roster.counts
            self._keys = (version, [(ts, record_id) for ts, record_id, author, kind in rows if counts(author, kind)])
        return self._keys[1]

    def range_index(self) -> RangeIndex:
        """An immutable index of ``keys()``, shared by every sync session until the set or roster changes."""
        keys = self.keys()
        if self._index[0] != self._keys[0] or self._index[1] is None:
            self._index = (self._keys[0], RangeIndex(keys))
        return self._index[1]

    def _insert_new(self, records: list[Record]) -> list[Record]:
        """New records, none held, each once: two statements for the batch, not two per record.

        Each record's seq is given here, after the highest one (what SQLite would pick), so its raw
        bytes go in beside it without reading the seqs back.
        """
        track_keys = [record.track.key if record.track else "" for record in records]
        for record, key in zip(records, track_keys, strict=True):
            if key and key not in self._tracks:
                wire = canonical.pack(record.track.to_wire())
                self._db.execute("INSERT OR IGNORE INTO tracks VALUES (?, ?)", (key, wire))
                self._tracks[key] = record.track
        last_seq = self._db.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]
        seqs = range(last_seq + 1, last_seq + 1 + len(records))
        self._db.executemany(
            "INSERT INTO records (seq, id, ts_ms, kind, author, track, parent, diff, config, outcome, val_bpb,"
            " replicates, test_bpb) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(seq, *_columns(record, key)) for seq, record, key in zip(seqs, records, track_keys, strict=True)],
        )
        self._db.executemany(
            "INSERT INTO raw VALUES (?, ?)", [(seq, record.raw) for seq, record in zip(seqs, records, strict=True)]
        )
        self._count += len(records)
        self._extend_runs(Run.from_record(record) for record in records if record.kind == "result")
        return records

    def _extend_runs(self, runs: Iterable[Run]) -> None:
        """The loaded tracks' Runs gain the new ``runs``: what a new record changes in the views."""
        for run in runs:
            if run.track.key in self._runs:
                self._runs[run.track.key].append(run)

    def catch_up(self) -> int:
        """Take in what another connection to this file committed since we last looked, as our own inserts
        would have (for a reader beside the writer, e.g. the daemon's view thread); how many records.

        Records are never deleted and each batch's seqs follow the highest, so seqs run 1..count, the
        new records are those after our count, and the highest seq now bounds what every query here
        reads, whatever commits meanwhile. Results come from their columns, as the first view reads
        them; only roster records are decoded.
        """
        seen, top = self._count, self._db.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]
        if top == seen:
            return 0
        new = "WHERE seq > ? AND seq <= ?"
        tracks = {track for (track,) in self._db.execute(f"SELECT DISTINCT track FROM records {new}", (seen, top))}
        if not tracks <= {"", *self._tracks}:
            self._tracks = self._read_tracks()
        results = self._db.execute(f"SELECT {_RUN_COLUMNS} FROM records {new} AND kind = 'result'", (seen, top))
        self._extend_runs(self._runs_from_rows(results))
        kinds = sorted(ROSTER_KINDS)
        rows = self._db.execute(
            f"SELECT raw.bytes FROM records JOIN raw USING (seq) {new}"
            f" AND kind IN ({','.join('?' * len(kinds))}) ORDER BY ts_ms, id",
            (seen, top, *kinds),
        )
        roster = [decode(raw, _FAR_FUTURE_MS) for (raw,) in rows]
        if roster:
            self._roster_records += roster
            self._set_roster(build_roster(self.policy.admins, self._roster_records))
        self._count = top
        self.usage.forget()  # read again when asked: the other connection counted those records
        return top - seen

    def _set_roster(self, roster: Roster) -> None:
        if roster != self.roster:
            self.roster = roster
            self._roster_version += 1

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT around the body, or part of the caller's if one is open; on any
        failure ROLLBACK and forget what the body counted."""
        if self._depth:
            yield
            return
        count, runs = self._count, {track: len(runs) for track, runs in self._runs.items()}
        roster_records = len(self._roster_records)
        try:
            self._depth += 1
            self._db.execute("BEGIN IMMEDIATE")
            yield
            self._db.execute("COMMIT")
        except BaseException as err:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._count = count
            self._tracks = self._read_tracks()
            for track, length in runs.items():
                del self._runs[track][length:]
            del self._roster_records[roster_records:]
            self._set_roster(build_roster(self.policy.admins, self._roster_records))
            self.usage.forget()
            if isinstance(err, sqlite3.Error):
                raise LedgerError(f"cannot write ledger {self.path}: {err}") from None
            raise
        finally:
            self._depth -= 1

    # --- views: pure functions of the set ---

    def assess(self) -> dict[str, TrackView]:
        """The acceptance rule's view of every track with results, keyed by track key."""
        ordered = sorted(self._tracks, key=self._tracks.__getitem__)
        return {key: view for key in ordered if (view := self.view(key)) is not None}

    def view(self, track_key: str) -> TrackView | None:
        """The acceptance rule's view of one track, None while it has no results."""
        return self._views.view(track_key, self.runs(track_key), self._roster_version)

    def leaderboard(self, track_key: str) -> tuple[ConfigStats, ...]:
        """Every config tried on a track, best evidence first (empty for an unknown track)."""
        view = self.view(track_key)
        return view.leaderboard if view else ()

    def best(self) -> dict[str, ConfigStats | None]:
        """Each track's best accepted config, or None while it has none."""
        return {key: view.best for key, view in self.assess().items()}

    def candidates(self) -> dict[str, tuple[ConfigStats, ...]]:
        """Per track, unverified configs that beat the best: what verifiers re-run first."""
        return {key: view.candidates for key, view in self.assess().items()}

    def pending_work(self, me: str) -> PendingWork:
        """Candidates that ``me`` (a peer ID) has not run, then hypotheses nobody has tried yet.

        A hypothesis counts as tried once a result on its track starts from the same parent with
        the same diff, whoever ran it.
        """
        mine = {
            (track, config)
            for track, config in self._db.execute(
                "SELECT DISTINCT track, config FROM records WHERE kind = 'result' AND author = ?", (me,)
            )
        }
        replicate = tuple(
            (key, stats)
            for key, candidates in self.candidates().items()
            for stats in candidates
            if (key, stats.config) not in mine
        )
        untried = self._db.execute(
            "SELECT h.author, raw.bytes FROM records AS h JOIN raw USING (seq) WHERE h.kind = 'hypothesis' AND NOT"
            " EXISTS (SELECT 1 FROM records AS r WHERE r.kind = 'result' AND r.track = h.track AND r.parent = h.parent"
            " AND r.diff = h.diff) ORDER BY h.ts_ms, h.id"
        )
        hypotheses = tuple(decode(raw, _FAR_FUTURE_MS) for author, raw in untried if self.roster.is_member(author))
        return PendingWork(replicate, hypotheses)

    def hypotheses(self, track_key: str | None = None) -> tuple[HypothesisStatus, ...]:
        """Every hypothesis by a member (on ``track_key``), oldest first, each with the configs of the
        members' results that ran it. Two queries, whatever the number of hypotheses: one pass over the
        results finds every answer."""
        answers: dict[tuple[str, str, bytes], set[str]] = defaultdict(set)
        results = self._db.execute(
            "SELECT track, parent, diff, config, author FROM records"
            " WHERE kind = 'result' AND (? IS NULL OR track = ?)",
            (track_key, track_key),
        )
        for track, parent, diff, config, author in results:
            if self.roster.is_member(author):
                answers[(track, parent, diff)].add(config)
        rows = self._db.execute(
            "SELECT h.author, h.track, h.parent, h.diff, raw.bytes FROM records AS h JOIN raw USING (seq)"
            " WHERE h.kind = 'hypothesis' AND (? IS NULL OR h.track = ?) ORDER BY h.ts_ms, h.id",
            (track_key, track_key),
        )
        return tuple(
            HypothesisStatus(decode(raw, _FAR_FUTURE_MS), tuple(sorted(answers.get((track, parent, diff), ()))))
            for author, track, parent, diff, raw in rows
            if self.roster.is_member(author)
        )

    def resolve_config(self, config_hash: str) -> Config:
        """The full config named by ``config_hash``, rebuilt from result links back to a default.

        The acceptance rule's Lineage picks, for each config, the first link (in record order) that
        really hashes to it, so a lying record cannot hide a config. ConfigError if none leads home.
        """
        config = self._views.resolve(config_hash, (self._count, self._roster_version), self._every_run)
        if config is None:
            raise ConfigError(f"config {config_hash[:12]} does not lead back to a default")
        return config

    def _every_run(self) -> Iterator[Run]:
        return (run for key in self._tracks for run in self.runs(key))

    def runs(self, track_key: str) -> list[Run]:
        """A track's results by members as the acceptance rule's Runs (read-only): built from the columns
        once, without decoding a record, then kept current by inserts and filtered again when the roster
        changes. Filtering here, before the rule sees them, is what makes a revoked member's runs vanish."""
        if track_key not in self._runs:
            self._runs[track_key] = list(self._read_runs(track_key)) if track_key in self._tracks else []
        every = self._runs[track_key]
        if self.roster.open:
            return every
        version = (len(every), self._roster_version)
        cached = self._member_runs.get(track_key)
        if cached is None or cached[0] != version:
            members = self.roster.members
            cached = self._member_runs[track_key] = (version, [run for run in every if run.author in members])
        return cached[1]

    def _raw_of_kinds(self, kinds: Iterable[str]) -> list[bytes]:
        kinds = sorted(kinds)
        query = (
            "SELECT raw.bytes FROM records JOIN raw USING (seq)"
            f" WHERE kind IN ({','.join('?' * len(kinds))}) ORDER BY ts_ms, id"
        )
        return [raw for (raw,) in self._db.execute(query, kinds)]

    def _read_tracks(self) -> dict[str, Track]:
        rows = self._db.execute("SELECT key, wire FROM tracks")
        return {key: Track.from_wire(canonical.unpack(wire, MAX_RECORD_BYTES)) for key, wire in rows}

    def _read_runs(self, track_key: str) -> Iterator[Run]:
        query = f"SELECT {_RUN_COLUMNS} FROM records WHERE track = ? AND kind = 'result' ORDER BY ts_ms, id"
        return self._runs_from_rows(self._db.execute(query, (track_key,)))

    def _runs_from_rows(self, rows: Iterable[tuple]) -> Iterator[Run]:
        """Runs from rows of _RUN_COLUMNS, without decoding a record."""
        diffs: dict[bytes, dict] = {}  # runs of one config share a diff: decode it once
        for record_id, ts_ms, author, track, config, parent, diff, outcome, val_bpb, replicates in rows:
            if diff not in diffs:
                diffs[diff] = canonical.unpack(diff, MAX_RECORD_BYTES)
            track_of = self._tracks[track]
            yield Run(record_id, ts_ms, author, track_of, config, parent, diffs[diff], outcome, val_bpb, replicates)


def _packed_diff(diff: dict) -> bytes:
    """The diff column: the runs of a config share their diff, so a catch-up packs each one once."""
    try:
        return _pack_diff_items(tuple((knob, type(value), value) for knob, value in sorted(diff.items())))
    except TypeError:  # a value that cannot be a cache key (a list): packed each time
        return canonical.pack(diff)


@functools.lru_cache(maxsize=_KNOWN_DIFFS)
def _pack_diff_items(items: tuple) -> bytes:
    # the value's type is part of the key: True, 1 and 1.0 are equal keys but pack differently
    return canonical.pack({knob: value for knob, _type, value in items})


def _columns(record: Record, track_key: str) -> tuple:
    """A record's row in the records table (after its seq); roster records belong to no track (key "")."""
    body = record.body
    return (
        record.id,
        record.ts_ms,
        record.kind,
        record.author,
        track_key,
        body.get("parent", ""),
        _packed_diff(body.get("diff", {})),
        body.get("config"),
        body.get("outcome"),
        body.get("val_bpb"),
        body.get("replicates"),
        body.get("test_bpb"),
    )


def _create(path: Path) -> None:
    """Build a fresh ledger beside ``path`` and link it into place: never over an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.new")
    scratch.unlink(missing_ok=True)
    try:
        db = sqlite3.connect(scratch, isolation_level=None)
        try:
            db.executescript(
                f"BEGIN; PRAGMA application_id = {APPLICATION_ID}; {_SCHEMA}"
                f" INSERT INTO meta VALUES ('format', '{FORMAT}'); COMMIT;"
            )
        finally:
            db.close()
        with suppress(FileExistsError):  # another process created it first: open theirs
            os.link(scratch, path)
    except (OSError, sqlite3.Error) as err:
        raise LedgerError(f"cannot create ledger {path}: {getattr(err, 'strerror', None) or err}") from None
    finally:
        scratch.unlink(missing_ok=True)


def _add_test_bpb(db: sqlite3.Connection) -> None:
    """Give a ledger made before the test_bpb column its column, filled from the records, once."""
    if _has_test_bpb(db):
        return
    rows = db.execute(
        "SELECT seq, raw.bytes FROM records JOIN raw USING (seq) WHERE kind = 'result' AND outcome = 'ok'"
    ).fetchall()
    # our own stored bytes, verified when they came in: reading the body back needs no verifying
    filled = [(envelope.body_of(raw).get("test_bpb"), seq) for seq, raw in rows]
    db.execute("BEGIN IMMEDIATE")
    db.execute("ALTER TABLE records ADD COLUMN test_bpb INTEGER")
    db.executemany("UPDATE records SET test_bpb = ? WHERE seq = ?", filled)
    db.execute("COMMIT")


def _has_test_bpb(db: sqlite3.Connection) -> bool:
    return any(column[1] == "test_bpb" for column in db.execute("PRAGMA table_info(records)"))


def _check_header(path: Path) -> None:
    """Recognise our file from its first 100 bytes, before SQLite may write to it."""
    try:
        with open(path, "rb") as file:
            header = file.read(100)
    except OSError as err:
        raise LedgerError(f"cannot read ledger {path}: {err.strerror}") from None
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise LedgerError(f"{path} is not an arnode ledger (not an SQLite database); move it away or choose another")
    if int.from_bytes(header[68:72], "big") != APPLICATION_ID:
        raise LedgerError(f"{path} is another program's SQLite database, not an arnode ledger; it was left untouched")


def _check_contents(db: sqlite3.Connection, path: Path, integrity: bool) -> None:
    problems = [row[0] for row in db.execute("PRAGMA quick_check")] if integrity else ["ok"]
    if problems != ["ok"]:
        raise LedgerError(f"ledger {path} is corrupt ({problems[0][:80]}); move it away to start a new one")
    row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    if row is None or row[0] != FORMAT:
        found = row[0] if row else "none"
        raise LedgerError(f"ledger {path} has format {found[:40]!r}, this node reads {FORMAT!r}")
