"""The research loop: choose work, claim it, run the trainer, sign the result, share it.

One loop per worker (one per GPU, or one on a CPU box). Every outcome, failures and kills
included, becomes a signed ``result`` record, so no node repeats a dead end on the same parent.
Planning reads the ledger through a Reader, off the trio thread (views can take seconds); the
methods that take a ``ledger`` run there.
"""

import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import trio

from node.clock import now_ms
from node.errors import NodeError
from node.home import Home
from node.research.agent import (
    AgentContext,
    Idea,
    Observation,
    OpenHypothesis,
    PastResult,
    Proposal,
    Proposer,
    ProposerExhausted,
    load_program,
)
from node.research.runner import TrainerOutcome, TrainerRun
from node.research.space import EVERY_KNOB, SearchSpace
from node.research.work import WorkWeights, choose_work, teaches, tried_configs
from node.store.ledger import Ledger
from protocol.acceptance import ConfigStats, TrackView, bpb
from protocol.announce import Claim
from protocol.config import Config, config_hash, default_config
from protocol.errors import ProtocolError
from protocol.identity import Identity
from protocol.policy import Policy
from protocol.records import METRICS, Record, sign
from protocol.track import Track
from trainer.report import code_hash
from trainer.spec import SpecError, build_spec, profile_for

log = logging.getLogger("arnode.loop")
T = TypeVar("T")

STARTUP_GRACE_S = 600  # on top of a seconds budget: imports, tokenizer, compile, evaluation
UNTIMED_LIMIT_S = 4 * 3600  # hard limit for token and step budgets, whose duration we can't predict
CLAIM_MARGIN_S = 120
RECENT_RESULTS = 20
LEADERBOARD_HEAD = 10
OBSERVATIONS = 500  # configs the model-based proposer learns from, best evidence first
MAX_SEED = 2**31 - 1
RETRY_S = 60
SHARE_TIMEOUT_S = 10  # a shielded hand-over to the swarm (release a claim, publish) during shutdown
MEMBERSHIP_POLL_S = 2.0


class Network(Protocol):
    """What the loop needs of the swarm (node.net.swarm.Swarm), so research never depends on libp2p."""

    async def publish(self, record: Record) -> None: ...
    async def announce_claim(self, track_key: str, config_hash: str, ttl_s: float) -> None: ...
    async def release_claim(self, track_key: str, config_hash: str) -> None: ...
    def live_claims(self, now_ms: int) -> list[Claim]: ...


class Reader(Protocol):
    """How the loop reads the ledger (node.ledger_reader.LedgerReader): ``fn(ledger, *args)`` off the trio thread."""

    async def read(self, fn: Callable[..., T], *args: Any) -> T: ...


@dataclass
class WorkerStatus:
    """What one worker is doing, for `arnode status` and the live view."""

    name: str
    experiments: int = 0
    current: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    idle_reason: str = ""
    history: list[str] = field(default_factory=list)


class HardwareMismatch(NodeError):
    """The trainer measured other hardware than this node's track names; nothing was signed."""


def check_measured_hardware(track: Track, outcome: TrainerOutcome) -> None:
    """Refuse a result the trainer measured on hardware other than the track's, or on none at all."""
    result = outcome.result
    if result is None or result.hardware == track.hardware:
        return  # no result file: what we saw from outside (timeout, kill) happened on this box's track
    if result.hardware is None:
        raise HardwareMismatch(f"the trainer could not open device {result.device} ({result.error}); not signed")
    raise HardwareMismatch(
        f"the trainer ran on {result.hardware}, but this node's track is {track.hardware}; not signed "
        "(check that torch can use the GPU nvidia-smi shows, or start with --device cpu)"
    )


