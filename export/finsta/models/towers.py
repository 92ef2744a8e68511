"""The exported graphs' top-level modules: video tower, text tower, scorer (docs/bundle.md).

The video tower takes uint8 RGB frames [B, T, S, S, 3], already resized and cropped by the
runtime (finsta_rt.preprocess), and normalises them inside the graph. The same FrameEncoder
computes the cached backbone features for training, so training and export see identical inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .stgt import similarity


class FrameEncoder(nn.Module):
    """uint8 frames [B, T, S, S, 3] -> backbone tokens [B, T, 1 + P, C] (CLS first)."""

    def __init__(self, backbone: nn.Module, mean: tuple[float, float, float], std: tuple[float, float, float]):
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, frames: Tensor) -> Tensor:
        B, T, H, W, C = frames.shape
        x = frames.reshape(B * T, H, W, C).permute(0, 3, 1, 2).to(torch.float32)
        tokens, cls = self.backbone((x - self.mean) * self.inv_std)
        tokens = torch.cat([cls[:, None], tokens], dim=1)
        return tokens.reshape(B, T, tokens.shape[1], tokens.shape[2])


class VideoTower(nn.Module):
    """frames -> (video_embedding [B, Q, E], video_global [B, E], video_tokens [B, N, D])."""

    def __init__(self, encoder: FrameEncoder, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, frames: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        zv, tokens = self.head(self.encoder(frames))
        return zv, nn.functional.normalize(zv.mean(dim=1), dim=-1), tokens


class TextTower(nn.Module):
    """(input_ids, attention_mask) int64 [B, S] -> text_embedding [B, E]."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        features, _ = self.backbone(input_ids, attention_mask)
        return self.head(features, attention_mask)


class Scorer(nn.Module):
    """(video_embedding [Nv, Q, E], text_embedding [Nt, E]) -> scores [Nt, Nv] = max over queries."""

    def forward(self, video_embedding: Tensor, text_embedding: Tensor) -> Tensor:
        return similarity(video_embedding, text_embedding)
