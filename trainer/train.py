"""One experiment: build the model, fit its batch to the device, train it until the budget is spent,
evaluate it once on the frozen eval rows and once on the holdout rows."""

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
from trainer.packing import batches, pack
from trainer.spec import Spec
from trainer.tokenizer import token_bytes

UNTIMED_STEPS = 10  # like autoresearch: compilation and warm-up steps do not count against the budget
PROGRESS_EVERY_S = 5.0
DIVERGED_FACTOR = 2.0  # a loss above twice that of uniform guessing has exploded
OPTIMIZER_STATE_FLOATS = 3  # per parameter: AdamW's two moments or Muon's momentum, with room to spare


class Diverged(Exception):
    """The loss became NaN, infinite or exploded."""


class DoesNotFit(Exception):
    """Not even one row per forward pass fits the device's memory."""


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
    untimed_seconds: float = 0.0  # the warm-up steps: compilation and autotuning happen here
    loop_started: float | None = None  # perf_counter when the first step began
    eval_seconds: float = 0.0
    device_batch_size: int = 0  # rows per forward pass, after fitting the device's memory
    last_loss: float | None = None  # the latest step's training loss, for a run that is stopped before its eval
    val_bpb: float | None = None
    test_bpb: float | None = None

    @property
    def tokens_per_s(self) -> float:
        if self.timed_tokens and self.train_seconds:
            return self.timed_tokens / self.train_seconds
        return self.tokens / self.loop_seconds if self.loop_seconds else 0.0

    @property
    def mfu(self) -> float | None:
        peak = self.device.peak_flops if self.device else None
        return self.flops_per_token * self.tokens_per_s / peak if peak else None

    @property
    def compile_seconds(self) -> float:
        """What the warm-up steps took beyond as many steady steps."""
        timed_steps = self.steps - UNTIMED_STEPS
        steady = self.train_seconds / timed_steps if timed_steps > 0 else 0.0
        return max(0.0, self.untimed_seconds - min(self.steps, UNTIMED_STEPS) * steady)


def train_batches(
    documents: Iterator[np.ndarray], packing: str, rows: int, seq_len: int, device: Device
) -> Iterator[tuple]:
    """(inputs, targets) on the device, from rows of seq_len + 1 tokens packed the config's way."""
    pin = device.kind == "cuda"
    for batch in batches(pack(documents, seq_len + 1, packing), rows):
        tokens = torch.from_numpy(batch.astype(np.int64))
        tokens = tokens.pin_memory().to(device.torch, non_blocking=True) if pin else tokens.to(device.torch)
        yield tokens[:, :-1], tokens[:, 1:]


class Budget:
    def __init__(self, kind: str, amount: int) -> None:
        self.kind, self.amount = kind, amount

    def progress(self, stats: Stats) -> float:
        spent = {"seconds": stats.train_seconds, "tokens": stats.tokens, "steps": stats.steps}[self.kind]
        return min(spent / self.amount, 1.0)


def micro_batches(progress: float, accumulation: int, ramp: float) -> int:
    """Micro-batches in the step at ``progress``: all of them, or fewer while the batch-size ramp lasts."""
    if progress >= ramp:
        return accumulation
    return max(1, math.ceil(accumulation * progress / ramp))


def fit_rows(rows: int, fits: Callable[[int], bool]) -> int:
    """The largest divisor of ``rows`` that ``fits`` the device; the total batch is kept by accumulating."""
    for candidate in range(rows, 0, -1):
        if rows % candidate == 0 and fits(candidate):
            return candidate
    raise DoesNotFit("not even one row per forward pass fits the device's memory")


def memory_probe(model: GPT, seq_len: int, device: Device) -> Callable[[int], bool]:
    """Whether a forward and backward pass of ``rows`` rows fits, with the optimiser state reserved."""

    def attempt(rows: int) -> None:
        reserve = torch.empty(OPTIMIZER_STATE_FLOATS * sum(p.numel() for p in model.parameters()), device=device.torch)
        tokens = torch.zeros((rows, seq_len + 1), dtype=torch.int64, device=device.torch)
        with device.precision():
            loss = model(tokens[:, :-1], tokens[:, 1:])
        loss.backward()
        del reserve

    def fits(rows: int) -> bool:
        try:
            attempt(rows)
            return True
        except torch.OutOfMemoryError:
            return False
        finally:
            model.zero_grad(set_to_none=True)
            if device.kind == "cuda":
                torch.cuda.empty_cache()

    return fits


