"""The trainer on a CUDA GPU: bf16 with torch.compile, the attention kernel, fitting real GPU memory,
and a run that cannot fit ending as 'oom'. Skipped without a GPU; bench/gpu_check.py runs them."""

import itertools
import json

import pytest
import torch

from protocol.config import check_config, default_config
from tests.trainer.conftest import tiny_config
from trainer.__main__ import main as trainer_main
from trainer.device import open_device
from trainer.model import GPT, attend, gpt_config
from trainer.optim import build_optimizers
from trainer.result import TrainResult
from trainer.spec import build_spec, track_for
from trainer.train import fit_rows, memory_probe, train_step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
VOCAB = 512
SMALL_CARD_BYTES = 6 * 2**30


@pytest.fixture
def memory_cap():
    """Cap this process's share of the GPU, as a smaller card would; lifted afterwards."""
    total = torch.cuda.get_device_properties(0).total_memory

    def cap(limit_bytes: int) -> None:
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit_bytes / total))

    yield cap
    torch.cuda.set_per_process_memory_fraction(1.0)
    torch.cuda.empty_cache()


def test_compiled_bf16_steps_learn_a_batch():
    device = open_device("cuda", "on")
    config = check_config(tiny_config())
    torch.manual_seed(0)
    model = GPT(gpt_config(config, VOCAB)).to(device.torch)
    model.init_weights()
    optimizers = build_optimizers(model, config, fused=True)
    step_model = torch.compile(model, dynamic=False)
    tokens = torch.randint(0, VOCAB, (8, config["seq_len"] + 1), device=device.torch)
    batch = itertools.repeat((tokens[:, :-1], tokens[:, 1:]))
    losses = [train_step(model, step_model, optimizers, batch, 1, device.precision) for _ in range(30)]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0] - 1.0, losses


@pytest.mark.parametrize("window", [64, 256])
def test_the_attention_kernel_matches_a_plain_masked_softmax(window):
    q, k, v = torch.randn(3, 2, 256, 4, 64, device="cuda", dtype=torch.bfloat16).unbind(0)
    scale = 0.7 / 64**0.5
    out = attend(q, k, v, window, scale).float()
    position = torch.arange(256, device="cuda")
    distance = position[:, None] - position[None, :]
    logits = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) * scale
    logits = logits.masked_fill(~((distance >= 0) & (distance < window)), float("-inf"))
    expected = torch.einsum("bhqk,bkhd->bqhd", logits.softmax(-1), v.float())
    torch.testing.assert_close(out, expected, atol=3e-2, rtol=3e-2)


def test_the_gpu_default_batch_shrinks_to_fit_a_smaller_card(memory_cap):
    config = default_config("gpu")
    device = open_device("cuda", "off")
    model = GPT(gpt_config(config, 8192)).to(device.torch)
    requested = config["device_batch_size"]
    here = fit_rows(requested, memory_probe(model, config["seq_len"], device))
    memory_cap(SMALL_CARD_BYTES)
    small = fit_rows(requested, memory_probe(model, config["seq_len"], device))
    assert requested % small == 0 and 1 <= small < here, (small, here)


def test_a_run_that_cannot_fit_even_one_row_ends_as_oom(tmp_path, cache_dir, memory_cap):
    config = check_config(tiny_config())
    spec = build_spec(config, track_for("cuda", "shakespeare", "steps", 5), "cuda", tmp_path / "data", cache_dir)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    memory_cap(2**20)  # one megabyte: not even the model fits
    assert trainer_main(["--spec", str(tmp_path / "spec.json"), "--out", str(tmp_path / "result.json")]) == 0
    result = TrainResult.from_json(json.loads((tmp_path / "result.json").read_text()))
    assert result.outcome == "oom" and result.val_bpb is None and result.hardware is not None
