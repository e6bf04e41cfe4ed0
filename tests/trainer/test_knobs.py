"""Every knob of the config space changes what the trainer does.

Each config trains three steps with the trainer's own data order, packing, model, optimisers,
schedules and step function on a fixed set of random documents; changing any one knob must change
the losses, the learning-rate multipliers, the micro-batches or the trained weights.
"""

import contextlib

import numpy as np
import pytest
import torch

from node.research.builtin_proposer import knob_steps
from protocol.config import KNOBS, check_config
from protocol.errors import ConfigError
from tests.trainer.conftest import tiny_config
from trainer.corpus import epochs
from trainer.device import Device
from trainer.model import GPT, gpt_config
from trainer.optim import apply_schedule, build_optimizers
from trainer.train import micro_batches, train_batches, train_step

VOCAB = 256
CPU = Device("cpu", "cpu", bf16=False, compile=False)
# documents of varied lengths, each starting with token 0 as its BOS, as the corpus streams them;
# more of them than best-fit packing buffers, so their order reaches the rows
_tokens = np.random.default_rng(7)
DOCUMENTS = [np.array([0, *_tokens.integers(1, VOCAB, size=n)], np.uint16) for n in _tokens.integers(2, 40, size=1200)]
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
    documents = epochs(DOCUMENTS, config["seed"], config["doc_order"])
    batches = train_batches(documents, config["packing"], rows, seq_len, CPU)
    accumulation = config["total_batch_tokens"] // (rows * seq_len)
    trace = []
    for step, progress in enumerate(PROGRESS):
        multiplier = apply_schedule(optimizers, progress, step, config)
        micro = micro_batches(progress, accumulation, config["batch_ramp_ratio"])
        loss = train_step(model, model, optimizers, batches, micro, contextlib.nullcontext)
        trace.append((multiplier, micro, loss))
    weights = sum(float(p.detach().double().square().sum()) for p in model.parameters())
    return (*trace, weights)


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
