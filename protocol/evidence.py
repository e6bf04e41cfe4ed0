"""What a lineage of runs says about each config's true val_bpb: a spike-and-slab model of changes.

Most changes do nothing, so the runs of a config's descendants are mostly runs of that config, and
exploring from a config verifies it for free. The model, per track:

- a run of config c is its true value theta_c plus seed noise N(0, sigma^2);
- theta_c is its parent's value plus an effect that is exactly zero with probability ``null``, a
  half-normal gain (probability ``helps``, scale ``help_scale``) or a half-normal harm (``hurts``,
  ``hurt_scale``): the prior, fitted by EM to the track's own edges (``fit_prior``).

``pool`` runs one pass over the lineage, children before parents: each config's Gaussian message
about its own value is its runs plus each child's message weighted by the posterior probability
that the child's change did nothing. A change that helped or hurt carries its subtree away from the
parent, so neither a lucky nor a broken child moves it. A second pass, parents first, gives every
config its posterior mean (``estimate``): its parent's estimate plus its change's posterior effect,
so a lone lucky run is shrunk by the prior, not by a fixed factor.

Pure and deterministic: sums run in a fixed order over the configs, so every node that holds the
same records gets the same floats.
"""

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

PRIOR_EDGES = 8.0  # the starting prior weighs as much as this many edges: a young track is not over-fitted
FIT_ROUNDS = 25  # EM iterations: from the starting prior the shares settle to a few digits within them
NULL_EDGE = 0.5  # a child whose change more probably did nothing than not counts its runs as its parent's


@dataclass(frozen=True)
class Prior:
    """Shares and scales (bpb) of a change's effect: nothing, a half-normal gain, a half-normal harm."""

    null: float
    helps: float
    hurts: float
    help_scale: float
    hurt_scale: float

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
    lead: tuple[float, float] | None = None  # (lead over the parent, its variance): what the prior is fitted to
    cluster: Counter = field(default_factory=Counter)  # run counts by author: its runs and its null children's
    estimate: float | None = None

    @property
    def evidence_authors(self) -> Counter:
        """Run counts by author of its null cluster, less its own discovery run."""
        if not (self.discovery and self.runs):
            return self.cluster
        return self.cluster - Counter([self.runs[0][1]])


def edge_posterior(lead: float, variance: float, prior: Prior) -> Edge:
    """The posterior of a change's effect after a measured ``lead`` (child minus parent) of ``variance``."""
    sd = math.sqrt(variance)
    parts = [(math.log(prior.null) + _log_normal(lead, variance), 0.0)]
    for share, scale, sign in ((prior.helps, prior.help_scale, -1.0), (prior.hurts, prior.hurt_scale, 1.0)):
        total = variance + scale * scale
        shrunk_mean, shrunk_sd = lead * scale * scale / total, sd * scale / math.sqrt(total)
        # the half-normal's mass on its side, after the lead: skew-normal marginal and truncated posterior
        z = sign * shrunk_mean / shrunk_sd
        log_mass = _log_phi_cdf(z)
        mean = shrunk_mean + sign * shrunk_sd * math.exp(_log_phi_pdf(z) - log_mass)
        parts.append((math.log(2 * share) + _log_normal(lead, total) + log_mass, mean))
    top = max(log_weight for log_weight, _ in parts)
    weights = [math.exp(log_weight - top) for log_weight, _ in parts]
    norm = sum(weights)
    effect = sum(w * mean for w, (_, mean) in zip(weights, parts, strict=True)) / norm
    return Edge(weights[0] / norm, weights[1] / norm, effect)


