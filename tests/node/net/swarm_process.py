"""One swarm node in its own OS process, driven by JSON lines: commands on stdin, replies on stdout.

Run from the repository root: ``python -m tests.node.net.swarm_process --home DIR --seed HEX --psk HEX``.
It prints ``{"event": "ready", ...}`` once listening and ``{"event": "stopped", ...}`` after a clean
shutdown (on SIGTERM, SIGINT, the ``stop`` command or end of input). Used by the swarm tests and
by bench/gossip.py.

Commands (one JSON object a line; each gets one reply line):
    {"cmd": "publish", "n": 10, "pad": 0}   sign and publish n new result records
        (optional "diff": {knob: value} on the default config and "bpb": micro-bpb for all n)
    {"cmd": "invite", "peer": ID, "admin": false}   sign and publish a membership record
    {"cmd": "revoke", "peer": ID}           sign and publish a revocation
    {"cmd": "steady", "rate": 10, "seconds": 20, "pad": 0}   publish at a steady rate, in the background
    {"cmd": "status"}                        ledger size and digest, peers, best configs
    {"cmd": "ids"}                           every record ID held, hex, sorted
    {"cmd": "arrivals"}                      {id: [arrival ms, via, signed ms]} for records from peers
    {"cmd": "block", "peers": [...]}         refuse exactly these peers from now on
    {"cmd": "sync", "peer": ID}              reconcile with one peer now
    {"cmd": "claim", "track": K, "config": H, "ttl_s": 60}
    {"cmd": "claims"}                        live claims, ours and peers'
    {"cmd": "usage"}                         CPU seconds and RSS of this process
    {"cmd": "counters"}                      what the gossip validators decided, by verdict
    {"cmd": "stop"}
"""

import argparse
import hashlib
import json
import logging
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import multiaddr
import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from node.clock import now_ms
from node.net.host import build_host, build_pubsub
from node.net.swarm import Swarm
from node.store.ledger import Ledger
from node.store.members import MEMBER_RECORDS_PER_WINDOW, Limits
from protocol.config import apply, config_hash, default_config
from protocol.identity import Identity
from protocol.policy import Policy
from protocol.records import METRICS, Record, sign
from protocol.track import Track

POLICY = Policy(name="swarm-test", min_runs=1, min_authors=1)
TRACK = Track("cpu-x1", POLICY.budget_kind, POLICY.budget, POLICY.dataset, "bpe1024", POLICY.eval_version)
DEFAULT_CONFIG = config_hash(default_config("small"))


def make_record(
    identity: Identity, serial: int, ts_ms: int, pad: int = 0, track: Track = TRACK, diff: dict | None = None,
    bpb: int | None = None,
) -> Record:  # fmt: skip
    """A real signed result record: the default config (plus ``diff``), a val_bpb that varies with ``serial``."""
    diff = diff or {}
    body = {
        "track": track.to_wire(),
        "parent": DEFAULT_CONFIG,
        "diff": diff,
        "config": config_hash(apply(default_config("small"), diff)) if diff else DEFAULT_CONFIG,
        "seed": serial % 2**31,
        "outcome": "ok",
        "val_bpb": bpb or 1_000_000 + (serial * 7919) % 500_000,
        "metrics": dict.fromkeys(METRICS, 1),
        "hypothesis": f"run {serial} " + "x" * min(pad, 900),
        "proposer": "builtin",
        "code": "0" * 64,
        "log": hashlib.sha256(serial.to_bytes(8, "big")).hexdigest(),
        "error": "",
        "replicates": None,
    }
    return sign(identity, "result", body, ts_ms)


def roster_policy(founders: list[str]) -> Policy:
    """The test policy with a roster: these peer IDs are its founding admins."""
    return replace(POLICY, admins=tuple(founders))


