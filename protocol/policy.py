"""Swarm policy: the rules every member applies. Its hash names the swarm and its topic."""

import json
import tomllib
from dataclasses import asdict, dataclass, fields

from protocol.canonical import digest
from protocol.errors import ConfigError, ProtocolError, RecordError
from protocol.identity import public_from_peer_id
from protocol.records import MAX_FUTURE_MS, Record
from protocol.track import BUDGET_UNITS, Track

PSK_BYTES = 32
SWARM_ID_HEX = 32


@dataclass(frozen=True)
class Policy:
    name: str = "solo"
    min_runs: int = 4  # runs in a config's null cluster before the ordinary posterior bar applies
    min_authors: int = 1
    sigma_floor_ubpb: int = 2000  # micro-bits per byte: the noise we assume before we measure it
    budget_kind: str = "seconds"
    budget: int = 300
    dataset: str = "shakespeare"
    eval_version: int = 1
    # Fields added later: left out of the swarm ID while at their defaults, so older swarm files
    # keep their ID (a swarm without admins is an open one: see protocol/roster.py).
    admins: tuple[str, ...] = ()  # peer IDs of the founding admins
    created_ms: int = 0  # when the swarm was made: no record may be older
    min_val_bpb_ubpb: int = 100_000  # val_bpb outside [0.1, 20] bpb is a bug or a lie, not a result
    max_val_bpb_ubpb: int = 20_000_000
    # The noise model (protocol/acceptance.py): 0 and 0 keep the first rule, a hard floor and raw runs.
    sigma_prior_df: int = 0  # the floor is a prior scale worth this many degrees of freedom (0: a hard floor)
    clip_floors: int = 0  # a run counts at most this many floors from its config's median (0: no limit)

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
        if not isinstance(self.admins, (list, tuple)) or len(self.admins) > MAX_ADMINS:
            raise ConfigError(f"policy admins must be a list of at most {MAX_ADMINS} peer IDs")
        for admin in self.admins:
            try:
                public_from_peer_id(admin)
            except ProtocolError:
                raise ConfigError(f"policy admin {str(admin)[:60]!r} is not an Ed25519 peer ID") from None
        object.__setattr__(self, "admins", tuple(self.admins))  # TOML gives a list; the policy is frozen
        if type(self.created_ms) is not int or not 0 <= self.created_ms < 2**62:
            raise ConfigError("policy created_ms must be a non-negative integer (ms since 1970)")
        bounds = (self.min_val_bpb_ubpb, self.max_val_bpb_ubpb)
        if any(type(b) is not int for b in bounds) or not 0 < bounds[0] < bounds[1]:
            raise ConfigError("policy val_bpb bounds must be integers with 0 < min < max")
        for field in ("sigma_prior_df", "clip_floors"):
            value = getattr(self, field)
            if type(value) is not int or not 0 <= value <= 10**6:
                raise ConfigError(f"policy {field} must be an integer from 0 to 1000000")

    @property
    def swarm_id(self) -> str:
        named = {
            name: value for name, value in asdict(self).items() if name in _FIRST_FIELDS or value != _DEFAULTS[name]
        }
        return digest(b"arnode/policy/1\n", named)[:SWARM_ID_HEX]

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

    def check(self, record: Record) -> None:
        """RecordError unless ``record`` is plausible here: its track is ours, its time after the swarm's
        creation (give or take the clock skew we allow), its val_bpb in the policy's range."""
        if record.track is not None and not self.admits(record.track):
            raise RecordError(f"track {record.track.key} is not this swarm's (policy {self.name})")
        if record.ts_ms < self.created_ms - MAX_FUTURE_MS:
            raise RecordError(f"timestamp {record.ts_ms} is before this swarm was created ({self.created_ms})")
        val_bpb = record.body.get("val_bpb") if record.kind == "result" else None
        if val_bpb is not None and not self.min_val_bpb_ubpb <= val_bpb <= self.max_val_bpb_ubpb:
            raise RecordError(
                f"val_bpb {val_bpb / 1e6:g} is outside this swarm's range "
                f"[{self.min_val_bpb_ubpb / 1e6:g}, {self.max_val_bpb_ubpb / 1e6:g}] bpb"
            )


MAX_ADMINS = 64
# The noise model of swarms founded now (older swarms keep theirs with their ID): the floor as a prior
# worth four runs' degrees of freedom, so a quiet track learns its own noise, and runs clipped at three
# floors from their config's median, so one member's wild runs move sigma and means only by their share.
NEW_SWARM_NOISE = {"sigma_prior_df": 4, "clip_floors": 3}
_FIRST_FIELDS = (
    "name",
    "min_runs",
    "min_authors",
    "sigma_floor_ubpb",
    "budget_kind",
    "budget",
    "dataset",
    "eval_version",
)
_DEFAULTS = {field.name: field.default for field in fields(Policy)}


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
