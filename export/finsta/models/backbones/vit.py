"""A small randomly initialised ViT frame backbone, for fast tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import FrameBackbone, FramePreprocess, attention


class _ViTBlock(nn.Module):
    """Pre-LN Transformer block (ViT)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.heads = heads

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        x = x + self.proj(attention(q, k, v, self.heads, None))
        return x + self.mlp(self.norm2(x))


class TinyViT(FrameBackbone):
    """A small randomly initialised ViT: CLS token + patch tokens, learned positions, final LN."""

    def __init__(self, image_size: int, patch: int, dim: int, depth: int, heads: int):
        super().__init__()
        if image_size % patch or dim % heads:
            raise ValueError(f"image_size {image_size} must divide by patch {patch} and dim {dim} by heads {heads}")
        side = image_size // patch
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + side * side, dim))
        self.blocks = nn.ModuleList(_ViTBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.out_dim, self.grid, self.tokens_per_frame = dim, (side, side), side * side
        self.preprocess = FramePreprocess(size=image_size, mean=(127.5,) * 3, std=(127.5,) * 3)

    def forward(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        x = self.patch_embed(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x[:, 1:], x[:, 0]


def tiny_vit(
    image_size: int = 64, patch: int = 16, dim: int = 64, depth: int = 2, heads: int = 4, seed: int = 0
) -> FrameBackbone:
    """Random-init ViT for tests; the same seed gives the same weights, whatever the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyViT(image_size, patch, dim, depth, heads).eval()
