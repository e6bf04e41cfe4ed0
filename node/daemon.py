"""The daemon: a services nursery (the swarm, the control socket) around a research nursery (the workers).

Shutdown is designed: the first SIGINT/SIGTERM stops the workers, which end their running
experiments deliberately (each becomes a 'killed' record, kept and shared); the daemon waits for
the research nursery to finish, at most STOP_EXPERIMENTS_S, then cancels the services and the host
closes. A second signal cancels at once. The ledger belongs to the caller, who opens it in a `with`.
"""

import logging
import os
import signal
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import trio

from node.clock import now_ms
from node.control import serve_control
from node.dashboard import Dashboard, serve_dashboard
from node.errors import NodeError
from node.home import Home
from node.net.swarm import Swarm
from node.research.llm_proposer import LLMSettings, make_proposer
from node.research.loop import ResearchLoop
from node.settings import Settings
from node.store.ledger import Ledger
from protocol.identity import Identity
from protocol.policy import Policy
from protocol.records import ROSTER_KINDS, decode
from trainer.hardware import gpu_count, resolve_device
from trainer.spec import track_for

log = logging.getLogger("arnode.daemon")

STOP_EXPERIMENTS_S = 30  # how long a deliberate stop waits for the workers to record their kills


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
                ledger=self.ledger,
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
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as services:
                await services.start(self.swarm.run)
                await services.start(serve_control, self.home.control_socket, self.control_handlers())
                if self.options.dashboard:
                    dashboard = Dashboard(self.ledger, {"status": self.status, "peers": self.swarm.peers})  # read-only
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

    def status(self) -> dict[str, Any]:
        views = self.ledger.assess()
        view = views.get(self.track.key)
        best = view.best if view else None
        return {
            "peer_id": self.identity.peer_id,
            "swarm": self.policy.swarm_id,
            "track": self.track.key,
            "uptime_s": round(time.time() - self.started),
            "peers": len(self.swarm.peers()),
            "gossip": dict(self.swarm.counters),  # the validators' verdicts: accepted, held, invalid, ...
            "records": len(self.ledger),
            "best": {"config": best.config, "val_bpb": best.evidence_mean, "runs": best.runs} if best else None,
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


def bootstrap_sources(explicit: str | None, settings: Settings, home: Home) -> list[Path]:
    """Where bootstrap peers come from: --bootstrap, the config, else ./bootstrap_peers.txt and the home's."""
    if explicit:
        return [Path(explicit)]
    if settings.bootstrap_file:
        return [Path(settings.bootstrap_file).expanduser()]
    return [path for path in (Path("bootstrap_peers.txt"), home.config_dir / "bootstrap_peers.txt") if path.exists()]


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
