"""Trainer figures on this machine's CPU.

1. The default CPU-sized config trained for 60 s on the embedded corpus: tokens/s and val_bpb.
2. Overhead: our training step time over that of a plain PyTorch loop written here (AdamW, no
   schedule), same batch and precision, timed in this process, interleaved, best of each: (a) the
   plain loop driving our GPT isolates the trainer's own cost (loop, data, Muon, schedule); (b) the
   plain loop driving a plain GPT of the same shape, written here, adds the cost of our model's
   features (value embeddings, sliding windows, QK norm, rotary, x0 mixing, softcap).

    python -m bench.trainer [--seconds 60] [--steps 40]

With ``--threads 1,2`` it measures only training tokens/s per torch thread count instead (``--steps``
steps, best of ``--rounds``, interleaved): the figures of the README's "A solo run".
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from protocol.config import model_shape
from trainer.device import open_device
from trainer.model import GPT, gpt_config
from trainer.spec import build_spec, check_spec, default_config_for, track_for
from trainer.train import UNTIMED_STEPS, Stats, run

ROOT = Path(__file__).resolve().parents[1]


def timed_run(seconds: int, cache: Path) -> dict:
    config = default_config_for("cpu")
    spec = build_spec(config, track_for("cpu", "shakespeare", "seconds", seconds), "cpu", cache / "data", cache)
    with tempfile.TemporaryDirectory() as scratch:
        spec_file, out = Path(scratch) / "spec.json", Path(scratch) / "result.json"
        spec_file.write_text(json.dumps(spec))
        command = [sys.executable, "-m", "trainer", "--spec", str(spec_file), "--out", str(out)]
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


class PlainBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(F.rms_norm(x, (d,))).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.down(F.relu(self.up(F.rms_norm(x, (d,)))).square())


class PlainGPT(nn.Module):
    def __init__(self, vocab: int, dim: int, heads: int, hidden: int, depth: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.Sequential(*(PlainBlock(dim, heads, hidden) for _ in range(depth)))
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.embed(idx))
        logits = self.head(F.rms_norm(x, (x.size(-1),))).float()
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def plain_gpt(config: dict, vocab: int) -> nn.Module:
    shape = model_shape(config)
    return PlainGPT(vocab, shape.model_dim, shape.n_head, config["mlp_ratio"] * shape.model_dim, config["depth"])


def our_gpt(config: dict, vocab: int) -> nn.Module:
    model = GPT(gpt_config(config, vocab))
    model.init_weights()
    return model


def plain_step_seconds(model: nn.Module, config: dict, vocab: int, steps: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    device = open_device("cpu", "off")
    rows, seq_len = config["device_batch_size"], config["seq_len"]
    accumulation = config["total_batch_tokens"] // (rows * seq_len)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        for _ in range(accumulation):
            tokens = torch.randint(0, vocab, (rows, seq_len + 1))
            with device.precision():
                loss = model(tokens[:, :-1], tokens[:, 1:])
            (loss / accumulation).backward()
        optimizer.step()
        model.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - start)
    return sum(times[UNTIMED_STEPS:]) / len(times[UNTIMED_STEPS:])


def our_step_seconds(config: dict, steps: int, cache: Path) -> float:
    spec = check_spec(build_spec(config, track_for("cpu", "shakespeare", "steps", steps), "cpu", cache / "data", cache))
    stats = Stats()
    run(spec, stats, log=lambda line: None)
    return stats.train_seconds / (stats.steps - UNTIMED_STEPS)


def tokens_per_s_by_threads(config: dict, threads: list[int], steps: int, rounds: int, cache: Path) -> None:
    """Best training tokens/s of each thread count over interleaved rounds: the least disturbed one."""
    os.environ["OMP_NUM_THREADS"] = str(threads[0])  # the trainer then keeps the count set here
    best: dict[int, float] = {}
    for _ in range(rounds):
        for count in threads:
            torch.set_num_threads(count)
            spec = build_spec(config, track_for("cpu", "shakespeare", "steps", steps), "cpu", cache / "data", cache)
            stats = Stats()
            run(check_spec(spec), stats, log=lambda line: None)
            best[count] = max(best.get(count, 0.0), stats.tokens_per_s)
            print(f"  {count} threads: {stats.tokens_per_s:8,.0f} tokens/s (load {os.getloadavg()[0]:.1f})", flush=True)
    print("best: " + ", ".join(f"{count} threads {tokens:,.0f} tokens/s" for count, tokens in best.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", help="only tokens/s per torch thread count, e.g. 1,2")
    args = parser.parse_args()
    cache = Path(tempfile.gettempdir()) / "arnode-bench-cache"
    config = default_config_for("cpu")
    if args.threads:
        tokens_per_s_by_threads(config, [int(n) for n in args.threads.split(",")], args.steps, args.rounds, cache)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, default CPU config (small profile)")

    result = timed_run(args.seconds, cache)
    print(f"\n{args.seconds} s budget: outcome {result['outcome']}, val_bpb {result['val_bpb']:.4f}, ")
    print(f"  steps {result['steps']}, tokens {result['tokens']:,}, tokens/s {result['tokens_per_s']:,}")

    rounds: dict[str, list[float]] = {"ours": [], "plain loop, our GPT": [], "plain loop, plain GPT": []}
    for _ in range(args.rounds):  # interleaved, so that load from elsewhere hits all alike
        rounds["ours"].append(our_step_seconds(config, args.steps, cache))
        rounds["plain loop, our GPT"].append(plain_step_seconds(our_gpt(config, 4096), config, 4096, args.steps))
        rounds["plain loop, plain GPT"].append(plain_step_seconds(plain_gpt(config, 4096), config, 4096, args.steps))
    best = {name: min(times) for name, times in rounds.items()}  # the least disturbed round
    print("\nstep time (ms), per round, best")
    for name, times in rounds.items():
        print(f"  {name:<24}" + "".join(f"{1000 * t:8.1f}" for t in times) + f"   best {1000 * best[name]:.1f}")
    overhead = best["ours"] / best["plain loop, our GPT"]
    print(f"trainer overhead  ours / plain loop on our GPT:   {overhead:.3f} (target <= 1.05)")
    print(f"with model costs  ours / plain loop on plain GPT: {best['ours'] / best['plain loop, plain GPT']:.3f}")


if __name__ == "__main__":
    main()
