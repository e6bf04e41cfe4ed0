"""The daemon: a services nursery (the swarm, the control socket) around a research nursery (the workers).

Nothing slow runs on the trio thread, which also answers the network: views are read by a
LedgerReader on its own thread, and `status` shows our track's view as last read, which a task
reads again whenever the ledger has grown. The trio thread gives up the GIL at every system call
and, while a view is computed beside it, waits a switch interval to get it back: the daemon
shortens that interval (GIL_SWITCH_S), or a loop that makes many calls would lag by hundreds of ms.
A full garbage collection stops every thread for as long as it walks the heap, and at start most of
the heap is the imported modules, which are never garbage: the daemon freezes them out of it.

Shutdown is designed: the first SIGINT/SIGTERM stops the workers, which end their running
experiments deliberately (each becomes a 'killed' record, kept and shared); the daemon waits for
the research nursery to finish, at most STOP_EXPERIMENTS_S, then cancels the services and the host
closes. A second signal cancels at once. The ledger belongs to the caller, who opens it in a `with`.
"""

import gc
import logging
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import trio

from node import report
from node.clock import now_ms
from node.control import serve_control
from node.dashboard import Dashboard, serve_dashboard
from node.errors import NodeError
from node.home import Home
from node.ledger_reader import LedgerReader
from node.net.swarm import Swarm
from node.research.llm_proposer import LLMSettings, make_proposer
from node.research.loop import ResearchLoop
from node.settings import Settings
from node.store.ledger import Ledger
from protocol.acceptance import TrackView
from protocol.identity import Identity
from protocol.policy import Policy
from protocol.records import ROSTER_KINDS, decode
from trainer.hardware import gpu_count, resolve_device
from trainer.spec import track_for

log = logging.getLogger("arnode.daemon")

STOP_EXPERIMENTS_S = 30  # how long a deliberate stop waits for the workers to record their kills
# Views allocate millions of short-lived objects: at Python's (700, 10, 10) a replay of the plot ran
# a full collection every 1.4 s, each stopping the loop for 0.5 s on 20k records.
GC_THRESHOLDS = (50_000, 20, 100)
GIL_SWITCH_S = 0.001  # Python's default 0.005 let a busy reader thread lag the loop by 260 ms (p99), 1 ms by 28
VIEW_POLL_S = 0.5  # how often the status view checks whether the ledger has grown


@dataclass(frozen=True)
class DaemonOptions:
    listen: str
    bootstrap: list[str]
    device: str  # resolved once by the caller: cuda, mps or cpu, never auto
    workers: list[tuple[str, dict[str, str] | None]]  # (name, environment) per worker, e.g. one per GPU
    max_experiments: int | None
    llm_model: str | None = None  # overrides ARNODE_MODEL and the config
    sync_interval_s: float = 30.0
    dashboard: tuple[str, int] | None = None  # (host, port) of the live page; port 0 picks a free one


