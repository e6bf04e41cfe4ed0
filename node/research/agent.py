"""What the agent sees and what it answers: the context a proposer reads and the proposal it returns.

The research loop builds an ``AgentContext`` from the ledger; a proposer (built-in search or an
LLM, see builtin_proposer.py and llm_proposer.py) turns it into one ``Proposal``: a diff against
the track's best config that nobody has tried or claimed yet.
"""

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from node.errors import NodeError
from node.research.space import SearchSpace
from protocol.acceptance import ConfigStats
from protocol.config import Config, Value
from protocol.records import CONTROL_CHARS, MAX_HYPOTHESIS_CHARS

DEFAULT_PROGRAM = """\
# Research directions

This file steers the agent that proposes this node's experiments. Edit it freely: it is read
before every proposal and quoted to the language model, if one is configured.

Goal: the lowest validation bits per byte (val_bpb) within the fixed training budget of the track.

Ideas worth trying:
- Learning rates move results the most: try the matrix, embedding and unembedding rates on a
  log scale (x0.5, x0.7, x1.4, x2) before anything exotic.
- Model shape against the time budget: a smaller, faster model often sees more tokens and wins;
  trade depth for width and back.
- Schedule: warmup and warmdown fractions, and the final learning rate fraction.
- Batch size: fewer tokens per step means more steps in the same budget.

Rules of thumb:
- Change one or two knobs at a time, so a result says what caused it.
- Do not repeat a change that already failed or made things worse from the same parent.
- Write the hypothesis as one or two sentences: what you change and why you expect it to help.
"""


@dataclass(frozen=True)
class PastResult:
    """One result from the current parent, good or bad: what was changed and what came of it."""

    config: str  # config hash
    diff: Mapping[str, Value]  # against the parent
    outcome: str  # ok, crash, timeout, diverged, killed
    val_bpb: float | None
    hypothesis: str = ""
    author: str = ""
    proposer: str = ""
    error: str = ""


@dataclass(frozen=True)
class OpenHypothesis:
    """A peer's ``hypothesis`` record nobody has run yet."""

    parent: str  # config hash the diff applies to
    diff: Mapping[str, Value]
    rationale: str
    author: str = ""


@dataclass(frozen=True)
class Observation:
    """One config tried on the track, by any node: its mean val_bpb over ok runs, None if it only failed."""

    config: Config  # full config
    val_bpb: float | None


@dataclass(frozen=True)
class AgentContext:
    """Everything a proposer may read; the research loop builds it from the ledger."""

    track_key: str
    best_config: Config  # full config every proposal starts from
    best_hash: str
    best_stats: ConfigStats | None = None  # None before anything on the track is accepted
    parent_config: Config | None = None  # the config the best was derived from, when it is not a default
    sigma: float | None = None  # the track's noise in bpb, when known
    leaderboard: tuple[ConfigStats, ...] = ()  # head of the leaderboard, best evidence first
    recent: tuple[PastResult, ...] = ()  # results from the best config as parent, newest first
    hypotheses: tuple[OpenHypothesis, ...] = ()
    tried: frozenset[str] = field(default_factory=frozenset)  # config hashes run or claimed on the track
    observations: tuple[Observation, ...] = ()  # every config tried on the track whose lineage resolves
    program: str = DEFAULT_PROGRAM
    space: SearchSpace = field(default_factory=SearchSpace)  # what the user lets proposals change
    running: tuple[Config, ...] = ()  # full configs other nodes are running now, where this node knows them


@dataclass(frozen=True)
class Idea:
    """An experiment a proposer ranked below the one it chose: published as a hypothesis for any node."""

    diff: Config  # against ctx.best_config
    rationale: str


@dataclass(frozen=True)
class Proposal:
    diff: Config  # against ctx.best_config; config knobs only, never the seed
    config: Config  # the full config to run
    config_hash: str
    hypothesis: str
    proposer: str  # "builtin", "model" or the LLM's name
    fell_back_reason: str | None = None  # why the LLM's answer was not used, when it was not
    alternatives: tuple[Idea, ...] = ()  # valid, untried ideas ranked next, best first


class ProposerExhausted(NodeError):
    """No untried config is left around the best one."""


class Proposer(Protocol):
    def propose(self, ctx: AgentContext, rng: random.Random) -> Proposal: ...


def clean_hypothesis(text: str) -> str:
    """Text that fits the result record's hypothesis field: no control characters, not over its cap."""
    text = " ".join(CONTROL_CHARS.sub(" ", text).split())
    return text if len(text) <= MAX_HYPOTHESIS_CHARS else text[: MAX_HYPOTHESIS_CHARS - 3] + "..."


def load_program(path: Path) -> str:
    """The research directions in ``path``; the file is created with the default text if missing."""
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.write_text(DEFAULT_PROGRAM, encoding="utf-8")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise NodeError(f"cannot read the research directions in {path}: {err}") from None
