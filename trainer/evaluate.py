"""The frozen evaluation: bits per byte of the pinned validation rows.

val_bpb = summed cross-entropy of the target tokens (nats) / (ln 2 x their summed UTF-8 bytes),
special tokens left out of both sums. Rows, sequence length, token count and batch size are fixed
per eval version (trainer.spec.DATASETS), so the same weights always score the same.
"""

import math
from contextlib import AbstractContextManager

import numpy as np
import torch

from trainer.model import GPT


@torch.no_grad()
def val_bpb(
    model: GPT, rows: np.ndarray, token_bytes: torch.Tensor, batch_rows: int, precision: AbstractContextManager
) -> float:
    """Bits per byte of ``rows`` (n, seq_len + 1); ``precision`` is the autocast context of training."""
    was_training = model.training
    model.eval()
    device = token_bytes.device
    nats = torch.zeros((), dtype=torch.float64, device=device)
    n_bytes = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(0, len(rows), batch_rows):
        batch = torch.from_numpy(rows[start : start + batch_rows].astype(np.int64)).to(device)
        inputs, targets = batch[:, :-1], batch[:, 1:]
        with precision:
            losses = model(inputs, targets, reduction="none")
        weight = token_bytes[targets.reshape(-1)]
        nats += torch.where(weight > 0, losses, 0.0).sum(dtype=torch.float64)
        n_bytes += weight.sum()
    model.train(was_training)
    return nats.item() / (math.log(2) * n_bytes.item())
