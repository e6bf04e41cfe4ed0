"""The daemon: one nursery owning the swarm, the research workers and the control socket.

Shutdown is designed: the first SIGINT/SIGTERM stops taking work and ends the running experiments
deliberately (each becomes a 'killed' record, kept and shared), then the host closes and the
ledger is flushed. A second signal cancels at once.
"""

import logging
import os
import signal
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import trio

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
from trainer.hardware import gpu_count, resolve_device
from trainer.spec import track_for

log = logging.getLogger("arnode.daemon")

STOP_EXPERIMENTS_S = 30  # how long a deliberate stop waits for the workers to record their kills


@dataclass(frozen=True)
class DaemonOptions:
    listen: str
    bootstrap: list[str]
    device: str
    workers: list[tuple[str, dict[str, str] | None]]  # (name, environment) per worker, e.g. one per GPU
    max_experiments: int | None
    llm_model: str | None = None  # overrides ARNODE_MODEL and the config
    sync_interval_s: float = 30.0
    dashboard: tuple[str, int] | None = None  # (host, port) of the live page; port 0 picks a free one


class Daemon:
    def __init__(
        self, home: Home, identity: Identity, psk: bytes, policy: Policy, settings: Settings, options: DaemonOptions
    ) -> None:
        self.home, self.identity, self.policy, self.options = home, identity, policy, options
        self.started = time.time()
        self.dashboard_url: str | None = None
        self.ledger = Ledger.open(home.ledger_file, policy)
        self.track = track_for(options.device, policy.dataset, policy.budget_kind, policy.budget, policy.eval_version)
        self.swarm = Swarm(
            identity,
            psk,
            policy,
            self.ledger,
            listen=options.listen,
            bootstrap=options.bootstrap,
            sync_interval_s=options.sync_interval_s,
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
            )
            for name, env in options.workers
        ]

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.swarm.run)
                await nursery.start(serve_control, self.home.control_socket, self.control_handlers())
                if self.options.dashboard:
                    dashboard = Dashboard(self.ledger, self.control_handlers())
                    self.dashboard_url = await nursery.start(serve_dashboard, dashboard, *self.options.dashboard)
                log.info("node %s on swarm %s, track %s", self.identity.peer_id, self.policy.swarm_id, self.track.key)
                for research in self.loops:
                    nursery.start_soon(research.run)
                await self._wait_for_signal(nursery)
        finally:
            self.ledger.close()

    async def _wait_for_signal(self, nursery: trio.Nursery) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("%s: stopping; the running experiments end as 'killed' records", signal.Signals(signum).name)
                break
            for research in self.loops:
                research.stop()
            with trio.move_on_after(STOP_EXPERIMENTS_S) as waiting:
                async with trio.open_nursery() as watch:
                    watch.start_soon(_cancel_on_next_signal, signals, waiting)
                    while any(research.status.current for research in self.loops):
                        await trio.sleep(0.1)
                    watch.cancel_scope.cancel()
            nursery.cancel_scope.cancel()

    def control_handlers(self) -> dict[str, Any]:
        return {"status": self.status, "peers": self.swarm.peers}

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
            "records": len(self.ledger),
            "best": {"config": best.config, "val_bpb": best.evidence_mean, "runs": best.runs} if best else None,
            "workers": [research.describe() for research in self.loops],
            "listen": self.swarm.listen_addrs(),
            "dashboard": self.dashboard_url,
        }


async def _cancel_on_next_signal(signals: Any, scope: trio.CancelScope) -> None:
    async for signum in signals:
        log.warning("%s again: stopping at once, without waiting for the experiments", signal.Signals(signum).name)
        scope.cancel()
        return


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