def fit_prior(leads: Sequence[tuple[float, float]], sigma: float) -> Prior:
    """The prior that best explains the track's edges (lead, variance), by EM from the starting prior.

    The starting prior counts as PRIOR_EDGES edges, so a handful of edges moves it only so far, and
    the scales never fall below sigma: below the noise a scale cannot be told from zero.
    """
    start = prior = Prior.starting(sigma)
    for _ in range(FIT_ROUNDS):
        shares = [PRIOR_EDGES * start.null, PRIOR_EDGES * start.helps, PRIOR_EDGES * start.hurts]
        spreads = [PRIOR_EDGES * start.helps * start.help_scale**2, PRIOR_EDGES * start.hurts * start.hurt_scale**2]
        for lead, variance in leads:
            edge = edge_posterior(lead, variance, prior)
            responsibility = (edge.null, edge.helps, 1.0 - edge.null - edge.helps)
            excess = max(lead * lead - variance, 0.0)
            for i, r in enumerate(responsibility):
                shares[i] += r
            spreads[0] += responsibility[1] * excess
            spreads[1] += responsibility[2] * excess
        total = sum(shares)
        prior = Prior(
            shares[0] / total,
            shares[1] / total,
            shares[2] / total,
            max(math.sqrt(spreads[0] / shares[1]), sigma),
            max(math.sqrt(spreads[1] / shares[2]), sigma),
        )
    return prior


def pool(nodes: Mapping[str, Node], order: Sequence[str], sigma: float, prior: Prior) -> None:
    """Fill in every node's messages, edge, pooled authors and estimate; ``order`` puts parents first."""
    for config in order:
        parent = nodes[config].parent
        if parent is not None:
            nodes[parent].children.append(config)
    for config in reversed(order):
        _gather(nodes, nodes[config], sigma, prior)
    for config in order:
        node = nodes[config]
        if node.parent is None:
            node.estimate = node.subtree.mean if node.subtree.precision else None
        else:
            parent = nodes[node.parent]
            if parent.estimate is not None and node.edge is not None:
                node.estimate = parent.estimate + node.edge.effect


def _gather(nodes: Mapping[str, Node], node: Node, sigma: float, prior: Prior) -> None:
    """A node's messages from its own runs and its children's, each child weighted by its null posterior."""
    own = Message(len(node.runs) / sigma**2, sum(value for value, _ in node.runs) / sigma**2)
    children = [nodes[child] for child in node.children if nodes[child].subtree.precision]
    # first against the node's own runs alone, then against its own runs and the other children
    nulls = {id(child): _null_against(own, child, prior) for child in children}
    gathered = Message(own.precision, own.total)
    for child in children:
        gathered.add(child.subtree, nulls[id(child)])
    for child in children:
        others = gathered.without(child.subtree, nulls[id(child)])
        if others.precision:
            child.lead = (child.subtree.mean - others.mean, child.subtree.variance + others.variance)
            child.edge = edge_posterior(*child.lead, prior)
    node.subtree = Message(own.precision, own.total)
    node.cluster = Counter(author for _, author in node.runs)
    for child in children:
        child.weight = null = child.edge.null if child.edge else prior.null
        node.subtree.add(child.subtree, null)
        if null > NULL_EDGE:
            node.cluster.update(child.cluster)  # a child's discovery is fresh evidence for its parent
    node.evidence = node.subtree
    if node.discovery and node.runs:
        node.evidence = node.subtree.without(Message(1 / sigma**2, node.runs[0][0] / sigma**2))


def _null_against(own: Message, child: Node, prior: Prior) -> float:
    if not own.precision:
        return prior.null
    return edge_posterior(child.subtree.mean - own.mean, child.subtree.variance + own.variance, prior).null


def _log_normal(x: float, variance: float) -> float:
    return -0.5 * (math.log(2 * math.pi * variance) + x * x / variance)


def _log_phi_pdf(z: float) -> float:
    return -0.5 * (math.log(2 * math.pi) + z * z)


def _log_phi_cdf(z: float) -> float:
    """log of the standard normal CDF, accurate far into the lower tail."""
    if z > -30:
        return math.log(0.5 * math.erfc(-z / math.sqrt(2)))
    return _log_phi_pdf(z) - math.log(-z)  # Mills' ratio: erfc underflows here
