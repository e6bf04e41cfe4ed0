"""The SPEC a node hands the trainer, and the dataset table, without importing torch.

A spec is one JSON object: the full config, the track (budget, dataset, tokenizer, eval version),
the seed, the device and the data and cache directories. ``check_spec`` is the only way in, so a
bad spec fails here with one clear line, before any data or model is touched.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.config import Config, check_config, default_config
from protocol.errors import ProtocolError
from protocol.track import Track
from trainer.hardware import DEVICES, hardware_of, resolve_device

SPEC_VERSION = 1
COMPILE_CHOICES = ("auto", "on", "off")


class SpecError(ValueError):
    """A spec was rejected; ``str(err)`` is a one-line reason."""


@dataclass(frozen=True)
class EvalSplit:
    """A frozen evaluation: never change one, add a new version instead."""

    seq_len: int  # tokens per row, whatever the config's seq_len
    tokens: int  # target tokens scored
    batch_rows: int  # rows per forward pass, fixed so the arithmetic is too
    holdout_tokens: int  # target tokens of the holdout (test_bpb), from validation documents the eval leaves


@dataclass(frozen=True)
class Dataset:
    name: str
    vocab_size: int  # BPE vocabulary including the special tokens
    evals: Mapping[int, EvalSplit]

    @property
    def tokenizer(self) -> str:
        return f"bpe{self.vocab_size}"


DATASETS: dict[str, Dataset] = {
    "shakespeare": Dataset(
        "shakespeare", 4096, {1: EvalSplit(seq_len=256, tokens=128 * 256, batch_rows=32, holdout_tokens=128 * 256)}
    ),
    "climbmix": Dataset(
        "climbmix", 8192, {1: EvalSplit(seq_len=2048, tokens=40 * 2**19, batch_rows=16, holdout_tokens=8 * 2**19)}
    ),
}
DEFAULT_DATASET = "shakespeare"
LATEST_EVAL = 1


def dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise SpecError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def tokenizer_id(dataset_name: str) -> str:
    """The tokenizer the trainer trains for a dataset, as named in tracks (e.g. 'bpe4096')."""
    return dataset(dataset_name).tokenizer


def profile_for(device: str) -> str:
    """The config-space profile whose defaults suit a device: 'gpu' for CUDA, 'small' otherwise."""
    return "gpu" if resolve_device(device) == "cuda" else "small"


def default_config_for(device: str) -> Config:
    return default_config(profile_for(device))


def track_for(device: str, dataset_name: str, budget_kind: str, budget: int, eval_version: int = LATEST_EVAL) -> Track:
    """The track a run on this machine's ``device`` belongs to, found without starting training."""
    data = dataset(dataset_name)
    if eval_version not in data.evals:
        raise SpecError(f"dataset {dataset_name} has no eval version {eval_version}")
    try:
        return Track(hardware_of(resolve_device(device)), budget_kind, budget, data.name, data.tokenizer, eval_version)
    except ProtocolError as err:
        raise SpecError(str(err)) from None


def build_spec(
    config: Mapping[str, Any],
    track: Track,
    device: str,
    data_dir: str | Path,
    cache_dir: str | Path,
    compile: str = "auto",
) -> dict[str, Any]:
    """A checked spec dict ready for ``json.dump``; the seed is the config's ``seed`` knob."""
    spec = {
        "v": SPEC_VERSION,
        "config": dict(config),
        "track": track.to_wire(),
        "seed": config.get("seed"),
        "device": device,
        "data_dir": str(data_dir),
        "cache_dir": str(cache_dir),
        "compile": compile,
    }
    check_spec(spec)
    return spec


@dataclass(frozen=True)
class Spec:
    config: Config
    track: Track
    seed: int
    device: str
    data_dir: Path
    cache_dir: Path
    compile: str

    @property
    def dataset(self) -> Dataset:
        return DATASETS[self.track.dataset]

    @property
    def eval_split(self) -> EvalSplit:
        return self.dataset.evals[self.track.eval_version]


FIELDS = ("v", "config", "track", "seed", "device", "data_dir", "cache_dir", "compile")


def check_spec(raw: Any) -> Spec:
    """Validate a decoded spec; raise SpecError with a one-line reason."""
    if not isinstance(raw, Mapping):
        raise SpecError(f"a spec is a JSON object, not {type(raw).__name__}")
    if set(raw) != set(FIELDS):
        extra, missing = sorted(set(raw) - set(FIELDS)), sorted(set(FIELDS) - set(raw))
        raise SpecError(f"spec fields wrong: missing {missing or 'none'}, unknown {extra or 'none'}")
    if raw["v"] != SPEC_VERSION:
        raise SpecError(f"spec version {raw['v']!r} is not {SPEC_VERSION}")
    try:
        config = check_config(raw["config"]) if isinstance(raw["config"], Mapping) else None
        track = Track.from_wire(raw["track"])
    except ProtocolError as err:
        raise SpecError(f"spec: {err}") from None
    if config is None:
        raise SpecError("spec config must be a JSON object")
    if raw["seed"] != config["seed"] or type(raw["seed"]) is not int:
        raise SpecError(f"spec seed {raw['seed']!r} differs from the config's seed {config['seed']}")
    data = dataset(track.dataset)
    if track.tokenizer != data.tokenizer:
        raise SpecError(f"dataset {data.name} uses tokenizer {data.tokenizer}, not {track.tokenizer}")
    if track.eval_version not in data.evals:
        raise SpecError(f"dataset {data.name} has no eval version {track.eval_version}")
    if raw["device"] not in DEVICES:
        raise SpecError(f"device {raw['device']!r} is not one of {', '.join(DEVICES)}")
    if raw["compile"] not in COMPILE_CHOICES:
        raise SpecError(f"compile {raw['compile']!r} is not one of {', '.join(COMPILE_CHOICES)}")
    for name in ("data_dir", "cache_dir"):
        if not isinstance(raw[name], str) or not raw[name]:
            raise SpecError(f"spec {name} must be a non-empty path")
    return Spec(
        config, track, config["seed"], raw["device"], Path(raw["data_dir"]), Path(raw["cache_dir"]), raw["compile"]
    )
