"""The research loop: choose work, claim it, run the trainer, sign the result, share it.

One loop per worker (one per GPU, or one on a CPU box). Every outcome, failures and kills
included, becomes a signed ``result`` record, so no node repeats a dead end on the same parent.
"""

import hashlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from node.clock import now_ms
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
from node.research.work import WorkWeights, choose_work
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

STARTUP_GRACE_S = 600  # on top of a seconds budget: imports, tokenizer, compile, evaluation
UNTIMED_LIMIT_S = 4 * 3600  # hard limit for token and step budgets, whose duration we can't predict
CLAIM_MARGIN_S = 120
RECENT_RESULTS = 20
LEADERBOARD_HEAD = 10
OBSERVATIONS = 500  # configs the model-based proposer learns from, best evidence first
MAX_SEED = 2**31 - 1
RETRY_S = 60


class Network(Protocol):
    """What the loop needs of the swarm (node.net.swarm.Swarm), so research never depends on libp2p."""

    async def publish(self, record: Record) -> None: ...
    async def announce_claim(self, track_key: str, config_hash: str, ttl_s: float) -> None: ...
    async def release_claim(self, track_key: str, config_hash: str) -> None: ...
    def live_claims(self, now_ms: int) -> list[Claim]: ...


@dataclass
class WorkerStatus:
    """What one worker is doing, for `arnode status` and the live view."""

    name: str
    experiments: int = 0
    current: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    idle_reason: str = ""
    history: list[str] = field(default_factory=list)


