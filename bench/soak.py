"""A soak: 12 node processes on 127.0.0.1, 20 records/s injected for 10 minutes. Does every node end up
with every record, how fast did records spread, and how much memory did each node need?

Each node is a real swarm process (tests/node/net/swarm_process.py: a Swarm with its ledger, gossip,
sync and keeper) with the daemon's defaults for sync (30 s), announcements (10 s) and redials. Nodes
start in a sparse topology (each knows one or two earlier nodes; the rest is found by announcements).
The injection is spread over the members: each node signs and publishes its share at a steady rate.
After it, the nodes get --settle seconds at most to agree. Then it prints:

- convergence: whether every node holds the same record set (the sync keys' digest);
- loss: records signed against records every node holds when the bench stops waiting;
- delivery latency (record signed -> held by each other node), p50 / p99 / worst, and by which path;
- each node's peak memory (VmHWM, the kernel's high-water mark of its RSS) and CPU seconds.

Bounded: it stops by itself after startup + --minutes + --settle, and kills its children on any exit.

    python -m bench.soak [--nodes 12] [--rate 20] [--minutes 10] [--settle 180]
"""

import argparse
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.node.net.swarm_process import SwarmProcess, held, kill_all, start_node, wait_until

REPORT_EVERY_S = 30
CONNECTED_WITHIN_S = 120
PEERS_WANTED = 3  # each node connected to at least this many (or all the others) before the injection


@dataclass(frozen=True)
class Delivery:
    """How records reached the nodes that did not sign them."""

    latencies_ms: list[int]
    paths: Counter  # "gossip" or "sync" -> deliveries

    def percentile(self, share: float) -> int:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else -1


@dataclass(frozen=True)
class NodeFigures:
    """One node at the end: what it holds, its peak memory and its CPU time."""

    peer_id: str
    records: int
    digest: str
    peak_rss_mb: float
    cpu_s: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=12)
    parser.add_argument("--rate", type=float, default=20.0, help="records per second over the whole swarm")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long records are injected")
    parser.add_argument("--settle", type=float, default=180.0, help="seconds at most for the nodes to agree after it")
    parser.add_argument("--pad", type=int, default=1000, help="hypothesis text per record (~2 KB records)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    random.seed(args.seed)
    with tempfile.TemporaryDirectory() as root:
        nodes: list[SwarmProcess] = []
        try:
            start_sparse(Path(root), args.nodes, nodes)
            soak(nodes, args)
        finally:
            kill_all(nodes)


def start_sparse(root: Path, count: int, nodes: list[SwarmProcess]) -> None:
    """Start ``count`` nodes into ``nodes`` (so the caller can kill them whatever happens), each told of 1-2 others."""
    psk = os.urandom(32)
    for index in range(count):
        known = random.sample(nodes, min(len(nodes), 2))
        bootstrap = [addr for node in known for addr in node.addrs]
        options = {"sync_interval": 30, "announce_interval": 10, "max_backoff": 30}
        nodes.append(start_node(root / f"n{index}", psk, bootstrap, **options))
    wanted = min(count - 1, PEERS_WANTED)
    wait_until(
        lambda: all(len(node.request({"cmd": "status"})["peers"]) >= wanted for node in nodes),
        CONNECTED_WITHIN_S,
        what=f"every node with at least {wanted} peers",
    )


def soak(nodes: list[SwarmProcess], args: argparse.Namespace) -> None:
    seconds = args.minutes * 60
    share = args.rate / len(nodes)
    expected = sum(int(share * seconds) for _ in nodes)
    print(f"{len(nodes)} nodes on 127.0.0.1, {args.rate:g} records/s over all of them for {seconds:.0f} s")
    print(f"load average before: {load()} ({os.cpu_count()} cores)")
    started = time.monotonic()
    for node in nodes:
        node.request({"cmd": "steady", "rate": share, "seconds": seconds, "pad": args.pad})
    while (elapsed := time.monotonic() - started) < seconds:
        time.sleep(min(REPORT_EVERY_S, seconds - elapsed))
        counts = [node.request({"cmd": "status"})["count"] for node in nodes]
        print(f"  {time.monotonic() - started:5.0f} s: nodes hold {min(counts):,}-{max(counts):,} records")
    settled = settle(nodes, expected, args.settle)
    print(f"load average after: {load()}")
    figures = [node_figures(node) for node in nodes]
    holdings = [held(node) for node in nodes]
    signed = set().union(*holdings)  # a record exists once its author has signed and stored it
    delivery = deliveries(nodes)
    print(f"\nrecords signed: {len(signed):,} of the {expected:,} the injection asked for", end="")
    print("" if len(signed) == expected else " (the publishers fell behind their schedule)")
    converged = len({node.digest for node in figures}) == 1
    print(f"convergence: {'every node holds the same record set' if converged else 'the nodes DIFFER'}", end="")
    print(f" ({settled:.0f} s after the injection ended)" if settled is not None else f" (waited {args.settle:g} s)")
    fewest = min(map(len, holdings))
    print(f"missing at the end: {len(signed) - fewest} (signed records some node lacked; the fewest held: {fewest:,})")
    print(
        f"delivery latency, signed -> held by each other node: p50 {delivery.percentile(0.5)} ms,"
        f" p99 {delivery.percentile(0.99)} ms, worst {max(delivery.latencies_ms, default=-1)} ms"
        f" over {len(delivery.latencies_ms):,} deliveries ({dict(delivery.paths)})"
    )
    print("\n| node | records | peak RSS MB | CPU s |")
    print("| --- | --- | --- | --- |")
    for node in figures:
        print(f"| {node.peer_id[-8:]} | {node.records:,} | {node.peak_rss_mb:.0f} | {node.cpu_s:.0f} |")
    rss = [node.peak_rss_mb for node in figures]
    print(f"peak RSS: median {statistics.median(rss):.0f} MB, largest {max(rss):.0f} MB")


def settle(nodes: list[SwarmProcess], expected: int, limit_s: float) -> float | None:
    """Seconds until every node holds ``expected`` records with one digest; None if not within ``limit_s``."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        statuses = [node.request({"cmd": "status"}) for node in nodes]
        if all(status["count"] == expected for status in statuses) and len({s["digest"] for s in statuses}) == 1:
            return time.monotonic() - started
        time.sleep(2)
    return None


def node_figures(node: SwarmProcess) -> NodeFigures:
    status = node.request({"cmd": "status"})
    usage = node.request({"cmd": "usage"})
    return NodeFigures(node.peer_id, status["count"], status["digest"], peak_rss_mb(node.process.pid), usage["cpu_s"])


def load() -> str:
    return ", ".join(f"{figure:.1f}" for figure in os.getloadavg())


def peak_rss_mb(pid: int) -> float:
    """The kernel's high-water mark of the process's resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def deliveries(nodes: list[SwarmProcess]) -> Delivery:
    """Every (record, node that did not sign it) arrival: latency from signing, and the path it came by."""
    latencies, paths = [], Counter()
    for node in nodes:
        arrivals = node.request({"cmd": "arrivals"}, timeout=120)["arrivals"]
        for arrived_ms, via, signed_ms in arrivals.values():
            latencies.append(arrived_ms - signed_ms)
            paths[via] += 1
    return Delivery(latencies, paths)


if __name__ == "__main__":
    main()
