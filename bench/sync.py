"""What does one sync session cost between two ledgers of N records that differ by D?

A universe U of N signed records (bench.ledger's synthetic history). For each D, ledger A lacks
D/2 records of U and ledger B lacks another D/2, so the sets differ by D; D = N splits U in two
halves. "fresh" is a node with nothing meeting one with all of U. Each row is one session over
an in-memory trio stream, both sides in this process (so the seconds include both sides' work),
each side's records going through its gate (node/store/gate.py) whose worker pool verifies on
every core, as a node's does; after it both ledgers hold exactly U. The reference is taking the
same records in with Gate.add_many verifying inline on one core, measured in the same run: the
"fresh" row is the catch-up of a new node, and "vs add_many" its seconds over the reference's.

    python -m bench.sync [--records 100000]
"""

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

import trio
import trio.testing

from bench.ledger import POLICY, T0, synthetic_records
from node.net.sync import reconcile
from node.store.gate import Gate
from node.store.intake import CHUNK_RECORDS
from node.store.ledger import Ledger
from protocol.records import decode

NOW = T0 + 10**12


def fill(path: Path, raws: list[bytes]) -> Ledger:
    ledger = Ledger.open(path, POLICY)
    for start in range(0, len(raws), 500):
        ledger.add_many(raws[start : start + 500], now_ms=NOW)
    return ledger


async def session(left: Gate, right: Gate):
    a, b = trio.testing.memory_stream_pair()
    reports = [None, None]

    async def run(index: int, stream, gate: Gate, initiator: bool) -> None:
        reports[index] = await reconcile(stream, gate, initiator=initiator, deadline_s=600)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, 0, a, left, True)
        nursery.start_soon(run, 1, b, right, False)
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    universe = synthetic_records(args.records)
    ids = list(range(len(universe)))
    random.Random(1).shuffle(ids)
    missing_a, missing_b = ids[:500], ids[500:1000]  # the first D/2 of each are the ones missing for D

    started = time.perf_counter()
    for raw in universe[:5000]:
        decode(raw, NOW)
    decode_rate = 5000 / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        common = set(ids[1000:])
        started = time.perf_counter()
        fill(root / "common.sqlite", [universe[i] for i in sorted(common)]).close()
        insert_rate = len(common) / (time.perf_counter() - started)
        print(f"reference: add_many {insert_rate:,.0f} records/s, decode alone {decode_rate:,.0f} records/s")
        print("\n| D | A holds | B holds | round trips | bytes A->B | bytes B->A | moved | seconds | vs add_many |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")

        def scenario(name: str, holds_a: set[int], holds_b: set[int], copy_common: bool) -> None:
            ledgers = []
            for side, holds in (("a", holds_a), ("b", holds_b)):
                path = root / f"{side}.sqlite"
                extra = holds
                if copy_common:
                    shutil.copy(root / "common.sqlite", path)
                    extra = holds - common
                ledgers.append(fill(path, [universe[i] for i in sorted(extra)]))
            a, b = ledgers
            with Gate(a) as gate_a, Gate(b) as gate_b:
                for gate in (gate_a, gate_b):  # a node's worker pool is up long before a catch-up: not timed
                    gate.intake.admit_many(universe[: 2 * CHUNK_RECORDS * gate.intake.workers], NOW)
                started = time.perf_counter()
                mine, theirs = trio.run(session, gate_a, gate_b)
                seconds = time.perf_counter() - started
            assert mine.ok and theirs.ok, (mine.reason, theirs.reason)
            assert len(a) == len(b) == len(holds_a | holds_b)
            moved = mine.records_received + theirs.records_received
            floor = moved / insert_rate if moved else 0
            print(
                f"| {name} | {len(holds_a)} | {len(holds_b)} | {mine.round_trips} | {mine.bytes_sent:,} |"
                f" {mine.bytes_received:,} | {moved:,} | {seconds:.2f} | {seconds / floor if floor else 0:.2f}x |"
            )
            for ledger, side in zip(ledgers, "ab", strict=True):
                ledger.close()
                (root / f"{side}.sqlite").unlink()

        everything = set(ids)
        for differences in (0, 10, 1000):
            half = differences // 2
            scenario(str(differences), everything - set(missing_a[:half]), everything - set(missing_b[:half]), True)
        halves = set(ids[: len(ids) // 2])
        scenario(f"{len(ids):,} (halves)", halves, everything - halves, False)
        scenario(f"{len(ids):,} (fresh)", set(), everything, False)


if __name__ == "__main__":
    main()
