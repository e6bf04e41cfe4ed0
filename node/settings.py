"""The node's config file (``config.toml`` in the home): written with comments at init, flags override it."""

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from node.errors import NodeError
from node.research.space import SearchSpace
from node.research.work import WorkWeights

DEFAULT_TEXT = """\
# arnode node config. Command-line flags override these values.

# Where to listen for peers (a libp2p multiaddr). Port 4001 is the libp2p convention.
listen = "/ip4/0.0.0.0/tcp/4001"

# Multiaddrs to dial at start, one a line (empty: ./bootstrap_peers.txt, then the one in this home).
bootstrap_file = ""

# Dial addresses that members announce even when they are DNS names or unusual IPs (link-local,
# multicast, reserved). Off: only public, private-range and loopback IPs are dialled.
dial_any_address = false

# Training device: "auto", "cuda", "cpu" or "mps"; and which GPUs get a worker each ("all" or "0,1").
device = "auto"
gpus = "all"

[llm]
# An OpenAI-compatible endpoint proposes experiments when a key or a base URL is set
# (env OPENAI_API_KEY, OPENAI_BASE_URL and ARNODE_MODEL take precedence). Empty: built-in search.
model = ""
base_url = ""

[dashboard]
# The read-only live page `arnode start` serves (--dashboard PORT, --no-dashboard). 127.0.0.1: this
# machine only; bind another address only on a network you trust, the page has no login.
host = "127.0.0.1"
port = 8484

[work]
# Relative weights of the kinds of work once the baseline is measured. Re-runs toward a verdict
# need no weight: one runs only where it may flip a verdict worth more than an exploration.
explore = 5.0   # ask the agent for a change to the frontier (the config with the best estimate)
noise = 1.0     # re-run the best while the track has too few runs to estimate seed noise

[search]
# Knobs the agent may change and the values each may take; a knob not listed keeps the value of the
# config explored from. Empty: every knob, within its own bounds.
# depth = [4, 24]                              # numbers: [lo, hi], inclusive
# head_dim = {choices = [64, 128]}             # numbers: an explicit set of values
# window_pattern = ["SSSL", "SSLL", "LLLL"]    # strings and booleans: the choices
"""


# Keys older config files hold that no longer mean anything: read and ignored, so an upgrade keeps them working.
RETIRED = frozenset({"work.verify"})  # re-runs are chosen by value of information now (node/research/work.py)


@dataclass(frozen=True)
class LLMConfig:
    model: str = ""
    base_url: str = ""


@dataclass(frozen=True)
class DashboardConfig:
    host: str = "127.0.0.1"
    port: int = 8484


@dataclass(frozen=True)
class Settings:
    listen: str = "/ip4/0.0.0.0/tcp/4001"
    bootstrap_file: str = ""
    dial_any_address: bool = False
    device: str = "auto"
    gpus: str = "all"
    llm: LLMConfig = field(default_factory=LLMConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    work: WorkWeights = field(default_factory=WorkWeights)
    search: SearchSpace = field(default_factory=SearchSpace)


def write_default_settings(path: Path) -> bool:
    """Create the commented config file unless one exists; True if written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(DEFAULT_TEXT, encoding="utf-8")
    return True


def load_settings(path: Path) -> Settings:
    """The settings in ``path`` (defaults when it does not exist); NodeError names the file and the key."""
    if not path.exists():
        return Settings()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise NodeError(f"config {path} is unreadable: {err}; fix it or move it away") from None
    try:
        return _build(Settings, doc, "")
    except (TypeError, ValueError) as err:
        raise NodeError(f"config {path}: {err}") from None


def _build(cls: type, doc: Any, prefix: str) -> Any:
    """An instance of the settings dataclass ``cls`` from a TOML table, with types checked."""
    if not isinstance(doc, dict):
        raise TypeError(f"{prefix.rstrip('.') or 'the file'} must be a table")
    known = {f.name: f for f in fields(cls)}
    doc = {name: value for name, value in doc.items() if f"{prefix}{name}" not in RETIRED}
    unknown = sorted(set(doc) - set(known))
    if unknown:
        raise ValueError(f"unknown key {prefix}{unknown[0]}")
    values = {}
    for name, value in doc.items():
        default = known[name].default_factory() if callable(known[name].default_factory) else known[name].default
        if isinstance(default, SearchSpace):  # keyed by knob name, not by field
            values[name] = SearchSpace.parse(value)
        elif hasattr(default, "__dataclass_fields__"):
            values[name] = _build(type(default), value, f"{prefix}{name}.")
        elif isinstance(default, float):
            if type(value) not in (int, float) or value < 0:
                raise TypeError(f"{prefix}{name} must be a non-negative number, not {value!r}")
            values[name] = float(value)
        elif type(value) is type(default):
            values[name] = value
        else:
            raise TypeError(f"{prefix}{name} must be a {type(default).__name__}, not {value!r}")
    return cls(**values)
