"""Swarm policy: the rules every member applies. Its hash names the swarm and its topic."""

import json
import tomllib
from dataclasses import asdict, dataclass, fields

from protocol.canonical import digest
from protocol.errors import ConfigError
from protocol.track import BUDGET_UNITS, Track

PSK_BYTES = 32
SWARM_ID_HEX = 32


@dataclass(frozen=True)
class Policy:
    name: str = "solo"
    min_runs: int = 4  # bench/acceptance.py: 4 runs find a real 3-sigma gain >90% of the time
    min_authors: int = 1
    sigma_floor_ubpb: int = 2000  # micro-bits per byte: the noise we assume before we measure it
    budget_kind: str = "seconds"
    budget: int = 300
    dataset: str = "shakespeare"
    eval_version: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 0 < len(self.name) <= 64:
            raise ConfigError("policy name must be 1-64 characters")
        for field in ("min_runs", "min_authors", "sigma_floor_ubpb", "budget", "eval_version"):
            value = getattr(self, field)
            if type(value) is not int or not 0 < value <= 10**12:
                raise ConfigError(f"policy {field} must be a positive integer")
        if self.min_authors > self.min_runs:
            raise ConfigError("policy min_authors cannot exceed min_runs")
        if not isinstance(self.budget_kind, str) or self.budget_kind not in BUDGET_UNITS:
            raise ConfigError(f"policy budget_kind must be one of {', '.join(BUDGET_UNITS)}")
        # a Track built from our own values checks the dataset slug the same way records are checked
        Track("x", self.budget_kind, self.budget, self.dataset, "x", self.eval_version)

    @property
    def swarm_id(self) -> str:
        return digest(b"arnode/policy/1\n", asdict(self))[:SWARM_ID_HEX]

    @property
    def topic(self) -> str:
        return f"/arnode/{self.swarm_id}/records/1"

    def admits(self, track: Track) -> bool:
        """Whether results on ``track`` belong in this swarm (hardware and tokenizer are free)."""
        return (track.budget_kind, track.budget, track.dataset, track.eval_version) == (
            self.budget_kind,
            self.budget,
            self.dataset,
            self.eval_version,
        )


def format_swarm_file(psk: bytes, policy: Policy) -> str:
    """The text of a swarm file: the private-network key and the policy. Keep it secret."""
    lines = [
        "# arnode swarm file: whoever holds it can join this swarm. Share it only with members (mode 0600).",
        f'psk = "{psk.hex()}"',
        "",
        "[policy]",
    ]
    for field in fields(Policy):
        value = getattr(policy, field.name)
        lines.append(f"{field.name} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def parse_swarm_file(text: str) -> tuple[bytes, Policy]:
    """The (psk, policy) in a swarm file's text; ConfigError with the reason if it is not one."""
    try:
        doc = tomllib.loads(text)
        psk = bytes.fromhex(doc["psk"])
        policy = Policy(**doc["policy"])
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise ConfigError(f"not a swarm file: {type(err).__name__}: {err}") from None
    if len(psk) != PSK_BYTES:
        raise ConfigError(f"the swarm key must be {PSK_BYTES} bytes ({2 * PSK_BYTES} hex digits)")
    return psk, policy