class Daemon:
    def __init__(
        self,
        home: Home,
        identity: Identity,
        psk: bytes,
        policy: Policy,
        settings: Settings,
        options: DaemonOptions,
        ledger: Ledger,
    ) -> None:
        self.home, self.identity, self.policy, self.options, self.ledger = home, identity, policy, options, ledger
        self.started = time.time()
        self.dashboard_url: str | None = None
        self.reader = LedgerReader(ledger.path, policy)
        self._view: tuple[int, TrackView | None] = (-1, None)  # (ledger size it was read at, our track's view)
        self.track = track_for(options.device, policy.dataset, policy.budget_kind, policy.budget, policy.eval_version)
        self.swarm = Swarm(
            identity,
            psk,
            policy,
            self.ledger,
            listen=options.listen,
            bootstrap=options.bootstrap,
            sync_interval_s=options.sync_interval_s,
            dial_any_address=settings.dial_any_address,
        )
        llm = LLMSettings.from_env(asdict(settings))
        proposer = make_proposer(replace(llm, model=options.llm_model) if options.llm_model else llm)
        self.loops = [
            ResearchLoop(
                name=name,
                identity=identity,
                reader=self.reader,
                swarm=self.swarm,
                policy=policy,
                track=self.track,
                device=options.device,
                home=home,
                proposer=proposer,
                weights=settings.work,
                max_experiments=options.max_experiments,
                env=env,
                space=settings.search,
            )
            for name, env in options.workers
        ]

    async def run(self) -> None:
        """Serve until the first signal, then stop the workers and wait for them, within a deadline."""
        switch_s = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_S)
        thresholds = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        gc.freeze()  # 170k objects after the imports: they made each full collection 300 ms longer
        try:
            await self._serve()
        finally:
            self.reader.close()
            sys.setswitchinterval(switch_s)
            gc.unfreeze()
            gc.set_threshold(*thresholds)

    async def _serve(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as services:
                await services.start(self.swarm.run)
                await services.start(serve_control, self.home.control_socket, self.control_handlers())
                services.start_soon(self._follow_view)
                if self.options.dashboard:
                    dashboard = Dashboard(self.reader, {"status": self.status, "peers": self.swarm.peers})  # read-only
                    self.dashboard_url = await services.start(serve_dashboard, dashboard, *self.options.dashboard)
                log.info("node %s on swarm %s, track %s", self.identity.peer_id, self.policy.swarm_id, self.track.key)
                if not self.ledger.is_member(self.identity.peer_id):
                    log.warning(
                        "this node is not a member of the swarm yet: ask an admin to run `arnode swarm invite %s`;"
                        " it starts experimenting once the invite arrives",
                        self.identity.peer_id,
                    )
                research_done = trio.Event()
                services.start_soon(self._research, research_done)
                signum = await _next_signal(signals)
                log.info("%s: stopping; the running experiments end as 'killed' records", signal.Signals(signum).name)
                await self._stop_research(research_done, signals)
                services.cancel_scope.cancel()
        log.info("stopped: %d experiments recorded in this session", sum(r.status.experiments for r in self.loops))

    async def _research(self, done: trio.Event) -> None:
        """The workers' own nursery: it ends when every worker has finished or been stopped."""
        try:
            async with trio.open_nursery() as research:
                for worker in self.loops:
                    research.start_soon(worker.run)
        finally:
            done.set()

    async def _stop_research(self, done: trio.Event, signals: Any) -> None:
        for worker in self.loops:
            worker.stop()
        with trio.move_on_after(STOP_EXPERIMENTS_S) as waiting:
            async with trio.open_nursery() as watch:
                watch.start_soon(_cancel_on_next_signal, signals, waiting)
                await done.wait()
                watch.cancel_scope.cancel()
        if waiting.cancelled_caught:
            log.warning("stopping without waiting longer for the workers to record their experiments")

    def control_handlers(self) -> dict[str, Any]:
        return {"status": self.status, "peers": self.swarm.peers, "publish_roster": self.publish_roster}

    def publish_roster(self, record: str) -> str:
        """Store and gossip a membership or revocation record that `arnode swarm invite/revoke` signed."""
        try:
            raw = bytes.fromhex(record)
        except (ValueError, TypeError):
            raise NodeError("the record is not hex") from None
        found = decode(raw, now_ms())
        if found.kind not in ROSTER_KINDS:
            raise NodeError(f"only membership and revocation records come this way, not {found.kind}")
        self.swarm.publish_nowait(found)
        return found.hex_id

    async def _follow_view(self) -> None:
        """Keep our track's view for `status` as fresh as the ledger, read on the reader's thread."""
        while True:
            count = len(self.ledger)
            if count != self._view[0]:
                self._view = (count, await self.reader.read(Ledger.view, self.track.key))
            await trio.sleep(VIEW_POLL_S)

    def status(self) -> dict[str, Any]:
        """What `arnode status` shows: instant, from memory; the best as of the last view read."""
        view = self._view[1]
        return {
            "peer_id": self.identity.peer_id,
            "swarm": self.policy.swarm_id,
            "track": self.track.key,
            "uptime_s": round(time.time() - self.started),
            "peers": len(self.swarm.peers()),
            "gossip": dict(self.swarm.counters),  # the validators' verdicts: accepted, held, invalid, ...
            "records": len(self.ledger),
            "best": report.best_brief(view),
            "workers": [research.describe() for research in self.loops],
            "listen": self.swarm.listen_addrs(),
            "dashboard": self.dashboard_url,
        }


async def _next_signal(signals: Any) -> int:
    async for signum in signals:
        return signum
    raise AssertionError("a signal receiver never ends")


async def _cancel_on_next_signal(signals: Any, scope: trio.CancelScope) -> None:
    signum = await _next_signal(signals)
    log.warning("%s again: stopping at once, without waiting for the experiments", signal.Signals(signum).name)
    scope.cancel()


def workers_for(device: str, gpus: str) -> list[tuple[str, dict[str, str] | None]]:
    """One worker per GPU, each seeing only its own device; one worker on a CPU or MPS box."""
    resolved = resolve_device(device)
    if resolved != "cuda":
        return [(resolved, None)]
    visible = gpu_count()
    if gpus == "all":
        indices = list(range(visible))
    else:
        try:
            indices = sorted({int(part) for part in gpus.split(",") if part.strip()})
        except ValueError:
            raise NodeError(f"--gpus takes 'all' or a list such as 0,1, not {gpus!r}") from None
    missing = [i for i in indices if not 0 <= i < visible]
    if missing or not indices:
        raise NodeError(f"--gpus {gpus}: this machine has GPUs 0..{visible - 1}")
    return [(f"gpu{i}", {**os.environ, "CUDA_VISIBLE_DEVICES": str(i)}) for i in indices]
