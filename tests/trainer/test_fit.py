"""Fitting the device batch to memory: the largest micro-batch that fits, the total batch kept.

The memory limit is fake but the memory is real: every tensor autograd saves for the backward
pass of the trainer's own model is counted, and going over the limit raises torch's own
OutOfMemoryError, as a full GPU would.
"""

import contextlib
from collections.abc import Iterator

import pytest
import torch

from tests.trainer.conftest import tiny_config
from trainer.device import Device
from trainer.model import GPT, gpt_config
from trainer.train import DoesNotFit, fit_rows, memory_probe

CPU = Device("cpu", "cpu", bf16=False, compile=False)
VOCAB = 512
SEQ_LEN = 64


@contextlib.contextmanager
def memory_limit(limit_bytes: float, used: list[int]) -> Iterator[None]:
    """Count the bytes autograd keeps for backward into ``used``; over the limit, run out of memory."""

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        used[0] += tensor.numel() * tensor.element_size()
        if used[0] > limit_bytes:
            raise torch.OutOfMemoryError(f"over the fake limit of {limit_bytes:.0f} bytes")
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        yield


def limited_probe(model: GPT, limit_bytes: float):
    probe = memory_probe(model, SEQ_LEN, CPU)

    def fits(rows: int) -> bool:
        with memory_limit(limit_bytes, [0]):
            return probe(rows)

    return fits


def saved_bytes(model: GPT, rows: int) -> int:
    used = [0]
    with memory_limit(float("inf"), used):
        assert memory_probe(model, SEQ_LEN, CPU)(rows)
    return used[0]


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    model = GPT(gpt_config(tiny_config(seq_len=SEQ_LEN), VOCAB))
    model.init_weights()
    return model


def test_the_largest_divisor_of_the_batch_that_fits_is_chosen(model):
    two, four = saved_bytes(model, 2), saved_bytes(model, 4)
    assert two < four
    assert fit_rows(8, limited_probe(model, (two + four) / 2)) == 2
    assert fit_rows(8, limited_probe(model, float("inf"))) == 8


def test_a_probe_leaves_no_gradients_behind(model):
    limited_probe(model, saved_bytes(model, 2) + 1)(4)
    assert all(p.grad is None for p in model.parameters())


def test_nothing_fitting_is_its_own_error(model):
    with pytest.raises(DoesNotFit, match="not even one row"):
        fit_rows(8, limited_probe(model, 1))


def test_accumulating_fitted_micro_batches_keeps_the_total_batch_gradient(model):
    tokens = torch.randint(0, VOCAB, (8, SEQ_LEN + 1), generator=torch.Generator().manual_seed(1))

    def gradient(rows: int) -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        accumulation = len(tokens) // rows
        for chunk in tokens.split(rows):
            (model(chunk[:, :-1], chunk[:, 1:]) / accumulation).backward()
        grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad(set_to_none=True)
        return grads

    for whole, fitted in zip(gradient(8), gradient(2), strict=True):
        torch.testing.assert_close(fitted, whole, rtol=1e-4, atol=1e-6)