class Node:
    def __init__(self, args: argparse.Namespace) -> None:
        self.identity = Identity.from_seed(bytes.fromhex(args.seed))
        self.policy = roster_policy(args.founder) if args.founder else POLICY
        self.ledger = Ledger.open(Path(args.home) / "ledger.sqlite", self.policy)
        self.arrivals: dict[str, tuple[int, str, int]] = {}
        self.serial = int(time.time() * 1000) % 10**9  # a restarted node must not re-sign old records
        self.nursery: trio.Nursery | None = None
        self.swarm = Swarm(
            self.identity,
            bytes.fromhex(args.psk),
            self.policy,
            self.ledger,
            listen=args.listen,
            bootstrap=args.bootstrap,
            sync_interval_s=args.sync_interval,
            announce_interval_s=args.announce_interval,
            on_record=self.arrived,
            limits=Limits(records_per_window=args.member_records_per_minute),
            max_backoff_s=args.max_backoff,
        )

    def arrived(self, record: Record, via: str) -> None:
        self.arrivals.setdefault(record.hex_id, (now_ms(), via, record.ts_ms))

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        name = command.get("cmd")
        if name == "publish":
            pad, diff, bpb = int(command.get("pad", 0)), command.get("diff"), command.get("bpb")
            return {"published": [await self.publish_one(pad, diff, bpb) for _ in range(command["n"])]}
        if name in ("invite", "revoke"):
            kind, body = "membership", {"member": command["peer"], "admin": bool(command.get("admin"))}
            if name == "revoke":
                kind, body = "revocation", {"member": command["peer"], "reason": "test"}
            record = sign(self.identity, kind, body, now_ms())
            await self.swarm.publish(record)
            return {"published": record.hex_id}
        if name == "steady":
            rate, seconds = float(command["rate"]), float(command["seconds"])
            self.nursery.start_soon(self.steady, rate, seconds, int(command.get("pad", 0)))
            return {"started": True}
        if name == "status":
            return self.status()
        if name == "ids":
            return {"ids": self.ids()}
        if name == "arrivals":
            return {"arrivals": self.arrivals}
        if name == "block":
            await self.swarm.set_blocked(command["peers"])
            return {"blocked": sorted(command["peers"])}
        if name == "sync":
            report = await self.swarm.sync_with(command["peer"])
            return {"ok": bool(report and report.ok), "reason": getattr(report, "reason", "no stream")}
        if name == "claim":
            await self.swarm.announce_claim(command["track"], command["config"], float(command["ttl_s"]))
            return {"claimed": command["config"]}
        if name == "claims":
            return {"claims": [claim.__dict__ for claim in self.swarm.live_claims(now_ms())]}
        if name == "usage":
            return usage()
        if name == "counters":
            refusals = {f"refused_{kind}": count for kind, count in self.swarm.gate.refusals.items()}
            return {"counters": {**self.swarm.counters, **refusals}}
        return {"error": f"unknown command {str(name)[:40]!r}"}

    async def publish_one(self, pad: int, diff: dict | None = None, bpb: int | None = None) -> str:
        self.serial += 1
        record = make_record(self.identity, self.serial, now_ms(), pad, diff=diff, bpb=bpb)
        await self.swarm.publish(record)
        return record.hex_id

    async def steady(self, rate: float, seconds: float, pad: int) -> None:
        start = trio.current_time()
        for number in range(int(rate * seconds)):
            await trio.sleep_until(start + number / rate)
            await self.publish_one(pad)

    def ids(self) -> list[str]:
        held = self.ledger.keys()  # (ts_ms, id) pairs
        return sorted(record_id.hex() for _, record_id in held)

    def status(self) -> dict[str, Any]:
        ids = self.ids()
        best = {key: (stats.config if stats else None) for key, stats in self.ledger.best().items()}
        return {
            "count": len(ids),
            "digest": hashlib.sha256("".join(ids).encode()).hexdigest(),
            "peers": [peer["id"] for peer in self.swarm.peers()],
            "best": best,
        }


def usage() -> dict[str, Any]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/statm") as file:
        rss_pages = int(file.read().split()[1])
    return {"cpu_s": own.ru_utime + own.ru_stime, "rss_mb": rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20}


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def serve(node: Node) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(node.swarm.run)
        node.nursery = nursery
        emit({"event": "ready", "peer_id": node.identity.peer_id, "addrs": node.swarm.listen_addrs()})
        nursery.start_soon(stop_on_signal, nursery.cancel_scope)
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                break
            try:
                command = json.loads(line)
                if command.get("cmd") == "stop":
                    break
                reply = await node.handle(command)
            except Exception as err:  # a bad command gets an error reply; the node keeps running
                reply = {"error": f"{type(err).__name__}: {err}"}
            emit(reply)
        nursery.cancel_scope.cancel()


async def stop_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return


