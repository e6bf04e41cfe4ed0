"""Does the daemon keep answering while it catches up on 100,000 records and recomputes its views?

A source node in another process (a real Swarm on 127.0.0.1 whose ledger holds bench.ledger's
deep, frontier-following history) and, in this process, a fresh real Daemon (no workers, its page
on) that bootstraps to it, so the whole history arrives by sync through its gate, while the views
are read again whenever the ledger has grown (as the page and the research loop do, through the
daemon's LedgerReader). Then a fresh reader recomputes every view from scratch, the daemon idles
for 2 s, and the page's state and progress picture are fetched once. All the while a probe task
on the daemon's trio loop sleeps 10 ms and records how late it wakes (the loop's lag), and the
source pings the daemon over libp2p (/ipfs/ping/1.0.0) every 0.25 s.

Prints the lag in each phase (worst, p99, median), the ping round trips, and for reference the
time the same views take when computed on the trio thread itself: the lag they would cause there.
Target: lag <= 100 ms at all times.

    python -m bench.loop_lag [--records 100000] [--timeout 600]
"""

import argparse
import gc
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import trio

from bench.ledger import NOW, POLICY, deep_records

PROBE_S = 0.010  # the probe's sleep: its overshoot is the loop's lag
SLOW_STEP_S = 0.050
PING_EVERY_S = 0.25
CAUGHT_UP_POLL_S = 0.5
PAGE_TIMEOUT_S = 180  # the picture replays the history: slow on a big ledger, but off the trio thread
STALLED_S = 60
PHASES = {
    "catch-up": "sync catches up, the views follow it",
    "recompute": "every view is recomputed from scratch",
    "idle": "idle",
    "page": "the page's state, then its picture",
}  # no new record for this long ends the catch-up phase (refused records never arrive)


@dataclass(frozen=True)
class Spread:
    """A sample's size, worst, 99th percentile and median, in milliseconds."""

    count: int
    worst_ms: float
    p99_ms: float
    median_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> "Spread":
        if not seconds:
            return cls(0, float("nan"), float("nan"), float("nan"))
        ordered = sorted(seconds)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        return cls(len(ordered), ordered[-1] * 1000, p99 * 1000, statistics.median(ordered) * 1000)

    def __str__(self) -> str:
        spread = f"worst {self.worst_ms:7.1f} ms  p99 {self.p99_ms:6.1f} ms  median {self.median_ms:5.1f} ms"
        return f"{spread}  ({self.count})"


class LagProbe:
    """A task that sleeps PROBE_S again and again and keeps each wake-up's overshoot under the current phase."""

    def __init__(self) -> None:
        self.phase = "start"
        self.lags: dict[str, list[float]] = {}

    async def run(self) -> None:
        while True:
            start = trio.current_time()
            await trio.sleep(PROBE_S)
            self.lags.setdefault(self.phase, []).append(trio.current_time() - start - PROBE_S)


class SlowSteps(trio.abc.Instrument):
    """Task steps on the trio thread longer than SLOW_STEP_S, by task name: who holds the loop when it lags."""

    def __init__(self, lag: LagProbe) -> None:
        self.lag, self.worst, self._started = lag, {}, 0.0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._started = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        took = time.perf_counter() - self._started
        if took > SLOW_STEP_S:
            key = (self.lag.phase, ".".join(task.name.split(".")[-2:]))  # e.g. Swarm._sync_sessions
            self.worst[key] = max(self.worst.get(key, 0.0), took)