class ResearchLoop:
    def __init__(
        self,
        *,
        name: str,
        identity: Identity,
        ledger: Ledger,
        swarm: Network,
        policy: Policy,
        track: Track,
        device: str,
        home: Home,
        proposer: Proposer,
        weights: WorkWeights,
        max_experiments: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.identity, self.ledger, self.swarm, self.policy, self.track = identity, ledger, swarm, policy, track
        self.device, self.home, self.env = device, home, env
        self.proposer, self.weights = proposer, weights
        self.max_experiments = max_experiments
        self.root = config_hash(default_config(profile_for(device)))
        self.status = WorkerStatus(name)
        self._stopping = False
        self._run: TrainerRun | None = None
        self._unrunnable: set[str] = set()

    def stop(self) -> None:
        """Finish deliberately: the running experiment is killed and recorded as 'killed'."""
        self._stopping = True
        if self._run is not None:
            self._run.stop()

    async def run(self) -> None:
        while not self._stopping and (self.max_experiments is None or self.status.experiments < self.max_experiments):
            try:
                await self.run_one()
            except (ProposerExhausted, ProtocolError, SpecError) as err:
                # nothing runnable right now (e.g. a candidate whose lineage we lack): new records may change that
                self.status.idle_reason = f"waiting: {err}"
                log.warning("%s: no experiment to run (%s); trying again in %d s", self.status.name, err, RETRY_S)
                await trio.sleep(RETRY_S)
        self.status.idle_reason = "stopped" if self._stopping else f"done {self.status.experiments} experiments"
        log.info("%s: %s; staying up as a peer", self.status.name, self.status.idle_reason)

    async def run_one(self) -> Record | None:
        """Plan, run and publish one experiment; None when a stop came while planning."""
        started = time.monotonic()
        plan = await self._plan()
        if self._stopping:
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
            with trio.CancelScope(shield=True):
                await self.swarm.release_claim(self.track.key, plan.config_hash)
        record = sign(self.identity, "result", plan.body(self.track, outcome), now_ms())
        (run_dir / "record.bin").write_bytes(record.raw)
        with trio.CancelScope(shield=True):  # a finished result is shared even while we shut down
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

    def _timeout_s(self) -> float:
        if self.track.budget_kind == "seconds":
            return self.track.budget + STARTUP_GRACE_S
        return UNTIMED_LIMIT_S

    async def _plan(self) -> "Plan":
        view = self.ledger.assess().get(self.track.key)
        claims = self._running_claims(now_ms())
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
                config = {**self.ledger.resolve_config(target.config), "seed": seed}
            except ProtocolError:
                self._unrunnable.add(target.config)  # its lineage is broken or missing: skip it from now on
                raise
            why = f"{work.kind}: re-run {target.config[:10]} with a fresh seed"
            return Plan(work.kind, config, target.parent, dict(target.diff), why, "builtin", target.discovery)
        ctx = self._context(view, work.target, {c.config for c in claims})
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

    def _running_claims(self, now_ms: int) -> list[Claim]:
        """Live claims on our track whose claimant has not published a result for them since."""
        finished: dict[tuple[str, str], int] = {}
        for run in self.ledger.runs(self.track.key):
            finished[run.author, run.config] = max(run.ts_ms, finished.get((run.author, run.config), 0))
        return [
            claim
            for claim in self.swarm.live_claims(now_ms)
            if claim.track_key == self.track.key and finished.get((claim.author, claim.config), -1) < claim.ts_ms
        ]

    def _state_seed(self, view: TrackView | None) -> int:
        """The same ledger state and worker give the same choices; new results change them."""
        runs = sum(s.runs + s.failures for s in view.leaderboard) if view else 0
        text = f"{self.identity.peer_id}/{self.status.name}/{runs}/{self.status.experiments}"
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")

    def _context(self, view: TrackView, parent: ConfigStats, claimed: set[str]) -> AgentContext:
        """What the proposer reads to explore from ``parent``, the config the work chooser picked."""
        best, best_hash = parent, parent.config
        runs = self.ledger.runs(self.track.key)  # columns only: cheap even at 100k records
        done = {run.config for run in runs if run.outcome != "killed"}
        recent_ids = [run.id for run in reversed(runs) if run.parent == best_hash][:RECENT_RESULTS]
        recent = sorted(self.ledger.records_by_id(recent_ids), key=lambda r: (r.ts_ms, r.id), reverse=True)
        hypotheses = [
            OpenHypothesis(h.body["parent"], h.body["diff"], h.body["rationale"], h.author)
            for h in self.ledger.pending_work(self.identity.peer_id).hypotheses
            if h.track == self.track and h.body["parent"] == best_hash
        ]
        return AgentContext(
            track_key=self.track.key,
            best_config=self.ledger.resolve_config(best_hash),
            best_hash=best_hash,
            best_stats=best,
            parent_config=None if best.is_default else self.ledger.resolve_config(best.parent),
            sigma=view.sigma,
            leaderboard=view.leaderboard[:LEADERBOARD_HEAD],
            recent=tuple(_past(record) for record in recent),
            hypotheses=tuple(hypotheses),
            tried=frozenset(done | claimed),
            observations=self._observations(view),
            program=load_program(self.home.program_file),
        )

    def _observations(self, view: TrackView) -> tuple[Observation, ...]:
        """Every config on the track whose lineage resolves, with its mean over ok runs (None: only failed)."""
        found = []
        for stats in view.leaderboard[:OBSERVATIONS]:
            try:
                found.append(Observation(self.ledger.resolve_config(stats.config), stats.mean))
            except ProtocolError:
                continue  # a broken or missing lineage: nothing to learn from
        return tuple(found)


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
        result = outcome.result or {}
        ok = outcome.outcome == "ok"
        return {
            "track": track.to_wire(),
            "parent": self.parent,
            "diff": self.diff,
            "config": self.config_hash,
            "seed": self.config["seed"],
            "outcome": outcome.outcome,
            "val_bpb": result.get("val_bpb_ubpb") if ok else None,
            "metrics": {name: _metric(result.get(name)) for name in METRICS},
            "hypothesis": self.hypothesis,
            "proposer": self.proposer,
            "code": result.get("code") or code_hash(),
            "log": outcome.log_digest,
            "error": outcome.error,
            "replicates": self.replicates,
        }


def _metric(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and value >= 0 else None


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
