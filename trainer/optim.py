"""Muon for the transformer's matrices, AdamW for embeddings, output head and scalars, and the LR schedule."""

import math
from collections.abc import Mapping

import torch

from protocol.config import Value
from trainer.model import GPT

# Quintic Newton-Schulz coefficients that push singular values towards 1 in few iterations
NS_COEFFS = (3.4445, -4.7750, 2.0315)
MOMENTUM_WARMUP_STEPS = 300
MOMENTUM_START = 0.85
ADAM_EPS = 1e-10


def orthogonalize(g: torch.Tensor, steps: int) -> torch.Tensor:
    """The nearest semi-orthogonal matrix to each (..., m, n) ``g``, approximately, by ``steps`` of Newton-Schulz."""
    a, b, c = NS_COEFFS
    x = g.bfloat16() if g.is_cuda else g.float()  # bf16 is fast and good enough on GPUs
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.mT if tall else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Momentum, then orthogonalised updates: every direction of a matrix moves by the same amount."""

    def __init__(
        self, params: list[torch.Tensor], lr: float, momentum: float, weight_decay: float, ns_steps: int, nesterov: bool
    ) -> None:
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay}
        super().__init__(params, {**defaults, "ns_steps": ns_steps, "nesterov": nesterov})

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            by_shape: dict[torch.Size, list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.grad is not None:
                    by_shape.setdefault(p.shape, []).append(p)
            for shape, params in by_shape.items():
                self._update(params, shape, group)

    def _update(self, params: list[torch.Tensor], shape: torch.Size, group: Mapping) -> None:
        # same-shape matrices are orthogonalised together as one batch
        for p in params:
            if "momentum" not in self.state[p]:
                self.state[p]["momentum"] = torch.zeros_like(p)
        grads = torch.stack([p.grad for p in params])
        buffers = torch.stack([self.state[p]["momentum"] for p in params])
        buffers.lerp_(grads, 1 - group["momentum"])
        direction = grads.lerp_(buffers, group["momentum"]) if group["nesterov"] else buffers
        update = orthogonalize(direction, group["ns_steps"])
        update *= max(1.0, shape[0] / shape[1]) ** 0.5
        lr = group["lr"]
        for i, p in enumerate(params):
            self.state[p]["momentum"].copy_(buffers[i])
            p.mul_(1 - lr * group["weight_decay"]).add_(update[i], alpha=-lr)


def build_optimizers(model: GPT, config: Mapping[str, Value], fused: bool) -> list[torch.optim.Optimizer]:
    """Muon for the 2-D weights inside blocks; AdamW, one group per LR knob, for everything else."""
    matrices = [p for p in model.blocks.parameters() if p.ndim == 2]
    embeddings = [model.wte.weight, *(e.weight for e in model.value_embeds.values())]
    groups = [{"params": embeddings, "lr": config["embedding_lr"]}]
    if not model.config.tie_embeddings:  # a tied head is the embedding, trained at the embedding's LR
        groups.append({"params": [model.lm_head.weight], "lr": config["unembedding_lr"]})
    if model.scalars:  # fixed residual and x0 weights leave none
        groups.append({"params": model.scalars, "lr": config["scalar_lr"]})
    counted = sum(p.numel() for p in matrices) + sum(p.numel() for g in groups for p in g["params"])
    assert counted == sum(p.numel() for p in model.parameters()), "a parameter has no optimiser"
    for group in groups:
        group["base_lr"] = group["lr"]
    adam = torch.optim.AdamW(
        groups, betas=(config["adam_beta1"], config["adam_beta2"]), eps=ADAM_EPS, weight_decay=0.0, fused=fused
    )
    muon = Muon(
        matrices,
        config["matrix_lr"],
        config["muon_momentum"],
        config["weight_decay"],
        config["muon_ns_steps"],
        config["muon_nesterov"],
    )
    muon.param_groups[0]["base_lr"] = config["matrix_lr"]
    return [adam, muon]


def lr_multiplier(progress: float, config: Mapping[str, Value]) -> float:
    """LR as a fraction of its peak at ``progress`` in [0, 1] of the budget: warmup, flat, warmdown.

    The warmdown falls from 1 to final_lr_frac: linearly, along half a cosine, or as 1 - sqrt(elapsed).
    """
    warmup, warmdown, final = config["warmup_ratio"], config["warmdown_ratio"], config["final_lr_frac"]
    if progress < warmup:
        return (progress + 1e-9) / warmup  # never exactly zero: the first step still learns
    if progress > 1 - warmdown:
        left = max(0.0, (1 - progress) / warmdown)
        shape = config["warmdown_shape"]
        if shape == "cosine":
            left = 0.5 * (1 - math.cos(math.pi * left))
        elif shape == "sqrt":
            left = 1 - math.sqrt(1 - left)
        return final + (1 - final) * left
    return 1.0


def apply_schedule(optimizers: list[torch.optim.Optimizer], progress: float, step: int, config: Mapping) -> float:
    """Set every group's LR for this step, and Muon's momentum; return the LR multiplier."""
    multiplier = lr_multiplier(progress, config)
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * multiplier
    ramp = min(step / MOMENTUM_WARMUP_STEPS, 1.0)
    optimizers[1].param_groups[0]["momentum"] = (1 - ramp) * MOMENTUM_START + ramp * config["muon_momentum"]
    return multiplier
