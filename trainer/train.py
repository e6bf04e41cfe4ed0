"""One experiment: build the model, train it until the budget is spent, evaluate it once."""

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from trainer.corpus import Corpus
from trainer.device import Device, open_device
from trainer.evaluate import val_bpb
from trainer.model import GPT, gpt_config
from trainer.optim import apply_schedule, build_optimizers
from trainer.packing import batches, pack_rows
from trainer.spec import Spec
from trainer.tokenizer import token_bytes

UNTIMED_STEPS = 10  # like autoresearch: compilation and warm-up steps do not count against the budget
PROGRESS_EVERY_S = 5.0
DIVERGED_FACTOR = 2.0  # a loss above twice that of uniform guessing has exploded


class Diverged(Exception):
    """The loss became NaN, infinite or exploded."""


@dataclass
class Stats:
    """What a run has measured so far; filled in as it goes, so a crash still reports its progress."""

    device: Device | None = None
    params: int = 0
    flops_per_token: int = 0
    steps: int = 0
    tokens: int = 0
    timed_tokens: int = 0
    train_seconds: float = 0.0
    loop_seconds: float = 0.0
    val_bpb: float | None = None

    @property
    def tokens_per_s(self) -> float:
        if self.timed_tokens and self.train_seconds:
            return self.timed_tokens / self.train_seconds
        return self.tokens / self.loop_seconds if self.loop_seconds else 0.0

    @property
    def mfu(self) -> float | None:
        peak = self.device.peak_flops if self.device else None
        return self.flops_per_token * self.tokens_per_s / peak if peak else None


def train_batches(corpus: Corpus, seed: int, rows: int, seq_len: int, device: Device) -> Iterator[tuple]:
    """(inputs, targets) on the device, from BOS-aligned rows of seq_len + 1 tokens."""
    pin = device.kind == "cuda"
    for batch in batches(pack_rows(corpus.train_documents(seed), seq_len + 1), rows):
        tokens = torch.from_numpy(batch.astype(np.int64))
        tokens = tokens.pin_memory().to(device.torch, non_blocking=True) if pin else tokens.to(device.torch)
        yield tokens[:, :-1], tokens[:, 1:]


class Budget:
    def __init__(self, kind: str, amount: int) -> None:
        self.kind, self.amount = kind, amount

    def progress(self, stats: Stats) -> float:
        spent = {"seconds": stats.train_seconds, "tokens": stats.tokens, "steps": stats.steps}[self.kind]
        return min(spent / self.amount, 1.0)


def run(spec: Spec, stats: Stats, log: Callable[[str], None] = print) -> None:
    """Train and evaluate, recording into ``stats``; raises Diverged, or any error as a crash."""
    config = spec.config
    device = stats.device = open_device(spec.device, spec.compile)
    torch.manual_seed(spec.seed)
    corpus = Corpus(spec)
    eval_rows = corpus.eval_rows(spec.eval_split)
    model = GPT(gpt_config(config, corpus.encoding.n_vocab)).to(device.torch)
    model.init_weights()
    stats.params = sum(p.numel() for p in model.parameters())
    stats.flops_per_token = model.flops_per_token(config["seq_len"])
    optimizers = build_optimizers(model, config, fused=device.kind == "cuda")
    step_model = torch.compile(model, dynamic=False) if device.compile else model
    rows, seq_len = config["device_batch_size"], config["seq_len"]
    accumulation = config["total_batch_tokens"] // (rows * seq_len)
    log(f"device {device.kind} ({device.name}), bf16 {device.bf16}, compile {device.compile}")
    log(f"params {stats.params:,}, {accumulation} x {rows} x {seq_len} tokens per step, track {spec.track.key}")

    loader = train_batches(corpus, spec.seed, rows, seq_len, device)
    budget = Budget(spec.track.budget_kind, spec.track.budget)
    loss_limit = DIVERGED_FACTOR * math.log(corpus.encoding.n_vocab)
    loop_start = last_log = time.perf_counter()
    while budget.progress(stats) < 1.0:
        step_start = time.perf_counter()
        multiplier = apply_schedule(optimizers, budget.progress(stats), stats.steps, config)
        loss_value = train_step(model, step_model, optimizers, loader, accumulation, device.precision)
        step_seconds = time.perf_counter() - step_start
        stats.steps += 1
        stats.tokens += config["total_batch_tokens"]
        stats.loop_seconds = time.perf_counter() - loop_start
        if stats.steps > UNTIMED_STEPS:
            stats.train_seconds += step_seconds
            stats.timed_tokens += config["total_batch_tokens"]
        if not math.isfinite(loss_value) or loss_value > loss_limit:
            raise Diverged(f"loss {loss_value:.4g} at step {stats.steps}")
        if time.perf_counter() - last_log >= PROGRESS_EVERY_S or stats.steps == 1:
            last_log = time.perf_counter()
            log(progress_line(stats, budget, loss_value, multiplier, step_seconds))

    stats.val_bpb = val_bpb(
        step_model, eval_rows, torch.tensor(token_bytes(corpus.encoding), device=device.torch),
        spec.eval_split.batch_rows, device.precision(),
    )  # fmt: skip


def train_step(
    model: GPT, step_model: Callable, optimizers: list, loader: Iterator[tuple], accumulation: int, precision: Callable
) -> float:
    """One optimiser step over ``accumulation`` micro-batches; the last micro-batch's loss."""
    for _ in range(accumulation):
        inputs, targets = next(loader)
        with precision():
            loss = step_model(inputs, targets)
        (loss / accumulation).backward()
    for optimizer in optimizers:
        optimizer.step()
    model.zero_grad(set_to_none=True)
    return loss.item()  # waits for the device: step timing is honest


def progress_line(stats: Stats, budget: Budget, loss: float, multiplier: float, step_seconds: float) -> str:
    mfu = f"{100 * stats.mfu:.1f}%" if stats.mfu is not None else "n/a"
    return (
        f"step {stats.steps:05d} ({100 * budget.progress(stats):5.1f}%) | loss {loss:.4f} | lrm {multiplier:.2f}"
        f" | dt {1000 * step_seconds:.0f}ms | tok/s {stats.tokens_per_s:,.0f} | mfu {mfu}"
        f" | train {stats.train_seconds:.0f}s"
    )