class ResearchLoop:
    def __init__(
        self,
        *,
        name: str,
        identity: Identity,
        reader: Reader,
        swarm: Network,
        policy: Policy,
        track: Track,
        device: str,
        home: Home,
        proposer: Proposer,
        weights: WorkWeights,
        max_experiments: int | None = None,
        env: dict[str, str] | None = None,
        space: SearchSpace = EVERY_KNOB,
    ) -> None:
        self.identity, self.reader, self.swarm, self.policy, self.track = identity, reader, swarm, policy, track
        self.device, self.home, self.env = device, home, env
        self.proposer, self.weights = proposer, weights
        self.max_experiments, self.space = max_experiments, space
        self.root = config_hash(default_config(profile_for(device)))
        self.status = WorkerStatus(name)
        self._stopping = False
        self._waiting: trio.CancelScope | None = None  # planning or a retry pause, which a stop abandons
        self._run: TrainerRun | None = None
        self._unrunnable: set[str] = set()

    def stop(self) -> None:
        """Finish deliberately: the running experiment is killed and recorded as 'killed'."""
        self._stopping = True
        if self._waiting is not None:
            self._waiting.cancel()
        if self._run is not None:
            self._run.stop()

    def describe(self) -> dict[str, Any]:
        """The worker's status; a running experiment with its progress (run_progress.RunProgress's fields)."""
        described = dict(self.status.__dict__)
        if self.status.current is not None and self._run is not None:
            described["current"] = {**self.status.current, **self._run.progress().to_status()}
        return described

    async def run(self) -> None:
        while not self._stopping and (self.max_experiments is None or self.status.experiments < self.max_experiments):
            if not await self.reader.read(Ledger.is_member, self.identity.peer_id):
                # our results would be refused everywhere: wait for an admin's invite to arrive by sync
                self.status.idle_reason = (
                    f"not a member yet: an admin runs `arnode swarm invite {self.identity.peer_id}`"
                )
                await trio.sleep(MEMBERSHIP_POLL_S)
                continue
            try:
                await self.run_one()
            except HardwareMismatch as err:  # every further run would measure the same: stop researching
                self.status.current, self.status.idle_reason = None, f"stopped: {err}"
                log.error("%s: %s", self.status.name, err)
                return
            except (ProposerExhausted, ProtocolError, SpecError) as err:
                # nothing runnable right now (e.g. a candidate whose lineage we lack): new records may change that
                self.status.idle_reason = f"waiting: {err}"
                log.warning("%s: no experiment to run (%s); trying again in %d s", self.status.name, err, RETRY_S)
                await self._unless_stopped(trio.sleep, RETRY_S)
        if self._stopping:
            self.status.idle_reason = "stopped"
            log.info("%s: stopped after %d experiments", self.status.name, self.status.experiments)
        else:
            self.status.idle_reason = f"done {self.status.experiments} experiments"
            log.info("%s: %s; staying up as a peer", self.status.name, self.status.idle_reason)

    async def run_one(self) -> Record | None:
        """Plan, run and publish one experiment; None when a stop came while planning."""
        started = time.monotonic()
        plan = await self._unless_stopped(self._plan)
        if plan is None:
            return None
        self.status.idle_reason = ""
        await self.swarm.announce_claim(self.track.key, plan.config_hash, self._timeout_s() + CLAIM_MARGIN_S)
        for idea in plan.ideas:  # what the proposer ranked next: any node may run it while we run this
            await self.swarm.publish(
                sign(self.identity, "hypothesis", plan.hypothesis_body(self.track, idea), now_ms())
            )
        spec = build_spec(plan.config, self.track, self.device, self.home.data_cache, self.home.cache_dir)
        run_dir = self.home.runs_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{plan.config_hash[:8]}-{plan.config['seed']}"
        self._run = TrainerRun(spec, run_dir, self._timeout_s(), self.env)
        self.status.current = {**plan.describe(), "started": time.time(), "run_dir": str(run_dir)}
        try:
            outcome = await self._run.run()
        finally:
            self._run = None
            with trio.move_on_after(SHARE_TIMEOUT_S, shield=True):
                await self.swarm.release_claim(self.track.key, plan.config_hash)
        check_measured_hardware(self.track, outcome)
        record = sign(self.identity, "result", plan.body(self.track, outcome), now_ms())
        (run_dir / "record.bin").write_bytes(record.raw)
        with trio.move_on_after(SHARE_TIMEOUT_S, shield=True):  # a finished result is shared even while we stop
            await self.swarm.publish(record)
        self.status.experiments += 1
        self.status.current = None
        # everything but the trainer's own wall time: planning (and the LLM), claiming, signing, publishing
        overhead_s = time.monotonic() - started - outcome.wall_s
        self.status.last = {
            **plan.describe(),
            "outcome": outcome.outcome,
            "val_bpb": bpb(record.body["val_bpb"]),
            "trainer_s": round(outcome.wall_s, 3),
            "overhead_s": round(overhead_s, 3),
        }
        log.info(
            "%s: %s %s -> %s %s",
            self.status.name,
            plan.kind,
            plan.config_hash[:10],
            outcome.outcome,
            bpb(record.body["val_bpb"]) or outcome.error,
        )
        return record

    async def _unless_stopped(self, wait: Callable[..., Awaitable[T]], *args: Any) -> T | None:
        """``await wait(*args)``, or None as soon as stop() is called: nothing of it is recorded."""
        with trio.CancelScope() as self._waiting:
            if self._stopping:
                self._waiting.cancel()
            return await wait(*args)
        return None

    def _timeout_s(self) -> float:
        if self.track.budget_kind == "seconds":
            return self.track.budget + STARTUP_GRACE_S
        return UNTIMED_LIMIT_S

    async def _plan(self) -> "Plan":
        chosen = await self.reader.read(self._choose, self.swarm.live_claims(now_ms()))
        if isinstance(chosen, Plan):
            return chosen
        ctx, rng, seed = chosen.context, chosen.rng, chosen.seed
        proposal: Proposal = await trio.to_thread.run_sync(self.proposer.propose, ctx, rng, abandon_on_cancel=True)
        if proposal.fell_back_reason:
            log.warning(
                "%s: the LLM's proposal was not used (%s); built-in search instead",
                self.status.name,
                proposal.fell_back_reason,
            )
        config = {**proposal.config, "seed": seed}
        return Plan(
            "explore", config, ctx.best_hash, proposal.diff, proposal.hypothesis, proposal.proposer,
            ideas=proposal.alternatives,
        )  # fmt: skip

    def _choose(self, ledger: Ledger, live_claims: list[Claim]) -> "Plan | Exploration":
        """The next work: a baseline or a replication, planned in full, or an exploration for the proposer."""
        view = ledger.view(self.track.key)
        claims = self._running_claims(ledger, live_claims)
        claimed_by_others = {c.config for c in claims if c.author != self.identity.peer_id} | self._unrunnable
        rng = random.Random(self._state_seed(view))
        work = choose_work(view, self.root, self.identity.peer_id, claimed_by_others, self.policy, self.weights, rng)
        seed = rng.randrange(MAX_SEED)
        if work.kind == "baseline":
            config = default_config(profile_for(self.device))
            return Plan("baseline", {**config, "seed": seed}, self.root, {}, "baseline: the default config", "builtin")
        if work.is_replication:
            target = work.target
            try:
                config = {**ledger.resolve_config(target.config), "seed": seed}
            except ProtocolError:
                self._unrunnable.add(target.config)  # its lineage is broken or missing: skip it from now on
                raise
            why = f"{work.kind}: re-run {target.config[:10]} with a fresh seed"
            return Plan(work.kind, config, target.parent, dict(target.diff), why, "builtin", target.discovery)
        return Exploration(self._context(ledger, view, work.target, {c.config for c in claims}), rng, seed)

    def _running_claims(self, ledger: Ledger, live_claims: list[Claim]) -> list[Claim]:
        """Live claims on our track whose claimant has not published a result for them since."""
        finished: dict[tuple[str, str], int] = {}
        for run in ledger.runs(self.track.key):
            finished[run.author, run.config] = max(run.ts_ms, finished.get((run.author, run.config), 0))
        return [
            claim
            for claim in live_claims
            if claim.track_key == self.track.key and finished.get((claim.author, claim.config), -1) < claim.ts_ms
        ]

    def _state_seed(self, view: TrackView | None) -> int:
        """The same ledger state and worker give the same choices; new results change them."""
        runs = sum(s.runs + s.failures for s in view.leaderboard) if view else 0
        text = f"{self.identity.peer_id}/{self.status.name}/{runs}/{self.status.experiments}"
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")

    def _context(self, ledger: Ledger, view: TrackView, parent: ConfigStats, claimed: set[str]) -> AgentContext:
        """What the proposer reads to explore from ``parent``, the config the work chooser picked."""
        best, best_hash = parent, parent.config
        runs = ledger.runs(self.track.key)  # columns only: cheap even at 100k records
        done = tried_configs(runs, self.identity.peer_id, self.policy)
        recent_ids = [run.id for run in reversed(runs) if run.parent == best_hash][:RECENT_RESULTS]
        recent = sorted(ledger.records_by_id(recent_ids), key=lambda r: (r.ts_ms, r.id), reverse=True)
        hypotheses = [
            OpenHypothesis(h.body["parent"], h.body["diff"], h.body["rationale"], h.author)
            for h in ledger.pending_work(self.identity.peer_id).hypotheses
            if h.track == self.track and h.body["parent"] == best_hash
        ]
        return AgentContext(
            track_key=self.track.key,
            best_config=ledger.resolve_config(best_hash),
            best_hash=best_hash,
            best_stats=best,
            parent_config=None if best.is_default else ledger.resolve_config(best.parent),
            sigma=view.sigma,
            leaderboard=view.leaderboard[:LEADERBOARD_HEAD],
            recent=tuple(_past(record) for record in recent),
            hypotheses=tuple(hypotheses),
            tried=frozenset(done | claimed),
            observations=self._observations(ledger, view, done),
            program=load_program(self.home.program_file),
            space=self.space,
            running=self._known_configs(ledger, claimed),
        )

    def _known_configs(self, ledger: Ledger, hashes: set[str]) -> tuple[Config, ...]:
        """The full configs of those of ``hashes`` the ledger can rebuild (a claim names only a hash)."""
        found = []
        for digest in sorted(hashes):
            try:
                found.append(ledger.resolve_config(digest))
            except ProtocolError:
                continue  # a new config, run for the first time: its claim is all we know of it
        return tuple(found)

    def _observations(self, ledger: Ledger, view: TrackView, tried: set[str]) -> tuple[Observation, ...]:
        """Every config on the track whose lineage resolves, with its mean over ok runs (None: only failed,
        where ``tried`` says the failures count: one member's crash reports alone teach nothing)."""
        found = []
        for stats in view.leaderboard[:OBSERVATIONS]:
            if not teaches(stats, tried):
                continue
            try:
                found.append(Observation(ledger.resolve_config(stats.config), stats.mean))
            except ProtocolError:
                continue  # a broken or missing lineage: nothing to learn from
        return tuple(found)


