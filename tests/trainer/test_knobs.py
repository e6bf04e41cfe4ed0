"""Every knob of the config space changes what the trainer does.

Each config trains three steps with the trainer's own model, optimisers, schedule and step
function on a fixed stream of random tokens; changing any one knob must change the losses,
the learning-rate multipliers or the trained weights.
"""

import contextlib

import pytest
import torch

from node.research.builtin_proposer import knob_steps
from protocol.config import KNOBS, check_config
from protocol.errors import ConfigError
from tests.trainer.conftest import tiny_config
from trainer.model import GPT, gpt_config
from trainer.optim import apply_schedule, build_optimizers
from trainer.train import train_step

VOCAB = 256
PROGRESS = (0.0, 0.5, 0.95)  # one step in the warmup, one on the plateau, one in the warmdown
# room for the warmup and window knobs to act; small batches keep each fingerprint quick
BASE = check_config(
    tiny_config(warmup_ratio=0.2, window_pattern="SL", seq_len=64, device_batch_size=4, total_batch_tokens=512)
)


def fingerprint(config: dict) -> tuple:
    torch.manual_seed(config["seed"])
    model = GPT(gpt_config(config, VOCAB))
    model.init_weights()
    optimizers = build_optimizers(model, config, fused=False)
    rows, seq_len = config["device_batch_size"], config["seq_len"]
    tokens = torch.Generator().manual_seed(1234)
    batches = iter(lambda: _split(torch.randint(0, VOCAB, (rows, seq_len + 1), generator=tokens)), None)
    accumulation = config["total_batch_tokens"] // (rows * seq_len)
    trace = []
    for step, progress in enumerate(PROGRESS):
        multiplier = apply_schedule(optimizers, progress, step, config)
        trace.append((multiplier, train_step(model, model, optimizers, batches, accumulation, contextlib.nullcontext)))
    weights = sum(float(p.detach().double().square().sum()) for p in model.parameters())
    return (*trace, weights)


def _split(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return batch[:, :-1], batch[:, 1:]


def changed(config: dict, name: str) -> dict:
    """``config`` with knob ``name`` moved to the first other value that keeps the config valid."""
    for value in knob_steps(next(k for k in KNOBS if k.name == name), config[name]):
        try:
            return check_config({**config, name: value})
        except ConfigError:
            continue
    raise AssertionError(f"no valid other value for {name}")


@pytest.fixture(scope="module")
def base_fingerprint() -> tuple:
    first = fingerprint(BASE)
    assert fingerprint(BASE) == first  # deterministic, so any difference is the knob's
    return first


@pytest.mark.parametrize("name", [knob.name for knob in KNOBS])
def test_changing_the_knob_changes_training(base_fingerprint, name):
    assert fingerprint(changed(BASE, name)) != base_fingerprint