class SwarmProcess:
    """The parent's handle on one node process: start it, send commands, wait for replies with deadlines."""

    def __init__(self, home: Path, seed: bytes, psk: bytes, *, listen: str = "/ip4/127.0.0.1/tcp/0", **options: Any):
        self.home, self.seed, self.psk, self.listen, self.options = Path(home), seed, psk, listen, options
        self.peer_id = Identity.from_seed(seed).peer_id
        self.addrs: list[str] = []
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "SwarmProcess":
        self.home.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "tests.node.net.swarm_process", "--home", str(self.home)]
        argv += ["--seed", self.seed.hex(), "--psk", self.psk.hex(), "--listen", self.listen]
        for name, value in self.options.items():
            for item in value if isinstance(value, list) else [value]:
                argv += [f"--{name.replace('_', '-')}", str(item)]
        root = Path(__file__).resolve().parents[3]
        with open(self.home / "node.log", "ab") as log:
            self.process = subprocess.Popen(
                argv, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1
            )
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, args=(self.process.stdout, self._lines), daemon=True).start()
        ready = self._next(timeout)
        if ready.get("event") != "ready":
            raise RuntimeError(f"node {self.peer_id} did not start: {ready}")
        self.addrs = ready["addrs"]
        return self

    def request(self, command: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._next(timeout)

    def stop(self, timeout: float = 15.0) -> dict[str, Any]:
        """Clean shutdown through SIGTERM; the final event line."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self._until_event("stopped", timeout)
        finally:
            self.process.wait(timeout)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def _until_event(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            line = self._next(max(0.0, deadline - time.monotonic()))
            if line.get("event") == event:
                return line

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"node {self.peer_id} sent nothing for {timeout:.0f} s") from None
        if line is None:
            raise RuntimeError(f"node {self.peer_id} exited (code {self.process.poll()}); see {self.home}/node.log")
        return line

    @staticmethod
    def _read(stream: Any, lines: "queue.Queue[dict[str, Any] | None]") -> None:
        for line in stream:
            lines.put(json.loads(line))
        lines.put(None)


# --- helpers for tests and benchmarks, on the parent's side ---


LOCAL = "/ip4/127.0.0.1/tcp/0"


@asynccontextmanager
async def attacker(
    psk: bytes, identity: Identity, target_addr: str, topic: str, connect_within_s: float = 20.0
) -> AsyncIterator[tuple[IHost, Pubsub, ID]]:
    """A bare host with the swarm key, signing as ``identity``: subscribed to ``topic`` and connected to the
    node at ``target_addr``, its pubsub stream open, for the block. What a hostile member or outsider drives."""
    host = build_host(identity, psk, LOCAL)
    pubsub = build_pubsub(host)
    async with (
        background_trio_service(pubsub),
        background_trio_service(pubsub.router),
        host.run([multiaddr.Multiaddr(LOCAL)]),
    ):
        await pubsub.subscribe(topic)
        info = info_from_p2p_addr(multiaddr.Multiaddr(target_addr))
        with trio.fail_after(connect_within_s):
            await host.connect(info)
            while info.peer_id not in pubsub.peers:  # our pubsub stream is open: publishes will flow
                await trio.sleep(0.05)
        yield host, pubsub, info.peer_id


def start_node(home: Path, psk: bytes, bootstrap: list[str] = (), seed: bytes | None = None, **options: Any):
    """A started node process; announcements every second and redials at most 2 s apart unless told."""
    options.setdefault("announce_interval", 1.0)
    options.setdefault("max_backoff", 2.0)
    return SwarmProcess(home, seed or os.urandom(32), psk, bootstrap=list(bootstrap), **options).start()


def wait_until(condition: Any, timeout: float, interval: float = 0.25, what: str = "condition") -> Any:
    """Poll ``condition()`` until it returns something true; AssertionError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g} s (last: {value!r})")
        time.sleep(interval)


def held(node: SwarmProcess) -> set[str]:
    return set(node.request({"cmd": "ids"})["ids"])


def publish(node: SwarmProcess, n: int, pad: int = 0, **fields: Any) -> set[str]:
    """Publish ``n`` records from ``node``; ``fields`` may set their "diff" and "bpb" (micro-bpb)."""
    return set(node.request({"cmd": "publish", "n": n, "pad": pad, **fields})["published"])


def all_hold(nodes: list[SwarmProcess], expected: set[str]) -> bool:
    return all(expected <= held(node) for node in nodes)


def identical(nodes: list[SwarmProcess]) -> bool:
    """Whether every node holds the same record set and names the same best configs."""
    statuses = [node.request({"cmd": "status"}) for node in nodes]
    return len({(status["digest"], json.dumps(status["best"], sort_keys=True)) for status in statuses}) == 1


def kill_all(nodes: list[SwarmProcess]) -> None:
    for node in nodes:
        node.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--seed", required=True, help="64 hex digits: the node's Ed25519 private key")
    parser.add_argument("--psk", required=True, help="64 hex digits: the swarm key")
    parser.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    parser.add_argument("--bootstrap", action="append", default=[])
    parser.add_argument("--sync-interval", type=float, default=30.0)
    parser.add_argument("--announce-interval", type=float, default=10.0)
    parser.add_argument("--member-records-per-minute", type=int, default=MEMBER_RECORDS_PER_WINDOW)
    parser.add_argument("--max-backoff", type=float, default=30.0)
    parser.add_argument("--founder", action="append", default=[], help="a founding admin: the swarm has a roster")
    parser.add_argument("--log", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(level=args.log, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    node = Node(args)
    try:
        trio.run(serve, node)
        count = len(node.ledger)
    finally:
        node.ledger.close()
    emit({"event": "stopped", "count": count})


if __name__ == "__main__":
    main()
