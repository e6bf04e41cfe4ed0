"""The GPT: rotary embeddings, RMSNorm, QK norm, value embeddings, sliding windows, logit softcap.

Every block first re-mixes the residual stream with the embedded input (x = a_i x + b_i x0, both
learned unless the config fixes them), then adds attention and an MLP, each reading an RMS-normed
copy of the stream. Training may add a z-loss and label smoothing; evaluation never does.
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
    resid_lambdas: bool = True  # learnable residual weights; False: fixed at 1
    x0_lambdas: bool = True  # learnable x0 mixing; False: none
    ve_gate: bool = True
    ve_init: str = "normal"  # normal, uniform (same std) or zeros
    ve_init_scale: float = 1.0  # value-embedding std as a multiple of embed_init_std
    attn_scale: float = 1.0  # multiplier on 1/sqrt(head_dim)
    rope_base: float = 10_000.0
    tie_embeddings: bool = False
    z_loss: float = 0.0
    label_smoothing: float = 0.0

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
        resid_lambdas=config["resid_lambdas"],
        x0_lambdas=config["x0_lambdas"],
        ve_gate=config["ve_gate"],
        ve_init=config["ve_init"],
        ve_init_scale=config["ve_init_scale"],
        attn_scale=config["attn_scale"],
        rope_base=config["rope_base"],
        tie_embeddings=config["tie_embeddings"],
        z_loss=config["z_loss"],
        label_smoothing=config["label_smoothing"],
    )


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of (B, T, H, D) ``x``: pairs (i, i + D/2) turn by position x frequency."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1).type_as(x)


def rotary_tables(seq_len: int, head_dim: int, base: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = base ** -(torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inv_freq)
    return angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, scale: float) -> torch.Tensor:
    """Causal attention over the last ``window`` positions, logits times ``scale``; (B, T, H, D) in and out."""
    seq_len = q.size(1)
    if fa3_attention is not None and q.is_cuda and torch.version.hip is None:  # FA3 computes in bf16 only
        q, k, v = q.bfloat16(), k.bfloat16(), v.bfloat16()
        window_size = (window - 1 if window < seq_len else -1, 0)
        out = fa3_attention(q, k, v, softmax_scale=scale, causal=True, window_size=window_size)
        return out[0] if isinstance(out, tuple) else out
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    gqa = q.size(1) != k.size(1)
    if window >= seq_len:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    else:
        position = torch.arange(seq_len, device=q.device)
        distance = position[:, None] - position[None, :]
        mask = (distance >= 0) & (distance < window)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=gqa)
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
        self.scale = config.attn_scale / config.head_dim**0.5
        gate_in = min(GATE_CHANNELS, config.model_dim)
        gated = config.has_value_embed(layer) and config.ve_gate
        self.ve_gate = nn.Linear(gate_in, config.n_kv_head, bias=False) if gated else None

    def forward(self, x: torch.Tensor, ve: torch.Tensor | None, rotary: tuple, window: int) -> torch.Tensor:
        batch, seq_len, _ = x.shape
        q = self.c_q(x).view(batch, seq_len, self.n_head, self.head_dim)
        k = self.c_k(x).view(batch, seq_len, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(batch, seq_len, self.n_kv_head, self.head_dim)
        if ve is not None and self.ve_gate is not None:
            # each kv head decides how much of its token's value embedding to take, in (0, 2)
            gate = 2 * torch.sigmoid(self.ve_gate(x[..., : self.ve_gate.in_features]))
            v = v + gate.unsqueeze(-1) * ve.view_as(v)
        elif ve is not None:
            v = v + ve.view_as(v)
        q, k = rotate(rms_norm(q), *rotary), rotate(rms_norm(k), *rotary)
        y = attend(q, k, v, window, self.scale)
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
        if config.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        # None when fixed: a residual weight of 1, no x0 mixing
        self.resid_lambdas = nn.Parameter(torch.ones(config.n_layer)) if config.resid_lambdas else None
        self.x0_lambdas = nn.Parameter(torch.full((config.n_layer,), 0.1)) if config.x0_lambdas else None

    @property
    def scalars(self) -> list[nn.Parameter]:
        """The learnable per-layer weights, those the config keeps."""
        return [p for p in (self.resid_lambdas, self.x0_lambdas) if p is not None]

    @torch.no_grad()
    def init_weights(self) -> None:
        """Initialise every weight; called once, after seeding, on the training device."""
        config = self.config
        nn.init.normal_(self.wte.weight, std=config.embed_init_std)
        ve_std = config.ve_init_scale * config.embed_init_std
        for embed in self.value_embeds.values():
            if config.ve_init == "normal":
                nn.init.normal_(embed.weight, std=ve_std)
            elif config.ve_init == "uniform":
                nn.init.uniform_(embed.weight, -(3**0.5) * ve_std, 3**0.5 * ve_std)
            else:
                nn.init.zeros_(embed.weight)
        if not config.tie_embeddings:  # a tied head keeps the embedding's init
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
        if self.resid_lambdas is not None:
            self.resid_lambdas.fill_(1.0)
        if self.x0_lambdas is not None:
            self.x0_lambdas.fill_(0.1)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy of ``targets`` given ``idx`` (B, T): the mean, or per token with reduction='none'.

        In training mode the mean carries the config's label smoothing and z-loss; in eval mode never.
        """
        config = self.config
        rotary = rotary_tables(idx.size(1), config.head_dim, config.rope_base, idx.device)
        x = x0 = rms_norm(self.wte(idx))
        for i, block in enumerate(self.blocks):
            if self.resid_lambdas is not None:
                x = self.resid_lambdas[i] * x
            if self.x0_lambdas is not None:
                x = x + self.x0_lambdas[i] * x0
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
            x = block(x, ve, rotary, self.config.windows[i])
        logits = self.lm_head(rms_norm(x)).float()
        if config.logit_softcap > 0:
            logits = config.logit_softcap * torch.tanh(logits / config.logit_softcap)
        logits, targets = logits.view(-1, logits.size(-1)), targets.reshape(-1)
        if not self.training or reduction != "mean":
            return F.cross_entropy(logits, targets, reduction=reduction)
        loss = F.cross_entropy(logits, targets, label_smoothing=config.label_smoothing)
        if config.z_loss > 0:  # keeps the log-partition near zero, so logits cannot drift upwards together
            loss = loss + config.z_loss * torch.logsumexp(logits, dim=-1).square().mean()
        return loss

    def flops_per_token(self, seq_len: int) -> int:
        """Matmul FLOPs of one training token (forward + backward): 6 per weight, plus attention scores."""
        # embeddings are lookups, not matmuls; a tied head still multiplies
        weights = sum(p.numel() for p in self.blocks.parameters() if p.ndim == 2) + self.lm_head.weight.numel()
        head_width = self.config.n_head * self.config.head_dim
        attention = sum(12 * head_width * min(window, seq_len) for window in self.config.windows)
        return 6 * weights + attention