class CollectorProbe:
    """The garbage collector's full (generation 2) collections and how long each held the GIL, per phase:
    a collection stops every thread, the trio thread too, whichever thread triggered it."""

    def __init__(self, lag: LagProbe) -> None:
        self.lag, self.pauses, self._started = lag, {}, 0.0

    def __call__(self, event: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if event == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.setdefault(self.lag.phase, []).append(time.perf_counter() - self._started)


# --- the source: a real Swarm in its own process ---


def source_ledger(records: int, directory: Path) -> Path:
    """A ledger file holding ``records`` of the deep history, built once and kept in the temp directory."""
    from node.store.ledger import Ledger

    cached = Path(tempfile.gettempdir()) / f"arnode-bench-looplag-{records}.sqlite"
    if not cached.exists():
        raws = deep_records(records)
        scratch = cached.with_suffix(".building")
        scratch.unlink(missing_ok=True)
        with Ledger.open(scratch, POLICY) as ledger:
            for start in range(0, len(raws), 500):
                ledger.add_many(raws[start : start + 500], now_ms=NOW)
        scratch.rename(cached)
    target = directory / "ledger.sqlite"
    shutil.copyfile(cached, target)
    return target


async def serve_source(ledger_path: Path, psk: bytes) -> None:
    """Serve the ledger on 127.0.0.1, ping every connected peer, and print the round trips at the end of stdin."""
    from libp2p.exceptions import BaseLibp2pError
    from libp2p.host.ping import PingService
    from libp2p.peer.id import ID

    from node.net.swarm import Swarm
    from node.store.ledger import Ledger
    from protocol.identity import Identity

    with Ledger.open(ledger_path, POLICY) as ledger:
        swarm = Swarm(Identity.generate(), psk, POLICY, ledger, listen="/ip4/127.0.0.1/tcp/0")
        rtts: list[float] = []
        failures: list[str] = []

        async def ping_peers() -> None:
            pinger = PingService(swarm.host)
            while True:
                await trio.sleep(PING_EVERY_S)
                for peer in swarm.peers():
                    start = trio.current_time()
                    try:
                        await pinger.ping(ID.from_base58(peer["id"]), 1)
                        rtts.append(trio.current_time() - start)
                    except (trio.TooSlowError, ValueError, BaseLibp2pError) as err:  # a figure to report, not a crash
                        failures.append(f"{type(err).__name__}: {err}"[:120])

        async with trio.open_nursery() as nursery:
            await nursery.start(swarm.run)
            print(json.dumps({"addrs": swarm.listen_addrs(), "count": len(ledger)}), flush=True)
            nursery.start_soon(ping_peers)
            await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)  # until the parent closes it
            nursery.cancel_scope.cancel()
        print(json.dumps({"rtts": rtts, "failures": failures}), flush=True)


# --- the daemon under load, in this process ---


async def fetch(url: str) -> bytes:
    """One answer of the page, fetched from a thread of its own as a browser would, not on the daemon's loop."""

    def get() -> bytes:
        with urllib.request.urlopen(url, timeout=PAGE_TIMEOUT_S) as answer:
            return answer.read()

    return await trio.to_thread.run_sync(get)


async def catch_up(daemon, source_count: int, timeout_s: float) -> int:
    """Until the daemon holds ``source_count`` records (or none arrive for STALLED_S), reading every view
    again whenever the ledger has grown, as the page and the research loop do; how many reads."""
    from node.store.ledger import Ledger

    views_read, last_count, last_change = 0, 0, time.perf_counter()
    with trio.move_on_after(timeout_s):
        while len(daemon.ledger) < source_count and time.perf_counter() - last_change < STALLED_S:
            if len(daemon.ledger) != last_count:
                last_count, last_change = len(daemon.ledger), time.perf_counter()
                await daemon.reader.read(Ledger.assess)
                views_read += 1
            await trio.sleep(CAUGHT_UP_POLL_S)
    return views_read


