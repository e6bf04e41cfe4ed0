"""The ledger: a grow-only set of signed records (a G-Set CRDT) in one SQLite file.

The raw record bytes are the source of truth; the columns beside them are derived once, at
insert, so views can run the acceptance rule over 100k results without decoding a record.
Nothing is ever updated or deleted, so every view is a pure function of the set, and the
set's size names its version: views are cached until it grows.

One writer: a Ledger belongs to one task and its calls are short and synchronous. Durability:
WAL with synchronous=NORMAL, so a committed batch survives the process being killed; a power
cut may lose the last batches, which anti-entropy sync brings back from peers.
"""

import hashlib
import os
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from node.errors import NodeError
from protocol import canonical
from protocol.acceptance import ConfigStats, Lineage, Run, TrackView, assess
from protocol.config import Config
from protocol.errors import ConfigError, RecordError
from protocol.fingerprint import Key
from protocol.policy import Policy
from protocol.records import MAX_RECORD_BYTES, Record, decode
from protocol.track import Track

APPLICATION_ID = 0x61726E6C  # "arnl": marks an SQLite file as an arnode ledger
FORMAT = "arnode-ledger/1"
_SQLITE_MAGIC = b"SQLite format 3\x00"
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
    replicates BLOB
);
CREATE INDEX records_by_order ON records (ts_ms, id);
CREATE INDEX records_by_config ON records (config);
CREATE INDEX records_by_track ON records (track, kind);
CREATE TABLE raw (seq INTEGER PRIMARY KEY REFERENCES records(seq), bytes BLOB NOT NULL);
"""


class LedgerError(NodeError):
    """The ledger file is corrupt, foreign or unreadable; the message names it."""


@dataclass(frozen=True)
class AddReport:
    added: list[Record]
    duplicates: int
    rejected: list[str]  # one reason per rejected record


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
        self._count = db.execute("SELECT count(*) FROM records").fetchone()[0]
        self._tracks = self._read_tracks()
        self._keys: tuple[int, list[Key]] = (-1, [])  # (count it was read at, keys)
        # Per track: its results as Runs, read at the first view and then kept current by inserts, and
        # its view with the number of runs it was computed from. A record changes only its own track.
        self._runs: dict[str, list[Run]] = {}
        self._views: dict[str, tuple[int, TrackView | None]] = {}
        self._lineage: tuple[int, Lineage | None] = (-1, None)

    # --- opening ---

    @classmethod
    def open(cls, path: Path, policy: Policy) -> "Ledger":
        """Open the ledger at ``path``, creating it if absent; a file that is not one is never touched."""
        path = Path(path)
        if not path.exists():
            _create(path)
        _check_header(path)
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None)
        except sqlite3.Error as err:
            raise LedgerError(f"cannot open ledger {path}: {err}") from None
        try:
            _check_contents(db, path)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
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

    # --- the set ---

    def __len__(self) -> int:
        return self._count

    def has(self, record_id: bytes) -> bool:
        return self._db.execute("SELECT 1 FROM records WHERE id = ?", (record_id,)).fetchone() is not None

    def get(self, record_id: bytes) -> bytes | None:
        row = self._db.execute(
            "SELECT raw.bytes FROM records JOIN raw USING (seq) WHERE records.id = ?", (record_id,)
        ).fetchone()
        return row[0] if row else None

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
        """Verify and insert one record: the Record if new, None if already held; RecordError if invalid."""
        if self.has(_record_id(raw)):
            return None
        record = self._admit(raw, _now(now_ms))
        with self._transaction():
            return record if self._insert(record) else None

    def add_many(self, raws: Iterable[bytes], now_ms: int | None = None) -> AddReport:
        """Verify and insert a batch in one transaction; bad records are reported, not raised."""
        now_ms = _now(now_ms)
        raws = list(raws)
        held = self._held([_record_id(raw) for raw in raws])
        rejected, duplicates, records = [], 0, []
        for raw in raws:
            record_id = _record_id(raw)
            if record_id in held:
                duplicates += 1
                continue
            held.add(record_id)
            try:
                records.append(self._admit(raw, now_ms))
            except RecordError as err:
                rejected.append(str(err))
        with self._transaction():
            added = [record for record in records if self._insert(record)]
        return AddReport(added, duplicates + len(records) - len(added), rejected)

    def _held(self, record_ids: list[bytes]) -> set[bytes]:
        """Those of ``record_ids`` already in the set: one query per batch, not one per record."""
        held = set()
        for start in range(0, len(record_ids), _SQL_VARIABLES):
            chunk = record_ids[start : start + _SQL_VARIABLES]
            query = f"SELECT id FROM records WHERE id IN ({','.join('?' * len(chunk))})"
            held.update(record_id for (record_id,) in self._db.execute(query, chunk))
        return held

    def records(self, kind: str | None = None) -> Iterator[Record]:
        """Every record (of ``kind``) in (ts_ms, id) order, decoded again: slow, for exports and tools."""
        query = "SELECT raw.bytes FROM records JOIN raw USING (seq) WHERE ? IS NULL OR kind = ? ORDER BY ts_ms, id"
        for (raw,) in self._db.execute(query, (kind, kind)):
            yield decode(raw, _FAR_FUTURE_MS)

    def records_by_id(self, record_ids: list[bytes]) -> list[Record]:
        """Those of ``record_ids`` we hold, decoded, in (ts_ms, id) order within each chunk."""
        return [decode(raw, _FAR_FUTURE_MS) for raw in self.get_many(record_ids)]

    def keys(self) -> list[Key]:
        """Every record's (ts_ms, id), in that order (read-only): what set reconciliation works on."""
        if self._keys[0] != self._count:
            self._keys = (self._count, self._db.execute("SELECT ts_ms, id FROM records ORDER BY ts_ms, id").fetchall())
        return self._keys[1]

    def _admit(self, raw: bytes, now_ms: int) -> Record:
        record = decode(raw, now_ms)
        if not self.policy.admits(record.track):
            raise RecordError(f"track {record.track.key} is not this swarm's (policy {self.policy.name})")
        return record

    def _insert(self, record: Record) -> bool:
        body = record.body
        track = record.track.key
        if track not in self._tracks:
            self._db.execute(
                "INSERT OR IGNORE INTO tracks VALUES (?, ?)", (track, canonical.pack(record.track.to_wire()))
            )
            self._tracks[track] = record.track
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO records (id, ts_ms, kind, author, track, parent, diff, config, outcome, val_bpb,"
            " replicates) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.ts_ms,
                record.kind,
                record.author,
                track,
                body["parent"],
                canonical.pack(body["diff"]),
                body.get("config"),
                body.get("outcome"),
                body.get("val_bpb"),
                body.get("replicates"),
            ),
        )
        if cursor.rowcount != 1:
            return False
        self._db.execute("INSERT INTO raw VALUES (?, ?)", (cursor.lastrowid, record.raw))
        self._count += 1
        if track in self._runs and record.kind == "result":
            self._runs[track].append(Run.from_record(record))
        return True

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT; on any failure ROLLBACK and forget what the body counted."""
        count, runs = self._count, {track: len(runs) for track, runs in self._runs.items()}
        try:
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
            if isinstance(err, sqlite3.Error):
                raise LedgerError(f"cannot write ledger {self.path}: {err}") from None
            raise

    # --- views: pure functions of the set ---

    def assess(self) -> dict[str, TrackView]:
        """The acceptance rule's view of every track with results, keyed by track key."""
        ordered = sorted(self._tracks, key=self._tracks.__getitem__)
        return {key: view for key in ordered if (view := self.view(key)) is not None}

    def view(self, track_key: str) -> TrackView | None:
        """The acceptance rule's view of one track, None while it has no results."""
        runs = self.runs(track_key)
        computed_from, view = self._views.get(track_key, (-1, None))
        if computed_from != len(runs):
            view = assess(runs, self.policy).get(track_key)
            self._views[track_key] = (len(runs), view)
        return view

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

    def negative_results(self, track_key: str) -> dict[str, tuple[ConfigStats, ...]]:
        """Per parent config: children tried on this track that only failed, or ran and did no better.

        A child did no better when its mean over all ok runs is not below its parent's evidence mean.
        """
        board = self.leaderboard(track_key)
        by_config = {stats.config: stats for stats in board}
        found: dict[str, list[ConfigStats]] = defaultdict(list)
        for stats in board:
            if stats.parent == stats.config:
                continue  # a default config's runs name it as their own parent
            parent = by_config.get(stats.parent)
            failed_only = stats.runs == 0 and stats.failures > 0
            no_better = stats.mean is not None and parent is not None and parent.evidence_mean is not None
            if failed_only or (no_better and stats.mean >= parent.evidence_mean):
                found[stats.parent].append(stats)
        return {parent: tuple(children) for parent, children in sorted(found.items())}

    def lineage(self) -> dict[str, tuple[str, ...]]:
        """Parent config hash -> the config hashes results claim to derive from it, on any track.

        Claims, as records state them: resolve_config and the acceptance rule check each link.
        """
        children: dict[str, list[str]] = defaultdict(list)
        rows = self._db.execute(
            "SELECT DISTINCT parent, config FROM records WHERE kind = 'result' AND config != parent ORDER BY 1, 2"
        )
        for parent, config in rows:
            children[parent].append(config)
        return {parent: tuple(configs) for parent, configs in children.items()}

    def counts_by_author(self) -> dict[str, int]:
        """How many records each author has in the set."""
        return dict(self._db.execute("SELECT author, count(*) FROM records GROUP BY author ORDER BY author"))

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
            "SELECT raw.bytes FROM records AS h JOIN raw USING (seq) WHERE h.kind = 'hypothesis' AND NOT EXISTS"
            " (SELECT 1 FROM records AS r WHERE r.kind = 'result' AND r.track = h.track AND r.parent = h.parent"
            " AND r.diff = h.diff) ORDER BY h.ts_ms, h.id"
        )
        return PendingWork(replicate, tuple(decode(raw, _FAR_FUTURE_MS) for (raw,) in untried))

    def hypotheses(self, track_key: str | None = None) -> tuple[HypothesisStatus, ...]:
        """Every hypothesis (on ``track_key``), oldest first, each with the results that answered it."""
        rows = self._db.execute(
            "SELECT h.track, h.parent, h.diff, raw.bytes FROM records AS h JOIN raw USING (seq)"
            " WHERE h.kind = 'hypothesis' AND (? IS NULL OR h.track = ?) ORDER BY h.ts_ms, h.id",
            (track_key, track_key),
        ).fetchall()
        found = []
        for track, parent, diff, raw in rows:
            answers = self._db.execute(
                "SELECT DISTINCT config FROM records WHERE kind = 'result' AND track = ? AND parent = ? AND diff = ?"
                " ORDER BY config",
                (track, parent, diff),
            )
            found.append(HypothesisStatus(decode(raw, _FAR_FUTURE_MS), tuple(config for (config,) in answers)))
        return tuple(found)

    def resolve_config(self, config_hash: str) -> Config:
        """The full config named by ``config_hash``, rebuilt from result links back to a default.

        The acceptance rule's Lineage picks, for each config, the first link (in record order) that
        really hashes to it, so a lying record cannot hide a config. ConfigError if none leads home.
        """
        if self._lineage[0] != self._count:
            runs = [run for key in self._tracks for run in self.runs(key)]
            self._lineage = (self._count, Lineage(sorted(runs, key=lambda run: (run.ts_ms, run.id))))
        config = self._lineage[1].resolve(config_hash)
        if config is None:
            raise ConfigError(f"config {config_hash[:12]} does not lead back to a default")
        return config

    def runs(self, track_key: str) -> list[Run]:
        """A track's results as the acceptance rule's Runs (read-only): built from the columns once,
        without decoding a record, then kept current by inserts."""
        if track_key not in self._runs:
            self._runs[track_key] = list(self._read_runs(track_key)) if track_key in self._tracks else []
        return self._runs[track_key]

    def _read_tracks(self) -> dict[str, Track]:
        rows = self._db.execute("SELECT key, wire FROM tracks")
        return {key: Track.from_wire(canonical.unpack(wire, MAX_RECORD_BYTES)) for key, wire in rows}

    def _read_runs(self, track_key: str) -> Iterator[Run]:
        track = self._tracks[track_key]
        diffs: dict[bytes, dict] = {}  # runs of one config share a diff: decode it once
        rows = self._db.execute(
            "SELECT id, ts_ms, author, config, parent, diff, outcome, val_bpb, replicates FROM records"
            " WHERE track = ? AND kind = 'result' ORDER BY ts_ms, id",
            (track_key,),
        )
        for record_id, ts_ms, author, config, parent, diff, outcome, val_bpb, replicates in rows:
            if diff not in diffs:
                diffs[diff] = canonical.unpack(diff, MAX_RECORD_BYTES)
            yield Run(record_id, ts_ms, author, track, config, parent, diffs[diff], outcome, val_bpb, replicates)


def _record_id(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest() if isinstance(raw, bytes) else b""


def _now(now_ms: int | None) -> int:
    return time.time_ns() // 1_000_000 if now_ms is None else now_ms


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


def _check_contents(db: sqlite3.Connection, path: Path) -> None:
    problems = [row[0] for row in db.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise LedgerError(f"ledger {path} is corrupt ({problems[0][:80]}); move it away to start a new one")
    row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    if row is None or row[0] != FORMAT:
        found = row[0] if row else "none"
        raise LedgerError(f"ledger {path} has format {found[:40]!r}, this node reads {FORMAT!r}")
