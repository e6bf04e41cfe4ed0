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
call, so a track of thousands of configs costs milliseconds. Pure and deterministic: every sum runs
in a fixed order, so nodes on the same numpy build get the same floats (across builds the last bit
of exp and log may differ, which can only move a verdict that sits within rounding of its threshold).
"""

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

    def __getitem__(self, i: int) -> Edge:
        return Edge(float(self.null[i]), float(self.helps[i]), float(self.effect[i]))


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


@dataclass
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
    shares = prior.shares(np.ones(leads.size) if knobs is None else np.asarray(knobs, dtype=float))
    # rows: the gain's half-normal, then the harm's
    signs, scales = np.array([[-1.0], [1.0]]), np.array([[prior.help_scale], [prior.hurt_scale]]) ** 2
    totals = variances + scales
    shrunk_means, shrunk_sds = leads * (scales / totals), np.sqrt(variances * scales / totals)
    # each half-normal's mass on its side, after the lead: skew-normal marginal and truncated posterior
    z = signs * shrunk_means / shrunk_sds
    log_mass = _log_phi_cdf(z)
    means = shrunk_means + signs * shrunk_sds * np.exp(_log_phi_pdf(z) - log_mass)
    logs = np.empty((3, leads.size))
    with np.errstate(divide="ignore"):  # a share of 0 (a null share underflowing) is a log of -inf: never
        logs[0] = np.log(shares[0]) + _log_normal(leads, variances)
        logs[1:] = np.log(2 * shares[1:]) + _log_normal(leads, totals) + log_mass
    weights = np.exp(logs - logs.max(axis=0))
    weights /= weights.sum(axis=0)
    return Edges(weights[0], weights[1], (weights[1:] * means).sum(axis=0))


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


def pool(nodes: Mapping[str, Node], order: Sequence[str], sigma: float, prior: Prior) -> None:
    """Fill in every node's messages, edge, pooled authors and estimate; ``order`` puts parents first."""
    for config in order:
        parent = nodes[config].parent
        if parent is not None:
            nodes[parent].children.append(config)
    for level in reversed(depths(nodes, order)):
        _gather([nodes[config] for config in level], nodes, sigma, prior)
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


def _gather(level: list[Node], nodes: Mapping[str, Node], sigma: float, prior: Prior) -> None:
    """Each node's messages from its own runs and its children's, each child weighted by its null posterior."""
    owns = [Message(len(node.runs) / sigma**2, sum(value for value, _ in node.runs) / sigma**2) for node in level]
    pairs = [
        (own, node, nodes[child])
        for own, node in zip(owns, level, strict=True)
        for child in node.children
        if nodes[child].subtree.precision
    ]
    # first against the node's own runs alone, then against its own runs and the other children
    against_own = [(own, child) for own, _, child in pairs if own.precision]
    first = edge_posterior(
        [child.subtree.mean - own.mean for own, child in against_own],
        [child.subtree.variance + own.variance for own, child in against_own],
        prior,
        [child.knobs for _, child in against_own],
    )
    nulls = dict(zip((id(child) for _, child in against_own), first.null.tolist(), strict=True))
    nulls.update((id(child), _null_share(prior, child)) for _, _, child in pairs if id(child) not in nulls)
    gathered = {id(node): Message(own.precision, own.total) for own, node in zip(owns, level, strict=True)}
    for _, node, child in pairs:
        gathered[id(node)].add(child.subtree, nulls[id(child)])
    tested = []
    for _, node, child in pairs:
        others = gathered[id(node)].without(child.subtree, nulls[id(child)])
        if others.holds_runs(sigma):
            child.lead = (child.subtree.mean - others.mean, child.subtree.variance + others.variance)
            tested.append(child)
    edges = edge_posterior([c.lead[0] for c in tested], [c.lead[1] for c in tested], prior, [c.knobs for c in tested])
    for i, child in enumerate(tested):
        child.edge = edges[i]
    for own, node in zip(owns, level, strict=True):
        _collect(node, own, nodes, sigma, prior)


def _collect(node: Node, own: Message, nodes: Mapping[str, Node], sigma: float, prior: Prior) -> None:
    """A node's subtree, cluster and evidence, once its children's edges are known."""
    node.subtree = Message(own.precision, own.total)
    node.cluster = Counter(author for _, author in node.runs)
    for child in (nodes[c] for c in node.children if nodes[c].subtree.precision):
        child.weight = null = child.edge.null if child.edge else _null_share(prior, child)
        node.subtree.add(child.subtree, null)
        if null > NULL_EDGE:
            node.cluster.update(child.cluster)  # a child's discovery is fresh evidence for its parent
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
    body = np.log(0.5 * _erfc(-np.where(tail, 0.0, z) / math.sqrt(2)).astype(float))
    return np.where(tail, _log_phi_pdf(z) - np.log(np.where(tail, -z, 1.0)), body)
