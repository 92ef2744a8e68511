"""Batches of cached features, as every family's training step and evaluation read them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..losses import itc_loss
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


def same_segment(fs: FeatureSet, idx: np.ndarray) -> Tensor | None:
    """[B, B] bool: rows i and j of the batch show the same segment (another caption of it, or the same
    row repeated), so neither may be the other's negative; None when every row is its own segment."""
    seg = torch.from_numpy(fs.segment[np.sort(idx)])
    same = seg[:, None] == seg[None, :]
    return same if int(same.sum()) > len(idx) else None


def hard_rows(fs: FeatureSet, idx: np.ndarray) -> Tensor:
    """[B] bool: the batch rows whose order/attribute-swapped captions are real (synthetic rows)."""
    return torch.from_numpy(fs.hard[np.sort(idx)])


def itc_loss_masked(sim: Tensor, temperature: Tensor, same: Tensor | None, label_smoothing: float = 0.1) -> Tensor:
    """finsta.losses.itc_loss where ``same`` [B, B] marks further positives: those are left out of each
    row's (and column's) softmax instead of being pushed away; the diagonal stays the target."""
    if same is None:
        return itc_loss(sim, temperature, label_smoothing)
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    allowed = ~same | eye

    def ce(logits: Tensor, ok: Tensor) -> Tensor:
        logp = torch.log_softmax(logits.masked_fill(~ok, float("-inf")), dim=-1).masked_fill(~ok, 0.0)
        smooth = ok.to(logits.dtype) / ok.sum(dim=-1, keepdim=True)  # label smoothing over the allowed columns
        target = (1 - label_smoothing) * eye.to(logits.dtype) + label_smoothing * smooth
        return -(target * logp).sum(dim=-1).mean()

    logits = sim / temperature
    return 0.5 * (ce(logits, allowed) + ce(logits.t(), allowed.t()))