async def measure(daemon, source_count: int, timeout_s: float) -> None:
    from node.ledger_reader import LedgerReader
    from node.store.ledger import Ledger

    probe = LagProbe()
    collector, steps = CollectorProbe(probe), SlowSteps(probe)
    gc.callbacks.append(collector)
    trio.lowlevel.add_instrument(steps)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(probe.run)
        nursery.start_soon(daemon.run)
        while daemon.dashboard_url is None:
            await trio.sleep(0.05)
        probe.phase, started = "catch-up", time.perf_counter()
        views_read = await catch_up(daemon, source_count, timeout_s)
        catch_up_s = time.perf_counter() - started
        print(
            f"catch-up by sync: {len(daemon.ledger):,} of {source_count:,} records in {catch_up_s:.1f} s"
            f" ({len(daemon.ledger) / catch_up_s:,.0f} records/s), every view read {views_read} times meanwhile"
        )
        probe.phase, started = "recompute", time.perf_counter()
        fresh = LedgerReader(daemon.ledger.path, daemon.ledger.policy)
        views = await fresh.read(Ledger.assess)
        fresh.close()
        runs = sum(sum(s.runs + s.failures for s in view.leaderboard) for view in views.values())
        print(f"every view recomputed from scratch: {runs:,} runs in {time.perf_counter() - started:.1f} s")
        probe.phase = "idle"
        await trio.sleep(2)
        probe.phase = "page"
        for path in ("api/state", "progress.png"):
            started = time.perf_counter()
            try:
                size = len(await fetch(daemon.dashboard_url + path))
                print(f"the page's {path}: {size:,} bytes in {time.perf_counter() - started:.1f} s")
            except TimeoutError:
                print(f"the page's {path}: no answer within {PAGE_TIMEOUT_S} s (the daemon kept answering the rest)")
        nursery.cancel_scope.cancel()
    print("\nthe daemon's trio loop lag (a 10 ms sleep's overshoot), while:")
    for phase, what in PHASES.items():
        print(f"  {what:<40} {Spread.of(probe.lags.get(phase, []))}")
    everything = [lag for lags in probe.lags.values() for lag in lags]
    print(f"  {'at any time':<40} {Spread.of(everything)}   target: worst <= 100 ms")
    gc.callbacks.remove(collector)
    trio.lowlevel.remove_instrument(steps)
    print("full garbage collections (they stop every thread), while:")
    for phase, what in PHASES.items():
        print(f"  {what:<40} {Spread.of(collector.pauses.get(phase, []))}")
    print(f"the longest steps of tasks on the trio thread (over {SLOW_STEP_S * 1000:.0f} ms), while:")
    for phase, what in PHASES.items():
        slowest = sorted(((took, name) for (at, name), took in steps.worst.items() if at == phase), reverse=True)
        print(f"  {what:<40} " + ", ".join(f"{name} {took * 1000:.0f} ms" for took, name in slowest[:4]))
    started = time.perf_counter()
    daemon.ledger.assess()  # on this thread, deliberately: what the lag would be without the reader
    print(f"reference: the same views computed on the trio thread block it {time.perf_counter() - started:.1f} s")


def run_bench(args: argparse.Namespace) -> None:
    import secrets

    from node.daemon import Daemon, DaemonOptions
    from node.home import Home
    from node.settings import Settings
    from node.store.ledger import Ledger
    from protocol.identity import Identity

    psk = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        path = source_ledger(args.records, root)
        print(f"source ledger of {args.records:,} deep-history records ready in {time.perf_counter() - started:.1f} s")
        source = subprocess.Popen(
            [sys.executable, "-m", "bench.loop_lag", "--serve", str(path), "--psk", psk.hex()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            hello = json.loads(source.stdout.readline())
            home = Home.locate(root / "daemon")
            home.ensure()
            options = DaemonOptions(
                listen="/ip4/127.0.0.1/tcp/0", bootstrap=hello["addrs"], device="cpu", workers=[],
                max_experiments=None, dashboard=("127.0.0.1", 0),
            )  # fmt: skip
            with Ledger.open(home.ledger_file, POLICY) as ledger:
                daemon = Daemon(home, Identity.generate(), psk, POLICY, Settings(), options, ledger)
                trio.run(measure, daemon, hello["count"], args.timeout)
            source.stdin.close()
            pings = json.loads(source.stdout.readline())
        finally:
            source.kill()
            source.wait(10)
    print(f"libp2p ping of the daemon from the source, every {PING_EVERY_S} s: {Spread.of(pings['rtts'])}")
    if pings["failures"]:
        print(f"  {len(pings['failures'])} pings failed, the first: {pings['failures'][0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=600, help="seconds the catch-up may take at most")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the source process: its ledger file
    parser.add_argument("--psk", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        trio.run(serve_source, args.serve, bytes.fromhex(args.psk))
    else:
        run_bench(args)


if __name__ == "__main__":
    main()
