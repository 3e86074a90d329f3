"""Pre-norm transformer used by the ImageBind-style modality trunks.

Numerically this matches ``nn.MultiheadAttention(add_bias_kv=True)`` as ImageBind uses it, but it
runs batch-first through ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels on
GPU) instead of the sequence-first module. The learned ``bias_k``/``bias_v`` are one extra key/value
token appended to every sequence; attention is permutation invariant over keys, so appending it
keeps the result exact.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BiasKVAttention(nn.Module):
    """Multi-head self-attention with an optional learned extra key/value token."""

    def __init__(self, dim: int, heads: int, bias_kv: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by heads={heads}")
        self.dim, self.heads = dim, heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        if bias_kv:
            self.bias_k = nn.Parameter(torch.zeros(1, 1, dim))
            self.bias_v = nn.Parameter(torch.zeros(1, 1, dim))
            nn.init.xavier_normal_(self.bias_k)
            nn.init.xavier_normal_(self.bias_v)
        else:
            self.register_parameter("bias_k", None)
            self.register_parameter("bias_v", None)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.to(k.dtype).expand(b, 1, d)], dim=1)
            v = torch.cat([v, self.bias_v.to(v.dtype).expand(b, 1, d)], dim=1)
            if attn_mask is not None:  # the extra token is visible to every query
                attn_mask = F.pad(attn_mask, (0, 1))
        h = self.heads
        q = q.view(b, n, h, d // h).transpose(1, 2)
        k = k.view(b, k.shape[1], h, d // h).transpose(1, 2)
        v = v.view(b, v.shape[1], h, d // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, bias_kv: bool = True,
                 drop_path: float = 0.0, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = BiasKVAttention(dim, heads, bias_kv=bias_kv)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), attn_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Transformer(nn.Module):
    """A stack of pre-norm blocks with progressive drop path (0 at the first block)."""

    def __init__(self, dim: int, layers: int, heads: int, mlp_ratio: float = 4.0,
                 bias_kv: bool = True, drop_path: float = 0.0, eps: float = 1e-6,
                 grad_checkpointing: bool = False):
        super().__init__()
        rates = torch.linspace(0, drop_path, layers).tolist() if layers > 1 else [0.0] * layers
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio, bias_kv, rate, eps) for rate in rates)
        self.grad_checkpointing = grad_checkpointing
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            if self.grad_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(block, x, attn_mask, use_reentrant=False)
            else:
                x = block(x, attn_mask)
        return x


def _init_weights(m: nn.Module) -> None:
    # MAE / JAX ViT init, as the ImageBind trunks use.
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
