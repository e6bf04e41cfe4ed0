"""A greedy swarm on one track whose true effects are known: what the findings should find.

Each round explores the same three moves from the frontier (the config with the best estimate) and
one that always runs out of memory, then re-runs the frontier. Truth, in the noise's sigma: 1.5
times the Muon learning rate helps by 3, 0.1 more weight decay does nothing, two more layers hurt
by 6; a run adds seeded Gaussian noise. tests/protocol/test_findings.py checks one swarm's findings
against the truth, and bench/findings.py counts over many.
"""

import random
from dataclasses import dataclass, field

from protocol.acceptance import Lineage, Run, assess
from protocol.config import Config, apply, config_hash, default_config
from protocol.findings import Finding, findings
from protocol.metrics import UBPB
from protocol.policy import Policy
from protocol.track import Track

POLICY = Policy(min_runs=2, min_authors=1)
SIGMA = POLICY.sigma_floor_ubpb / UBPB  # the seed noise a swarm draws by default, the policy's floor
AUTHORS = ("alice", "bob", "carol")
T0 = 1_700_000_000_000

# The truth, in the track's sigma: each move from wherever the frontier is, and what it does there.
MOVES = (
    (lambda config: {"matrix_lr": round(config["matrix_lr"] * 1.5, 6)}, -3.0),
    (lambda config: {"weight_decay": round(config["weight_decay"] + 0.1, 6)}, 0.0),
    (lambda config: {"depth": config["depth"] + 2}, 6.0),
)
HELPS, DOES_NOTHING, HURTS = "matrix_lr up", "weight_decay up", "depth +2"  # the moves as findings name them
RUNS_OUT_OF_MEMORY = {"head_dim": 192}


def track(hardware: str) -> Track:
    return Track(hardware, POLICY.budget_kind, POLICY.budget, POLICY.dataset, "bpe8192", POLICY.eval_version)


@dataclass
class Swarm:
    """The runs of a swarm on ``track``, seeded, with noise of ``noise`` bpb and effects in that unit."""

    track: Track
    seed: int
    noise: float = SIGMA
    runs: list[Run] = field(default_factory=list)
    configs: dict[str, Config] = field(default_factory=dict)
    truth: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        root = default_config("gpu")
        self.configs[config_hash(root)] = root
        self.truth[config_hash(root)] = 1.0
        for _ in range(2):
            self.run(config_hash(root), {})

    def run(self, parent: str, diff: dict, effect: float = 0.0, outcome: str = "ok") -> str:
        """One run of ``parent`` plus ``diff``, whose true effect is ``effect`` sigma the first time it is made."""
        full = apply(self.configs[parent], diff)
        config = config_hash(full)
        self.configs[config] = full
        self.truth.setdefault(config, self.truth[parent] + effect * self.noise)
        value = round((self.truth[config] + self.rng.gauss(0.0, self.noise)) * UBPB) if outcome == "ok" else None
        run_id = self.rng.randbytes(32)
        author = AUTHORS[len(self.runs) % len(AUTHORS)]
        ts_ms = T0 + 1000 * len(self.runs)  # a run a second: within any member's rate limit
        self.runs.append(Run(run_id, ts_ms, author, self.track, config, parent, diff, outcome, value, None))
        return config

    def explore(self, rounds: int) -> None:
        for _ in range(rounds):
            frontier = self.frontier()
            for move, effect in MOVES:
                self.run(frontier, move(self.configs[frontier]), effect)
            self.run(frontier, RUNS_OUT_OF_MEMORY, outcome="oom")
            self.run(frontier, {})  # verification: the frontier again

    def frontier(self) -> str:
        (view,) = assess(self.runs, POLICY).values()
        return view.frontier.config


def found(runs: list[Run]) -> dict[str, Finding]:
    """The findings of ``runs`` (of any swarms), by change, as every node holding them derives them."""
    views = assess(runs, POLICY)
    by_track = {key: [run for run in runs if run.track.key == key] for key in views}
    lineage = Lineage(sorted(runs, key=lambda run: (run.ts_ms, run.id)))
    return {finding.change: finding for finding in findings(views, by_track, lineage.resolve)}
