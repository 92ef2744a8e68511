"""Batches of cached features, as every family's training step and evaluation read them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from .features import FeatureSet


def feature_batch(fs: FeatureSet, idx: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
    """Videos ``idx`` of ``fs`` as float32 tensors: frame tokens [B, T, 1 + P, C], text features
    [B, 3, S, Ct] (caption, order-swapped, attribute-swapped) and their mask [B, 3, S]."""
    idx = np.sort(idx)  # sorted reads are faster on the memory map
    return (
        torch.from_numpy(np.asarray(fs.tokens[idx], dtype=np.float32)),
        torch.from_numpy(fs.text[idx].astype(np.float32)),
        torch.from_numpy(fs.mask[idx]),
    )


def encode_text_rows(encode: Callable[[Tensor, Tensor], Tensor], text: Tensor, mask: Tensor) -> Tensor:
    """Runs a text head ``encode(features [N, S, C], mask [N, S]) -> [N, E]`` on [B, K, S, C]
    texts (K per video) as one batch of B*K rows; returns [B, K, E]."""
    B, K, S, C = text.shape
    return encode(text.reshape(B * K, S, C), mask.reshape(B * K, S)).view(B, K, -1)
