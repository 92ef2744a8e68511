"""Transformer building blocks shared by the model families, written with plain matmuls so that
they export to ONNX as standard ops."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), as in CLIP and the STGT code."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class MLP(nn.Sequential):
    def __init__(self, dim: int, ratio: float = 4.0, act: type[nn.Module] = QuickGELU):
        hidden = int(dim * ratio)
        super().__init__(nn.Linear(dim, hidden), act(), nn.Linear(hidden, dim))


class Attention(nn.Module):
    """Multi-head attention; ``key_mask`` [B, S] (1 keep, 0 drop) masks keys, e.g. text padding."""

    def __init__(self, dim: int, heads: int, kv_dim: int | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(kv_dim or dim, dim)
        self.v = nn.Linear(kv_dim or dim, dim)
        self.o = nn.Linear(dim, dim)

    def split(self, x: Tensor) -> Tensor:
        B, N, _ = x.shape
        return x.view(B, N, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, kv: Tensor | None = None, key_mask: Tensor | None = None) -> Tensor:
        kv = x if kv is None else kv
        q, k, v = self.split(self.q(x)), self.split(self.k(kv)), self.split(self.v(kv))
        logits = (q @ k.transpose(-1, -2)) * self.head_dim**-0.5
        if key_mask is not None:
            logits = logits.masked_fill(key_mask[:, None, None, :] == 0, torch.finfo(logits.dtype).min)
        out = torch.softmax(logits, dim=-1) @ v
        B, _, N, _ = out.shape
        return self.o(out.transpose(1, 2).reshape(B, N, self.heads * self.head_dim))


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.ln_2, self.mlp = nn.LayerNorm(dim), MLP(dim)

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.ln_1(x), key_mask=key_mask)
        return x + self.mlp(self.ln_2(x))


class CrossAttentionBlock(nn.Module):
    """Query block of a Q-Former: self-attention over queries, cross-attention to a memory, MLP."""

    def __init__(self, dim: int, heads: int, memory_dim: int | None = None):
        super().__init__()
        self.ln_self, self.self_attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.ln_cross, self.cross_attn = nn.LayerNorm(dim), Attention(dim, heads, kv_dim=memory_dim)
        self.ln_mlp, self.mlp = nn.LayerNorm(dim), MLP(dim)

    def forward(self, q: Tensor, memory: Tensor) -> Tensor:
        q = q + self.self_attn(self.ln_self(q))
        q = q + self.cross_attn(self.ln_cross(q), kv=memory)
        return q + self.mlp(self.ln_mlp(q))
