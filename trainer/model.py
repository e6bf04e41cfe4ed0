"""The GPT: rotary embeddings, RMSNorm, QK norm, value embeddings, sliding windows, logit softcap.

Every block first re-mixes the residual stream with the embedded input (x = a_i x + b_i x0, both
learned), then adds attention and an MLP, each reading an RMS-normed copy of the stream.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from protocol.config import Value, model_shape

try:  # FlashAttention 3 (Hopper builds), when installed; SDPA otherwise
    from flash_attn_interface import flash_attn_func as fa3_attention
except ImportError:
    fa3_attention = None

ROTARY_BASE = 10_000
GATE_CHANNELS = 32  # value-embedding gates read only the first channels of the stream


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    n_layer: int
    model_dim: int
    n_head: int
    n_kv_head: int
    mlp_ratio: int
    activation: str
    value_embeds: bool
    logit_softcap: float
    windows: tuple[int, ...]  # attention window of each layer, in tokens
    init_scale: float
    embed_init_std: float
    unembed_init_std: float

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.n_head

    def has_value_embed(self, layer: int) -> bool:
        # alternating layers, always including the last
        return self.value_embeds and layer % 2 == (self.n_layer - 1) % 2


def gpt_config(config: Mapping[str, Value], vocab_size: int) -> GPTConfig:
    """The model a config from the config space describes."""
    shape = model_shape(config)
    seq_len = config["seq_len"]
    short = max(1, round(config["short_window_frac"] * seq_len))
    pattern = config["window_pattern"]
    windows = tuple(short if pattern[i % len(pattern)] == "S" else seq_len for i in range(config["depth"]))
    return GPTConfig(
        vocab_size=vocab_size,
        n_layer=config["depth"],
        model_dim=shape.model_dim,
        n_head=shape.n_head,
        n_kv_head=shape.n_kv_head,
        mlp_ratio=config["mlp_ratio"],
        activation=config["activation"],
        value_embeds=config["value_embeds"],
        logit_softcap=config["logit_softcap"],
        windows=windows,
        init_scale=config["init_scale"],
        embed_init_std=config["embed_init_std"],
        unembed_init_std=config["unembed_init_std"],
    )


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of (B, T, H, D) ``x``: pairs (i, i + D/2) turn by position x frequency."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1).type_as(x)


def rotary_tables(seq_len: int, head_dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = ROTARY_BASE ** -(torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inv_freq)
    return angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """Causal attention over the last ``window`` positions; (B, T, H, D) in and out."""
    seq_len = q.size(1)
    if fa3_attention is not None and q.is_cuda:  # FA3 computes in bf16 only
        q, k, v = q.bfloat16(), k.bfloat16(), v.bfloat16()
        out = fa3_attention(q, k, v, causal=True, window_size=(window - 1 if window < seq_len else -1, 0))
        return out[0] if isinstance(out, tuple) else out
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    gqa = q.size(1) != k.size(1)
    if window >= seq_len:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    else:
        position = torch.arange(seq_len, device=q.device)
        distance = position[:, None] - position[None, :]
        mask = (distance >= 0) & (distance < window)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
    return out.transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, config: GPTConfig, layer: int) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        kv_dim = config.n_kv_head * config.head_dim
        self.c_q = nn.Linear(config.model_dim, config.model_dim, bias=False)
        self.c_k = nn.Linear(config.model_dim, kv_dim, bias=False)
        self.c_v = nn.Linear(config.model_dim, kv_dim, bias=False)
        self.c_proj = nn.Linear(config.model_dim, config.model_dim, bias=False)
        gate_in = min(GATE_CHANNELS, config.model_dim)
        self.ve_gate = nn.Linear(gate_in, config.n_kv_head, bias=False) if config.has_value_embed(layer) else None

    def forward(self, x: torch.Tensor, ve: torch.Tensor | None, rotary: tuple, window: int) -> torch.Tensor:
        batch, seq_len, _ = x.shape
        q = self.c_q(x).view(batch, seq_len, self.n_head, self.head_dim)
        k = self.c_k(x).view(batch, seq_len, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(batch, seq_len, self.n_kv_head, self.head_dim)
        if ve is not None:
            # each kv head decides how much of its token's value embedding to take, in (0, 2)
            gate = 2 * torch.sigmoid(self.ve_gate(x[..., : self.ve_gate.in_features]))
            v = v + gate.unsqueeze(-1) * ve.view_as(v)
        q, k = rotate(rms_norm(q), *rotary), rotate(rms_norm(k), *rotary)
        y = attend(q, k, v, window)
        return self.c_proj(y.reshape(batch, seq_len, -1))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        hidden = config.mlp_ratio * config.model_dim
        self.activation = config.activation
        self.c_fc = nn.Linear(config.model_dim, 2 * hidden if self.activation == "swiglu" else hidden, bias=False)
        self.c_proj = nn.Linear(hidden, config.model_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c_fc(x)
        if self.activation == "relu2":
            x = F.relu(x).square()
        elif self.activation == "gelu":
            x = F.gelu(x)
        elif self.activation == "silu":
            x = F.silu(x)
        else:  # swiglu
            gate, up = x.chunk(2, dim=-1)
            x = F.silu(gate) * up
        return self.c_proj(x)


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer: int) -> None:
        super().__init__()
        self.attn = Attention(config, layer)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, ve: torch.Tensor | None, rotary: tuple, window: int) -> torch.Tensor:
        x = x + self.attn(rms_norm(x), ve, rotary, window)
        return x + self.mlp(rms_norm(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        kv_dim = config.n_kv_head * config.head_dim
        self.wte = nn.Embedding(config.vocab_size, config.model_dim)
        self.value_embeds = nn.ModuleDict(
            {
                str(i): nn.Embedding(config.vocab_size, kv_dim)
                for i in range(config.n_layer)
                if config.has_value_embed(i)
            }
        )
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.lm_head = nn.Linear(config.model_dim, config.vocab_size, bias=False)
        self.resid_lambdas = nn.Parameter(torch.ones(config.n_layer))
        self.x0_lambdas = nn.Parameter(torch.full((config.n_layer,), 0.1))

    @torch.no_grad()
    def init_weights(self) -> None:
        """Initialise every weight; called once, after seeding, on the training device."""
        config = self.config
        nn.init.normal_(self.wte.weight, std=config.embed_init_std)
        for embed in self.value_embeds.values():
            nn.init.normal_(embed.weight, std=config.embed_init_std)
        nn.init.normal_(self.lm_head.weight, std=config.unembed_init_std)
        # uniform with the std of N(0, 1/fan_in), scaled; output projections start at zero so
        # every block begins as the identity
        bound = 3**0.5 * config.init_scale * config.model_dim**-0.5
        for block in self.blocks:
            for linear in (block.attn.c_q, block.attn.c_k, block.attn.c_v, block.mlp.c_fc):
                nn.init.uniform_(linear.weight, -bound, bound)
            nn.init.zeros_(block.attn.c_proj.weight)
            nn.init.zeros_(block.mlp.c_proj.weight)
            if block.attn.ve_gate is not None:
                nn.init.zeros_(block.attn.ve_gate.weight)
        self.resid_lambdas.fill_(1.0)
        self.x0_lambdas.fill_(0.1)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy of ``targets`` given ``idx`` (B, T): the mean, or per token with reduction='none'."""
        seq_len = idx.size(1)
        rotary = rotary_tables(seq_len, self.config.head_dim, idx.device)
        x = x0 = rms_norm(self.wte(idx))
        for i, block in enumerate(self.blocks):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
            x = block(x, ve, rotary, self.config.windows[i])
        logits = self.lm_head(rms_norm(x)).float()
        if self.config.logit_softcap > 0:
            cap = self.config.logit_softcap
            logits = cap * torch.tanh(logits / cap)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), reduction=reduction)

    def flops_per_token(self, seq_len: int) -> int:
        """Matmul FLOPs of one training token (forward + backward): 6 per weight, plus attention scores."""
        embeddings = self.wte.weight.numel() + sum(e.weight.numel() for e in self.value_embeds.values())
        scalars = self.resid_lambdas.numel() + self.x0_lambdas.numel()
        weights = sum(p.numel() for p in self.parameters()) - embeddings - scalars
        head_width = self.config.n_head * self.config.head_dim
        attention = sum(12 * head_width * min(window, seq_len) for window in self.config.windows)
        return 6 * weights + attention
