"""What a lineage of runs says about each config's true val_bpb: a spike-and-slab model of changes.

Most changes do nothing, so the runs of a config's descendants are mostly runs of that config, and
exploring from a config verifies it for free. The model, per track:

- a run of config c is its true value theta_c plus seed noise N(0, sigma^2);
- theta_c is its parent's value plus an effect that is exactly zero with probability ``null``, a
  half-normal gain (probability ``helps``, scale ``help_scale``) or a half-normal harm (``hurts``,
  ``hurt_scale``): the prior, fitted by EM to the track's own edges (``fit_prior``). ``null`` is a
  one-knob change's: a change of k knobs does nothing only if each of them does, ``null ** k``, so
  a global sampler's jump across ten knobs never passes for its parent (``Prior.shares``).

``pool`` runs one pass over the lineage, children before parents: each config's Gaussian message
about its own value is its runs plus each child's message weighted by the posterior probability
that the child's change did nothing. A change that helped or hurt carries its subtree away from the
parent, so neither a lucky nor a broken child moves it. A second pass, parents first, gives every
config its posterior mean (``estimate``): its parent's estimate plus its change's posterior effect,
so a lone lucky run is shrunk by the prior, not by a fixed factor.

Posteriors are computed for many edges at once (numpy arrays): a whole depth of the lineage per
call, so the cost grows with the lineage's depth more than with its configs: a shallow track of
thousands of configs costs milliseconds, a frontier-following one thousands of changes deep costs
seconds (bench/ledger.py). Pure and deterministic: every sum runs
in a fixed order, so nodes on the same numpy build get the same floats (across builds the last bit
of exp and log may differ, which can only move a verdict that sits within rounding of its threshold).
"""

import functools
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

PRIOR_EDGES = 8.0  # the starting prior weighs as much as this many edges: a young track is not over-fitted
FIT_ROUNDS = 25  # EM iterations: from the starting prior the shares settle to a few digits within them
NULL_EDGE = 0.5  # a child whose change more probably did nothing than not counts its runs as its parent's
EMPTY = 1e-6  # a message with less than this many runs' precision holds no run: rounding left by taking runs out
MILLS_BELOW = -30.0  # log Phi(z) by Mills' ratio below this z, where erfc underflows


@dataclass(frozen=True)
class Prior:
    """Shares and scales (bpb) of a change's effect: nothing, a half-normal gain, a half-normal harm."""

    null: float
    helps: float
    hurts: float
    help_scale: float
    hurt_scale: float

    def shares(self, knobs: np.ndarray) -> np.ndarray:
        """Rows null, helps, hurts: the prior shares of changes of ``knobs`` knobs each; gain and harm
        keep their ratio."""
        null = self.null ** np.maximum(knobs, 1)
        moved = (1.0 - null) / (1.0 - self.null)
        return np.stack([null, self.helps * moved, self.hurts * moved])

    @classmethod
    def starting(cls, sigma: float) -> "Prior":
        """Before a track has edges: most changes do nothing, harm is likelier and larger than gain."""
        return cls(0.7, 0.1, 0.2, 2 * sigma, 8 * sigma)


@dataclass(frozen=True)
class Edge:
    """The posterior of one change's effect, given its lead and the lead's variance."""

    null: float  # probability it did nothing
    helps: float  # probability it lowered val_bpb
    effect: float  # posterior mean effect in bpb (negative helps)


@dataclass(frozen=True)
class Edges:
    """The posteriors of many changes: ``Edge``'s fields as arrays."""

    null: np.ndarray
    helps: np.ndarray
    effect: np.ndarray