@dataclass(frozen=True)
class Exploration:
    """Work the proposer decides: what it reads, and the worker's random state and seed for the run."""

    context: AgentContext
    rng: random.Random
    seed: int


@dataclass(frozen=True)
class Plan:
    """One experiment, decided: the full config to run and how it relates to the ledger."""

    kind: str
    config: Config
    parent: str
    diff: dict[str, Any]
    hypothesis: str
    proposer: str
    replicates: bytes | None = None
    ideas: tuple[Idea, ...] = ()  # ranked next by the proposer: published as hypotheses on the same parent

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "config": self.config_hash,
            "seed": self.config["seed"],
            "hypothesis": self.hypothesis,
        }

    def hypothesis_body(self, track: Track, idea: Idea) -> dict[str, Any]:
        return {"track": track.to_wire(), "parent": self.parent, "diff": idea.diff, "rationale": idea.rationale}

    def body(self, track: Track, outcome: TrainerOutcome) -> dict[str, Any]:
        result = outcome.result
        ok = outcome.outcome == "ok"
        return {
            "track": track.to_wire(),
            "parent": self.parent,
            "diff": self.diff,
            "config": self.config_hash,
            "seed": self.config["seed"],
            "outcome": outcome.outcome,
            "val_bpb": result.val_bpb_ubpb if ok else None,
            "test_bpb": result.test_bpb_ubpb if ok else None,
            "metrics": result.metrics() if result else dict.fromkeys(METRICS),
            "hypothesis": self.hypothesis,
            "proposer": self.proposer,
            "code": result.code if result else code_hash(),
            "log": outcome.log_digest,
            "error": outcome.error,
            "replicates": self.replicates,
        }


def _past(record: Record) -> PastResult:
    body = record.body
    return PastResult(
        body["config"],
        body["diff"],
        body["outcome"],
        bpb(body["val_bpb"]),
        body["hypothesis"],
        record.author,
        body["proposer"],
        body["error"],
    )
