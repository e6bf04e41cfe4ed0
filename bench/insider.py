"""Hostile members against a node process: how fast a valid record still arrives, and the node's memory.

Node A (the swarm's founder) holds a ledger of --records records; member B publishes records
at a steady rate to it. First with no attack (the reference), then while --attackers invited
members, each a real libp2p host in this process, flood A at once: every attacker opens a sync
session (hello, one round, then silence until A's deadline) and publishes claims as fast as it
can sign them.

    python -m bench.insider [--records 20000] [--attackers 20] [--seconds 15] [--rate 2]

Delay is arrival at A minus the record's signing time, both from this machine's clock. RSS is
A's resident memory before the attack and its peak while the attackers' sync sessions are open.
"""

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import msgpack
import trio

from node.clock import now_ms
from node.net.sync import PROTOCOL_ID as SYNC_PROTOCOL
from node.store.ledger import Ledger
from protocol import announce
from protocol.fingerprint import MAX_TS
from protocol.identity import Identity
from protocol.records import sign
from tests.node.net.swarm_process import attacker, kill_all, make_record, roster_policy, start_node, wait_until

SETTLE_S = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000, help="records in A's ledger before it starts")
    parser.add_argument("--attackers", type=int, default=20, help="hostile members, one sync session each")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--rate", type=float, default=2.0, help="B's records per second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        run(Path(root), args)


def run(root: Path, args: argparse.Namespace) -> None:
    psk, founder, member = os.urandom(32), Identity.generate(), Identity.generate()
    attackers = [Identity.generate() for _ in range(args.attackers)]
    policy = roster_policy([founder.peer_id])
    prefill(root / "A", policy, founder, [member, *attackers], member, args.records)
    a = start_node(root / "A", psk, seed=founder.seed(), founder=founder.peer_id, sync_interval=3600)
    nodes = [a]
    try:
        b = start_node(root / "B", psk, a.addrs, seed=member.seed(), founder=founder.peer_id, sync_interval=3600)
        nodes.append(b)
        wait_until(lambda: a.request({"cmd": "status"})["peers"], 60, what="B connected")
        wait_until(lambda: b.request({"cmd": "status"})["count"] >= args.records, 120, what="B caught up")
        quiet = delays(a, b, args)
        rss_before = a.request({"cmd": "usage"})["rss_mb"]
        stop = threading.Event()
        attack = threading.Thread(target=trio.run, args=(flood, psk, attackers, a.addrs[0], policy, stop))
        attack.start()
        peak = [rss_before]
        sampler = threading.Thread(target=sample_rss, args=(a, peak, stop))
        sampler.start()
        time.sleep(2.0)  # the sessions are open and the claims flowing before B starts
        loud = delays(a, b, args)
        stop.set()
        attack.join(60)
        sampler.join(10)
        counters = a.request({"cmd": "counters"})["counters"]
    finally:
        kill_all(nodes)
    print(f"A holds {args.records} records; {args.attackers} hostile members; B publishes {args.rate:g}/s")
    report("no attack", quiet)
    report("claim + sync flood", loud)
    if quiet and loud:
        print(f"median delay under flood / without: {statistics.median(loud) / statistics.median(quiet):.2f}")
    print(
        f"A's RSS: {rss_before:.0f} MB before, {peak[0]:.0f} MB peak under the flood (+{peak[0] - rss_before:.0f} MB)"
    )
    print("A's verdicts:", ", ".join(f"{k} {v}" for k, v in sorted(counters.items())))


def prefill(home: Path, policy, founder: Identity, members: list[Identity], author: Identity, count: int) -> None:
    """A's ledger before it starts: the invites and ``count`` records by ``author``."""
    home.mkdir(parents=True)
    ledger = Ledger.open(home / "ledger.sqlite", policy)
    start = now_ms() - count  # one record a millisecond, all in the past
    invites = [sign(founder, "membership", {"member": m.peer_id, "admin": False}, start - 1) for m in members]
    ledger.add_many(record.raw for record in invites)
    for first in range(0, count, 1000):
        batch = [make_record(author, n, start + n).raw for n in range(first, min(count, first + 1000))]
        ledger.add_many(batch)
    ledger.close()


def delays(a, b, args: argparse.Namespace) -> list[float]:
    """Seconds from signing at B to arrival at A, for B's records of one phase."""
    b.request({"cmd": "steady", "rate": args.rate, "seconds": args.seconds})
    time.sleep(args.seconds + SETTLE_S)
    arrivals = a.request({"cmd": "arrivals"})["arrivals"]
    since = now_ms() - int((args.seconds + SETTLE_S) * 1000)
    return [(at - signed) / 1000 for at, via, signed in arrivals.values() if signed >= since]


def sample_rss(node, peak: list[float], stop: threading.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], node.request({"cmd": "usage"})["rss_mb"])
        time.sleep(0.5)


async def flood(psk: bytes, attackers: list[Identity], target: str, policy, stop: threading.Event) -> None:
    async with trio.open_nursery() as nursery:
        for identity in attackers:
            nursery.start_soon(one_attacker, psk, identity, target, policy, stop)


async def one_attacker(psk: bytes, identity: Identity, target: str, policy, stop: threading.Event) -> None:
    topic = f"/arnode/{policy.swarm_id}/announce/1"
    async with attacker(psk, identity, target, topic, connect_within_s=30) as (host, pubsub, target_id):
        with trio.move_on_after(30):
            stream = await host.new_stream(target_id, [SYNC_PROTOCOL])
            # hello and a round whose one fingerprint matches nothing: A must index and answer, then we go silent
            first_round = ["ranges", [[0, b"", MAX_TS, b"", 0, os.urandom(16)]], [], True]
            await stream.write(msgpack.packb(["hello", 1]) + msgpack.packb(first_round))
        serial = 0
        while not stop.is_set():
            serial += 1
            ts = now_ms()
            claim = announce.sign_claim(identity, "cpu-x1/300s/shakespeare/bpe1024/eval1", f"{serial:064x}", ts, 60_000)
            await pubsub.publish(topic, claim)
            await trio.sleep(0.001)


def report(label: str, seconds: list[float]) -> None:
    if not seconds:
        print(f"{label}: no records arrived")
        return
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"{label}: {len(ordered)} records, delay median {statistics.median(ordered) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
