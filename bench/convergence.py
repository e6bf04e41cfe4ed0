"""Do 1,000 nodes that only ever sync in random pairs, under random partitions, converge on one best?

Each node is a real Ledger (its own SQLite file) and each exchange a real sync session over an
in-memory stream; there is no network and no gossip. Every record starts on one random node
(its author's). In each round the nodes are paired at random and every pair runs one session;
during the first rounds the nodes are also split at random into 2-4 partitions that cannot
reach each other. The run stops when every node holds every record, then checks that all nodes
name the same best config per track as the acceptance rule does over the whole set.

    python -m bench.convergence [--nodes 1000] [--records 200] [--partitioned-rounds 5] [--seed 0]
"""

import argparse
import random
import tempfile
import time
from pathlib import Path

import trio

from bench.ledger import POLICY, T0, synthetic_records
from bench.sync import session
from node.store.ledger import Ledger
from protocol.acceptance import assess
from protocol.records import decode

MAX_ROUNDS = 100


def pairs_for(nodes: int, partitioned: bool, rng: random.Random) -> list[tuple[int, int]]:
    """Random disjoint pairs, each within one partition when the network is partitioned."""
    groups: list[list[int]] = [[] for _ in range(rng.randint(2, 4) if partitioned else 1)]
    for node in range(nodes):
        groups[rng.randrange(len(groups))].append(node)
    pairs = []
    for group in groups:
        rng.shuffle(group)
        pairs += list(zip(group[::2], group[1::2], strict=False))
    return pairs


async def run_round(ledgers: list[Ledger], pairs: list[tuple[int, int]]) -> tuple[int, int]:
    """Sync every pair in turn; the records and bytes that moved."""
    moved = sent = 0
    for left, right in pairs:
        mine, theirs = await session(ledgers[left], ledgers[right])
        assert mine.ok and theirs.ok, (mine.reason, theirs.reason)
        moved += mine.records_received + theirs.records_received
        sent += mine.bytes_sent + mine.bytes_received
    return moved, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--partitioned-rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    raws = synthetic_records(args.records)
    now = T0 + 10**12
    truth = {key: view.best for key, view in assess([decode(raw, now) for raw in raws], POLICY).items()}

    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        ledgers = [Ledger.open(Path(directory) / f"node{n}.sqlite", POLICY) for n in range(args.nodes)]
        for raw in raws:
            ledgers[rng.randrange(args.nodes)].add(raw, now_ms=now)
        print(
            f"{args.nodes} ledgers opened and seeded with {len(raws)} records in {time.perf_counter() - started:.1f} s"
        )
        print("\n| round | partitions | sessions | records moved | MB moved | nodes complete | seconds |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for round_number in range(1, MAX_ROUNDS + 1):
            partitioned = round_number <= args.partitioned_rounds
            pairs = pairs_for(args.nodes, partitioned, rng)
            started = time.perf_counter()
            moved, sent = trio.run(run_round, ledgers, pairs)
            complete = sum(len(ledger) == len(raws) for ledger in ledgers)
            print(
                f"| {round_number} | {'yes' if partitioned else 'no'} | {len(pairs)} | {moved:,} | {sent / 1e6:.1f} |"
                f" {complete} | {time.perf_counter() - started:.1f} |"
            )
            if complete == args.nodes:
                break
        bests = {
            tuple(sorted((key, best.config if best else None) for key, best in ledger.best().items()))
            for ledger in ledgers
        }
        expected = tuple(sorted((key, best.config if best else None) for key, best in truth.items()))
        print(f"\nconverged after {round_number} rounds ({args.partitioned_rounds} partitioned)")
        print(f"distinct answers for the best across {args.nodes} nodes: {len(bests)}")
        print(f"the same as the acceptance rule over all records: {bests == {expected}}")
        for key, config in expected:
            print(f"  {key}: {config[:16] if config else None}")
        for ledger in ledgers:
            ledger.close()


if __name__ == "__main__":
    main()