def run(spec: Spec, stats: Stats, log: Callable[[str], None] = print) -> None:
    """Train and evaluate, recording into ``stats``; raises Diverged, or any error as a crash."""
    config = spec.config
    device = stats.device = open_device(spec.device, spec.compile)
    torch.manual_seed(spec.seed)
    corpus = Corpus(spec)
    eval_rows, holdout_rows = corpus.frozen_rows(spec.eval_split)
    model = GPT(gpt_config(config, corpus.encoding.n_vocab)).to(device.torch)
    stats.params = sum(p.numel() for p in model.parameters())
    stats.flops_per_token = model.flops_per_token(config["seq_len"])
    rows, seq_len = config["device_batch_size"], config["seq_len"]
    if device.kind == "cuda":  # only there does running out of memory raise, rather than swap
        rows = fit_rows(rows, memory_probe(model, seq_len, device))
    stats.device_batch_size = rows
    model.init_weights()  # after the probe: the seeded init is what trains
    optimizers = build_optimizers(model, config, fused=device.kind == "cuda")
    step_model = torch.compile(model, dynamic=False) if device.compile else model
    accumulation = config["total_batch_tokens"] // (rows * seq_len)
    threads = torch.get_num_threads()
    log(f"device {device.kind} ({device.name}), {threads} threads, bf16 {device.bf16}, compile {device.compile}")
    log(f"params {stats.params:,}, {accumulation} x {rows} x {seq_len} tokens per step, track {spec.track.key}")

    documents = corpus.train_documents(spec.seed, config["doc_order"])
    loader = train_batches(documents, config["packing"], rows, seq_len, device)
    budget = Budget(spec.track.budget_kind, spec.track.budget)
    loss_limit = DIVERGED_FACTOR * math.log(corpus.encoding.n_vocab)
    stats.loop_started = last_log = time.perf_counter()
    while budget.progress(stats) < 1.0:
        step_start = time.perf_counter()
        progress = budget.progress(stats)
        multiplier = apply_schedule(optimizers, progress, stats.steps, config)
        micro = micro_batches(progress, accumulation, config["batch_ramp_ratio"])
        loss_value = train_step(model, step_model, optimizers, loader, micro, device.precision)
        step_seconds = time.perf_counter() - step_start
        step_tokens = micro * rows * seq_len
        stats.steps += 1
        stats.tokens += step_tokens
        stats.loop_seconds = time.perf_counter() - stats.loop_started
        if stats.steps > UNTIMED_STEPS:
            stats.train_seconds += step_seconds
            stats.timed_tokens += step_tokens
        else:
            stats.untimed_seconds += step_seconds
        if not math.isfinite(loss_value) or loss_value > loss_limit:
            raise Diverged(f"loss {loss_value:.4g} at step {stats.steps}")
        stats.last_loss = loss_value
        if time.perf_counter() - last_log >= PROGRESS_EVERY_S or stats.steps == 1:
            last_log = time.perf_counter()
            log(progress_line(stats, budget, loss_value, multiplier, step_seconds))

    log(evaluating_line(stats))
    eval_start = time.perf_counter()
    sizes = torch.tensor(token_bytes(corpus.encoding), device=device.torch)
    batch_rows = spec.eval_split.batch_rows
    stats.val_bpb = val_bpb(step_model, eval_rows, sizes, batch_rows, device.precision())
    stats.test_bpb = val_bpb(step_model, holdout_rows, sizes, batch_rows, device.precision())
    stats.eval_seconds = time.perf_counter() - eval_start
    if not all(math.isfinite(score) for score in (stats.val_bpb, stats.test_bpb)):
        raise Diverged(f"val_bpb {stats.val_bpb:.4g}, test_bpb {stats.test_bpb:.4g} after {stats.steps} steps")


def train_step(
    model: GPT, step_model: Callable, optimizers: list, loader: Iterator[tuple], accumulation: int, precision: Callable
) -> float:
    """One optimiser step over ``accumulation`` micro-batches (their mean gradient); the last micro-batch's loss."""
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
    """The line the node reads a run's progress from (trainer.report.STEP_LINE): keep its opening as it is."""
    mfu = f"{100 * stats.mfu:.1f}%" if stats.mfu is not None else "n/a"
    return (
        f"step {stats.steps:05d} ({100 * budget.progress(stats):6.2f}%) | loss {loss:.4f} | lrm {multiplier:.2f}"
        f" | dt {1000 * step_seconds:.0f}ms | tok/s {stats.tokens_per_s:,.0f} | mfu {mfu}"
        f" | train {stats.train_seconds:.0f}s"
    )


def evaluating_line(stats: Stats) -> str:
    """Training is over (trainer.report.EVALUATING_LINE): the node shows the run as evaluating from here."""
    return f"evaluating after {stats.steps} steps, {stats.tokens:,} tokens, {stats.train_seconds:.0f}s of training"