@dataclass
class Message:
    """A Gaussian likelihood for one value: precision (1/bpb^2) and precision-weighted sum."""

    precision: float = 0.0
    total: float = 0.0

    @property
    def mean(self) -> float:
        return self.total / self.precision

    @property
    def variance(self) -> float:
        return 1 / self.precision

    def add(self, other: "Message", weight: float = 1.0) -> None:
        self.precision += weight * other.precision
        self.total += weight * other.total

    def without(self, other: "Message", weight: float = 1.0) -> "Message":
        return Message(self.precision - weight * other.precision, self.total - weight * other.total)

    def holds_runs(self, sigma: float) -> bool:
        return self.precision >= EMPTY / sigma**2


@dataclass(slots=True)  # thousands per track, made twice per view: slots halve their cost
class Node:
    """One config in the pooling pass: its own runs (bpb, author), the first being its discovery."""

    runs: Sequence[tuple[float, str]]
    parent: str | None  # None for a default config
    discovery: bool  # whether its first run is a discovery, never evidence for its own config
    children: list[str] = field(default_factory=list)
    subtree: Message = field(default_factory=Message)  # its runs and its null children's subtrees
    evidence: Message = field(default_factory=Message)  # the same, less its discovery run
    edge: Edge | None = None  # its change, against its parent's other evidence
    weight: float = 0.0  # how much of its subtree its parent's message holds: its change's null posterior
    knobs: int = 1  # how many knobs its change sets
    lead: tuple[float, float] | None = None  # (lead over the parent, its variance): what the prior is fitted to
    cluster: Counter = field(default_factory=Counter)  # run counts by author: its runs and its null children's
    estimate: float | None = None

    @property
    def evidence_authors(self) -> Counter:
        """Run counts by author of its null cluster, less its own discovery run."""
        if not (self.discovery and self.runs):
            return self.cluster
        return self.cluster - Counter([self.runs[0][1]])


def edge_posterior(
    leads: Sequence[float] | np.ndarray,
    variances: Sequence[float] | np.ndarray,
    prior: Prior,
    knobs: Sequence[int] | np.ndarray | None = None,
) -> Edges:
    """The posteriors of changes of ``knobs`` knobs each (default one) after measured ``leads`` (child
    minus parent, bpb) of ``variances``."""
    leads, variances = np.asarray(leads, dtype=float), np.asarray(variances, dtype=float)
    if not leads.size:  # a depth of the lineage with nothing to weigh: the arithmetic would cost as much
        return Edges(np.empty(0), np.empty(0), np.empty(0))
    knobs = np.ones(leads.size) if knobs is None else np.asarray(knobs, dtype=float)
    log_shares = _log_shares if leads.size <= SMALL_CALL else _log_shares.__wrapped__  # large: fitting, uncached
    log_null, log_moved = log_shares(prior, tuple(knobs.tolist()))
    # rows: the gain's half-normal, then the harm's
    signs, scales = _SIGNS, np.array([[prior.help_scale], [prior.hurt_scale]]) ** 2
    totals = variances + scales
    shrunk_means, shrunk_sds = leads * (scales / totals), np.sqrt(variances * scales / totals)
    # each half-normal's mass on its side, after the lead: skew-normal marginal and truncated posterior
    z = signs * shrunk_means / shrunk_sds
    log_mass = _log_phi_cdf(z)
    means = shrunk_means + signs * shrunk_sds * np.exp(_log_phi_pdf(z) - log_mass)
    logs = np.empty((3, leads.size))
    logs[0] = log_null + _log_normal(leads, variances)
    logs[1:] = log_moved + _log_normal(leads, totals) + log_mass
    weights = np.exp(logs - logs.max(axis=0))
    weights /= weights.sum(axis=0)
    return Edges(weights[0], weights[1], (weights[1:] * means).sum(axis=0))


_SIGNS = np.array([[-1.0], [1.0]])  # edge_posterior's rows: the gain's side, then the harm's
SMALL_CALL = 64  # edges in a call whose log shares are cached: a pass over a lineage makes thousands of small calls


