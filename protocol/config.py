"""The config space: every knob an experiment may change, with its type, bounds and defaults.

Peers only ever exchange diffs against this table, so validating a diff here is what stands
between a stranger's record and our trainer.

The table grows without renaming configs: a knob added after the first release carries a
``neutral`` value, the one that reproduces the trainer from before the knob existed, and enters a
config's identity (its hash) only when set to anything else. Every config named before the knob
was added keeps its hash, so swarms never split over a new knob. A neutral value is frozen once
published; a record naming a knob this node does not know is refused as coming from a newer arnode.
"""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocol.canonical import digest
from protocol.errors import ConfigError

Value = int | float | bool | str
Config = dict[str, Value]

# A profile is the default config for a class of device: autoresearch-sized for CUDA,
# small for CPU and MPS so a laptop still learns something in five minutes.
PROFILES = ("gpu", "small")


@dataclass(frozen=True)
class Knob:
    name: str
    kind: type
    gpu: Value
    small: Value
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    pattern: str = ""
    multiple_of: int = 1
    hashed: bool = True  # False: a per-run setting (the seed), not part of the config's identity
    doc: str = ""
    neutral: Value | None = None  # knobs added later: the frozen value that leaves the hash as it was

    def in_identity(self, value: Value) -> bool:
        """Whether ``value`` of this knob is part of a config's hash."""
        return self.hashed and (self.neutral is None or value != self.neutral)

    def check(self, value: Any, strict: bool = True) -> Value:
        """Return ``value`` as this knob's type, or raise ConfigError saying why not."""
        value = self._coerce(value, strict)
        if self.kind in (int, float):
            if self.kind is float and not math.isfinite(value):
                raise ConfigError(f"{self.name}: {value} is not finite")
            if not self.lo <= value <= self.hi:
                raise ConfigError(f"{self.name}: {value} is outside [{self.lo}, {self.hi}]")
            if self.kind is int and value % self.multiple_of:
                raise ConfigError(f"{self.name}: {value} is not a multiple of {self.multiple_of}")
        if self.choices and value not in self.choices:
            raise ConfigError(f"{self.name}: {value!r:.40} is not one of {', '.join(self.choices)}")
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise ConfigError(f"{self.name}: {value!r:.40} does not match {self.pattern}")
        return value

    def _coerce(self, value: Any, strict: bool) -> Value:
        if type(value) is self.kind:
            return value
        # Lenient mode is for people and LLMs: 1 for a float knob, 8.0 for an int knob.
        if not strict and self.kind is float and type(value) is int:
            return float(value)
        if not strict and self.kind is int and type(value) is float and value.is_integer():
            return int(value)
        raise ConfigError(f"{self.name}: expected {self.kind.__name__}, got {type(value).__name__}")


def _later(name: str, kind: type, default: Value, **fields: Any) -> Knob:
    """A knob added after the first release: both profiles default to its frozen neutral value."""
    return Knob(name, kind, default, default, neutral=default, **fields)


