"""Gossip and sync between node processes on 127.0.0.1: delivery, latency, CPU and memory.

N nodes start in a sparse topology (each knows one random earlier node; the rest is found by
signed address announcements). Each publishes at a steady rate, then all publish a burst at once.
Periodic sync is off, so the first figures are gossip alone; then one sync round (every node
reconciles once with the next in a ring) and delivery is counted again.

    python -m bench.gossip [--nodes 10] [--rate 10] [--seconds 20] [--burst 100] [--pad 1000]

Latency is arrival time minus the record's signing time, both from this machine's clock: it
includes signing, pacing, each hop's validation and the ledger insert at the receiver.
"""

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from tests.node.net.swarm_process import SwarmProcess, held, kill_all, publish, start_node, wait_until

SETTLE_S = 3.0  # gossip is done once no node's ledger has grown for this long
SETTLE_CAP_S = 180.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rate", type=float, default=10.0, help="records per second per node, steady phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the steady phase")
    parser.add_argument("--burst", type=int, default=100, help="records per node published at once after it")
    parser.add_argument("--pad", type=int, default=1000, help="hypothesis text per record (~2 KB records)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    random.seed(args.seed)
    with tempfile.TemporaryDirectory() as root:
        nodes = start_sparse(Path(root), args.nodes)
        try:
            run(nodes, args)
        finally:
            kill_all(nodes)


def start_sparse(root: Path, count: int) -> list[SwarmProcess]:
    psk = os.urandom(32)
    nodes: list[SwarmProcess] = []
    for index in range(count):
        bootstrap = random.choice(nodes).addrs if nodes else []
        nodes.append(start_node(root / f"n{index}", psk, bootstrap, sync_interval=3600, announce_interval=5))
    wait_until(
        lambda: all(len(node.request({"cmd": "status"})["peers"]) >= min(count - 1, 4) for node in nodes),
        120,
        what="every node with at least 4 peers",
    )
    return nodes


def run(nodes: list[SwarmProcess], args: argparse.Namespace) -> None:
    before = [node.request({"cmd": "usage"}) for node in nodes]
    started = time.monotonic()
    for node in nodes:
        node.request({"cmd": "steady", "rate": args.rate, "seconds": args.seconds, "pad": args.pad})
    time.sleep(args.seconds + 1)
    steady = set().union(*(held(node) for node in nodes))
    burst = set()
    for node in nodes:
        burst |= publish(node, args.burst, args.pad)
    settle(nodes)
    wall = time.monotonic() - started
    after = [node.request({"cmd": "usage"}) for node in nodes]
    published = steady | burst
    arrivals = [node.request({"cmd": "arrivals"}, timeout=60)["arrivals"] for node in nodes]
    holdings = [held(node) for node in nodes]
    expected = len(published) * (len(nodes) - 1)  # every record at every node but its author
    print(f"nodes {len(nodes)}, {args.rate:g} records/s each for {args.seconds:g} s, then a burst of {args.burst} each")
    print(f"records published: {len(published)} ({len(steady)} steady, {len(burst)} burst), ~{record_size(args)} B")
    report_delivery("gossip alone", published, steady, burst, arrivals, expected)
    for index, node in enumerate(nodes):
        node.request({"cmd": "sync", "peer": nodes[(index + 1) % len(nodes)].peer_id}, timeout=120)
    holdings = [held(node) for node in nodes]
    complete = sum(len(published & holding) for holding in holdings) - len(published)
    print(f"after one sync round: {100 * complete / expected:.2f}% delivered")
    report_latency(arrivals, steady, burst)
    report_usage(before, after, wall, arrivals)


def settle(nodes: list[SwarmProcess]) -> None:
    """Wait until no ledger grows for SETTLE_S (bounded): a late gossip delivery is still a delivery."""
    sizes, still_since, deadline = None, time.monotonic(), time.monotonic() + SETTLE_CAP_S
    while time.monotonic() < deadline:
        now = [node.request({"cmd": "status"})["count"] for node in nodes]
        if now != sizes:
            sizes, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= SETTLE_S:
            return
        time.sleep(0.5)


def record_size(args: argparse.Namespace) -> int:
    return 700 + min(args.pad, 900)


def report_delivery(label, published, steady, burst, arrivals, expected) -> None:
    def by_gossip(ids: set[str]) -> int:
        return sum(entry[1] == "gossip" for node in arrivals for record_id, entry in node.items() if record_id in ids)

    per_node = expected // len(published)
    print(f"{label}: {100 * by_gossip(published) / expected:.2f}% delivered", end="")
    print(f" (steady {100 * by_gossip(steady) / (len(steady) * per_node):.2f}%,", end="")
    print(f" burst {100 * by_gossip(burst) / (len(burst) * per_node):.2f}%)")


def report_latency(arrivals, steady, burst) -> None:
    print("latency, signing to stored at the receiver (gossip arrivals):")
    print("| phase | median ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- |")
    for name, ids in (("steady", steady), ("burst", burst)):
        delays = sorted(
            arrived - signed
            for node in arrivals
            for record_id, (arrived, via, signed) in node.items()
            if record_id in ids and via == "gossip"
        )
        if delays:
            p99 = delays[min(len(delays) - 1, int(0.99 * len(delays)))]
            print(f"| {name} | {statistics.median(delays):.1f} | {p99:.1f} | {delays[-1]:.1f} |")


def report_usage(before, after, wall, arrivals) -> None:
    received = [len(node) for node in arrivals]
    print("per node over the run:")
    print("| node | CPU % of one core | CPU ms per record received | RSS MB |")
    print("| --- | --- | --- | --- |")
    for index, (start, end) in enumerate(zip(before, after, strict=True)):
        cpu = end["cpu_s"] - start["cpu_s"]
        per_record = 1000 * cpu / received[index] if received[index] else float("nan")
        print(f"| {index} | {100 * cpu / wall:.1f} | {per_record:.2f} | {end['rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