@functools.lru_cache(maxsize=1024)
def _log_shares(prior: Prior, knobs: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The logs of the null share and of twice the gain's and the harm's shares (read-only arrays):
    a pass over a lineage weighs the same few knob counts under one prior again and again."""
    shares = prior.shares(np.array(knobs))
    with np.errstate(divide="ignore"):  # a share of 0 (a null share underflowing) is a log of -inf: never
        log_null, log_moved = np.log(shares[0]), np.log(2 * shares[1:])
    log_null.flags.writeable = log_moved.flags.writeable = False
    return log_null, log_moved


def fit_prior(leads: Sequence[tuple[float, float]], sigma: float, knobs: Sequence[int] | None = None) -> Prior:
    """The prior that best explains the track's edges (lead, variance; changes of ``knobs`` knobs), by
    EM from the starting prior.

    The starting prior counts as PRIOR_EDGES edges, so a handful of edges moves it only so far, and
    the scales never fall below sigma: below the noise a scale cannot be told from zero.
    """
    start = prior = Prior.starting(sigma)
    if not leads:
        return prior
    values, variances = np.array(leads, dtype=float).T
    excess = np.maximum(values * values - variances, 0.0)
    pseudo_shares = PRIOR_EDGES * np.array([start.null, start.helps, start.hurts])
    pseudo_spreads = PRIOR_EDGES * np.array([start.helps * start.help_scale**2, start.hurts * start.hurt_scale**2])
    for _ in range(FIT_ROUNDS):
        edges = edge_posterior(values, variances, prior, knobs)
        responsibility = np.stack([edges.null, edges.helps, 1.0 - edges.null - edges.helps])
        shares = pseudo_shares + responsibility.sum(axis=1)
        spreads = pseudo_spreads + (responsibility[1:] * excess).sum(axis=1)
        null, helps, hurts = (shares / shares.sum()).tolist()
        help_scale, hurt_scale = np.sqrt(spreads / shares[1:]).tolist()
        prior = Prior(null, helps, hurts, max(help_scale, sigma), max(hurt_scale, sigma))
    return prior


def pool(nodes: Mapping[str, Node], order: Sequence[str], sigma: float, prior: Prior, leads_only: bool = False) -> None:
    """Fill in every node's messages, edge, pooled authors and estimate; ``order`` puts parents first.
    What an earlier pool filled in is replaced, so the same nodes may be pooled again under another prior.

    ``leads_only``: only the messages, edges and leads, all that fitting the prior to the edges reads.
    """
    for config in order:
        node = nodes[config]
        node.children, node.edge, node.weight, node.lead, node.estimate = [], None, 0.0, None, None
    for config in order:
        parent = nodes[config].parent
        if parent is not None:
            nodes[parent].children.append(config)
    for level in reversed(depths(nodes, order)):
        _gather([nodes[config] for config in level], nodes, sigma, prior, leads_only)
    if leads_only:
        return
    for config in order:
        node = nodes[config]
        if node.parent is None:
            node.estimate = node.subtree.mean if node.subtree.precision else None
        else:
            parent = nodes[node.parent]
            if parent.estimate is not None and node.edge is not None:
                node.estimate = parent.estimate + node.edge.effect


def depths(nodes: Mapping[str, Node], order: Sequence[str]) -> list[list[str]]:
    """The configs of ``order`` by depth below their default, in order within each depth."""
    depth: dict[str, int] = {}
    levels: dict[int, list[str]] = defaultdict(list)
    for config in order:
        parent = nodes[config].parent
        depth[config] = 0 if parent is None else depth[parent] + 1
        levels[depth[config]].append(config)
    return [levels[d] for d in range(len(levels))]


def _gather(level: list[Node], nodes: Mapping[str, Node], sigma: float, prior: Prior, leads_only: bool) -> None:
    """Each node's messages from its own runs and its children's, each child weighted by its null posterior."""
    variance = sigma**2
    owns = [Message(len(node.runs) / variance, sum(value for value, _ in node.runs) / variance) for node in level]
    pairs = []  # per measured child: its parent's own runs, the parent's gathering and the child
    for own, node in zip(owns, level, strict=True):
        gathered = Message(own.precision, own.total)  # its own runs, then each child's weighted subtree
        pairs += [(own, gathered, nodes[child]) for child in node.children if nodes[child].subtree.precision]
    if pairs:
        _weigh_children(pairs, sigma, prior)
    for own, node in zip(owns, level, strict=True):
        _collect(node, own, nodes, sigma, prior, leads_only)


def _weigh_children(pairs: list[tuple[Message, Message, Node]], sigma: float, prior: Prior) -> None:
    """Each child's edge, tested first against its parent's own runs alone, then against its parent's
    own runs and the other children, each weighted by the first test's null posterior."""
    against_own = [(own, child) for own, _, child in pairs if own.precision]
    first = edge_posterior(
        [child.subtree.mean - own.mean for own, child in against_own],
        [child.subtree.variance + own.variance for own, child in against_own],
        prior,
        [child.knobs for _, child in against_own],
    ).null.tolist()
    nulls = iter(first)
    weights = [next(nulls) if own.precision else _null_share(prior, child) for own, _, child in pairs]
    for (_, gathered, child), null in zip(pairs, weights, strict=True):
        gathered.add(child.subtree, null)
    tested = []
    for (_, gathered, child), null in zip(pairs, weights, strict=True):
        others = gathered.without(child.subtree, null)
        if others.holds_runs(sigma):
            child.lead = (child.subtree.mean - others.mean, child.subtree.variance + others.variance)
            tested.append(child)
    edges = edge_posterior([c.lead[0] for c in tested], [c.lead[1] for c in tested], prior, [c.knobs for c in tested])
    for child, null, helps, effect in zip(
        tested, edges.null.tolist(), edges.helps.tolist(), edges.effect.tolist(), strict=True
    ):
        child.edge = Edge(null, helps, effect)


def _collect(node: Node, own: Message, nodes: Mapping[str, Node], sigma: float, prior: Prior, leads_only: bool) -> None:
    """A node's subtree, cluster and evidence (only its subtree if ``leads_only``), once its children's
    edges are known."""
    node.subtree = Message(own.precision, own.total)
    if not leads_only:
        node.cluster = Counter(author for _, author in node.runs)
    for child in (nodes[c] for c in node.children if nodes[c].subtree.precision):
        child.weight = null = child.edge.null if child.edge else _null_share(prior, child)
        node.subtree.add(child.subtree, null)
        if null > NULL_EDGE and not leads_only:
            node.cluster.update(child.cluster)  # a child's discovery is fresh evidence for its parent
    if leads_only:
        return
    node.evidence = node.subtree
    if node.discovery and node.runs:
        node.evidence = node.subtree.without(Message(1 / sigma**2, node.runs[0][0] / sigma**2))


def _null_share(prior: Prior, node: Node) -> float:
    """The prior probability that ``node``'s change did nothing, before any run of it is compared."""
    return float(prior.shares(np.array([node.knobs]))[0, 0])


def _log_normal(x: np.ndarray, variance: np.ndarray) -> np.ndarray:
    return -0.5 * (np.log(2 * math.pi * variance) + x * x / variance)


def _log_phi_pdf(z: np.ndarray) -> np.ndarray:
    return -0.5 * (math.log(2 * math.pi) + z * z)


_erfc = np.frompyfunc(math.erfc, 1, 1)  # numpy has no erfc; the standard library's, element by element


def _log_phi_cdf(z: np.ndarray) -> np.ndarray:
    """log of the standard normal CDF, accurate far into the lower tail."""
    tail = z < MILLS_BELOW
    if not tail.any():  # the usual case, and the same values as below without the selections
        return np.log(0.5 * _erfc(-z / math.sqrt(2)).astype(float))
    body = np.log(0.5 * _erfc(-np.where(tail, 0.0, z) / math.sqrt(2)).astype(float))
    return np.where(tail, _log_phi_pdf(z) - np.log(np.where(tail, -z, 1.0)), body)