KNOBS: tuple[Knob, ...] = (
    # model shape
    Knob("depth", int, 8, 4, lo=1, hi=64, doc="transformer layers"),
    Knob("aspect_ratio", int, 64, 32, lo=8, hi=256, doc="model width = depth x aspect_ratio, rounded up to head_dim"),
    Knob("head_dim", int, 128, 32, lo=16, hi=256, multiple_of=8, doc="width of one attention head"),
    Knob("kv_head_ratio", int, 1, 1, lo=1, hi=16, doc="query heads per key/value head (grouped-query attention)"),
    Knob(
        "window_pattern",
        str,
        "SSSL",
        "SSSL",
        pattern=r"[SL]{1,16}",
        doc="per-layer attention window, repeated; S short, L full",
    ),
    Knob("short_window_frac", float, 0.5, 0.5, lo=0.0625, hi=1.0, doc="short window as a fraction of seq_len"),
    Knob("activation", str, "relu2", "relu2", choices=("relu2", "gelu", "silu", "swiglu"), doc="MLP activation"),
    Knob("mlp_ratio", int, 4, 4, lo=1, hi=8, doc="MLP hidden width / model width"),
    Knob("value_embeds", bool, True, True, doc="value embeddings mixed into attention on alternating layers"),
    Knob("logit_softcap", float, 15.0, 15.0, lo=0.0, hi=100.0, doc="tanh softcap on logits; 0 disables"),
    # batch
    Knob("seq_len", int, 2048, 256, lo=16, hi=8192, doc="tokens per row"),
    Knob("device_batch_size", int, 128, 8, lo=1, hi=1024, doc="rows per forward pass"),
    Knob(
        "total_batch_tokens",
        int,
        2**19,
        2**12,
        lo=16,
        hi=2**24,
        doc="tokens per optimiser step (gradient accumulation fills it)",
    ),
    # optimiser
    Knob("embedding_lr", float, 0.6, 0.6, lo=0.0, hi=10.0, doc="AdamW LR of the token embedding"),
    Knob("unembedding_lr", float, 0.004, 0.004, lo=0.0, hi=1.0, doc="AdamW LR of the output head"),
    Knob("matrix_lr", float, 0.04, 0.04, lo=0.0, hi=1.0, doc="Muon LR of the transformer matrices"),
    Knob("scalar_lr", float, 0.5, 0.5, lo=0.0, hi=10.0, doc="AdamW LR of the residual and x0 lambdas"),
    Knob("adam_beta1", float, 0.8, 0.8, lo=0.0, hi=0.9999, doc="AdamW beta1"),
    Knob("adam_beta2", float, 0.95, 0.95, lo=0.0, hi=0.99999, doc="AdamW beta2"),
    Knob("weight_decay", float, 0.2, 0.2, lo=0.0, hi=1.0, doc="decoupled weight decay on matrices"),
    Knob("muon_momentum", float, 0.95, 0.95, lo=0.0, hi=0.999, doc="Muon Nesterov momentum after its warmup"),
    # schedule, as fractions of the budget
    Knob("warmup_ratio", float, 0.0, 0.0, lo=0.0, hi=1.0, doc="fraction of the budget spent warming the LR up"),
    Knob("warmdown_ratio", float, 0.5, 0.5, lo=0.0, hi=1.0, doc="fraction of the budget spent decaying the LR"),
    Knob("final_lr_frac", float, 0.0, 0.0, lo=0.0, hi=1.0, doc="LR at the end as a fraction of the peak"),
    # initialisation
    Knob("init_scale", float, 1.0, 1.0, lo=0.0, hi=10.0, doc="multiplier on the transformer matrices' init std"),
    Knob("embed_init_std", float, 1.0, 1.0, lo=0.0, hi=10.0, doc="std of the token embedding init"),
    Knob("unembed_init_std", float, 0.001, 0.001, lo=0.0, hi=1.0, doc="std of the output head init"),
    # per run
    Knob(
        "seed",
        int,
        0,
        0,
        lo=0,
        hi=2**31 - 1,
        hashed=False,
        doc="random seed; a re-run with another seed is the same config",
    ),
    # --- added after the first release: each neutral value is the trainer from before it existed ---
    # residual stream and attention
    _later("resid_lambdas", bool, True, doc="learnable per-layer weight on the residual stream; false: fixed at 1"),
    _later("x0_lambdas", bool, True, doc="mix the embedded input into every layer by a learnable weight; false: no"),
    _later("ve_gate", bool, True, doc="each kv head gates its value embedding by a learned sigmoid; false: ungated"),
    _later("ve_init", str, "normal", choices=("normal", "uniform", "zeros"), doc="value-embedding init distribution"),
    _later(
        "ve_init_scale", float, 1.0, lo=0.0, hi=10.0, doc="value-embedding init std as a multiple of embed_init_std"
    ),
    _later("attn_scale", float, 1.0, lo=0.125, hi=8.0, doc="multiplier on attention's 1/sqrt(head_dim) logit scale"),
    _later("rope_base", float, 10000.0, lo=100.0, hi=1e7, doc="rotary embedding base; larger reaches further"),
    _later("tie_embeddings", bool, False, doc="output head shares the token embedding (hurt badly in autoresearch)"),
    # loss
    _later("z_loss", float, 0.0, lo=0.0, hi=0.1, doc="weight of the squared log-partition penalty on training logits"),
    _later(
        "label_smoothing", float, 0.0, lo=0.0, hi=0.5, doc="label smoothing of the training loss; eval is unsmoothed"
    ),
    # batch, optimiser, schedule
    _later(
        "batch_ramp_ratio",
        float,
        0.0,
        lo=0.0,
        hi=1.0,
        doc="fraction of the budget over which tokens per step ramp from one micro-batch to total_batch_tokens",
    ),
    _later("muon_ns_steps", int, 5, lo=1, hi=12, doc="Newton-Schulz iterations orthogonalising each Muon update"),
    _later("muon_nesterov", bool, True, doc="Nesterov momentum in Muon; false: plain momentum"),
    _later("warmdown_shape", str, "linear", choices=("linear", "cosine", "sqrt"), doc="shape of the LR warmdown"),
    # data
    _later(
        "doc_order",
        str,
        "shuffled",
        choices=("shuffled", "short_to_long"),
        doc="training documents: shuffled (by seed; climbmix shards come shuffled) or a short-to-long curriculum",
    ),
    _later(
        "packing",
        str,
        "best_fit",
        choices=("best_fit", "concat"),
        doc="rows: best_fit starts each at a document (crops, no padding); concat runs documents across rows",
    ),
)

KNOB = {knob.name: knob for knob in KNOBS}
MAX_DIFF_KNOBS = len(KNOBS)


def default_config(profile: str) -> Config:
    """The full default config of a device profile ('gpu' or 'small')."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}")
    return {knob.name: getattr(knob, profile) for knob in KNOBS}


def check_diff(diff: Any, strict: bool = True) -> Config:
    """Validate a diff (knob -> value); lenient mode coerces numbers for human and LLM input."""
    if not isinstance(diff, Mapping):
        raise ConfigError(f"a diff is a map of knob to value, not {type(diff).__name__}")
    if len(diff) > MAX_DIFF_KNOBS:
        raise ConfigError(f"a diff has at most {MAX_DIFF_KNOBS} knobs")
    checked = {}
    for name, value in diff.items():
        if name not in KNOB:
            # peers choose the name: keep it short
            raise ConfigError(f"unknown knob {name!r:.40}: from a newer arnode? upgrade this node to use it")
        checked[name] = KNOB[name].check(value, strict)
    return checked


def apply(base: Mapping[str, Value], diff: Mapping[str, Any], strict: bool = True) -> Config:
    """The full config ``base`` with ``diff`` applied; the result is checked as a whole."""
    return check_config({**base, **check_diff(diff, strict)})


def diff_between(base: Mapping[str, Value], config: Mapping[str, Value]) -> Config:
    """The smallest diff that turns ``base`` into ``config``."""
    return {name: config[name] for name in KNOB if config[name] != base[name]}


def check_config(config: Mapping[str, Any]) -> Config:
    """Validate a full config: every knob present and valid, and the knobs consistent together."""
    missing = [name for name in KNOB if name not in config]
    if missing:
        raise ConfigError(f"config lacks {', '.join(missing)}")
    checked = check_diff(config)
    if checked["total_batch_tokens"] % (checked["device_batch_size"] * checked["seq_len"]):
        raise ConfigError("total_batch_tokens must be a multiple of device_batch_size x seq_len")
    if checked["warmup_ratio"] + checked["warmdown_ratio"] > 1.0:
        raise ConfigError("warmup_ratio + warmdown_ratio must not exceed 1")
    model_shape(checked)
    return checked


@dataclass(frozen=True)
class ModelShape:
    model_dim: int
    n_head: int
    n_kv_head: int


def model_shape(config: Mapping[str, Value]) -> ModelShape:
    """Width and head counts the trainer builds from a config."""
    head_dim = config["head_dim"]
    model_dim = -(-config["depth"] * config["aspect_ratio"] // head_dim) * head_dim
    n_head = model_dim // head_dim
    if n_head % config["kv_head_ratio"]:
        raise ConfigError(f"kv_head_ratio {config['kv_head_ratio']} does not divide {n_head} heads")
    return ModelShape(model_dim, n_head, n_head // config["kv_head_ratio"])


def config_hash(config: Mapping[str, Value]) -> str:
    """Hex SHA-256 naming a full config: per-run knobs such as the seed, and later knobs at their
    neutral value, are left out, so adding a knob renames no config."""
    return digest(b"arnode/config/1\n", {name: config[name] for name in KNOB if KNOB[name].in_identity(config[name])})


ROOTS: dict[str, str] = {config_hash(default_config(profile)): profile for profile in PROFILES}
