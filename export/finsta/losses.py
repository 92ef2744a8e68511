"""Contrastive losses of STGT (docs/families.md, STGT losses): ITC and CSAL."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def itc_loss(sim_t2v: Tensor, temperature: Tensor, label_smoothing: float = 0.1) -> Tensor:
    """Symmetric InfoNCE over a batch: sim_t2v [B, B] (text j, video i), positives on the diagonal."""
    logits = sim_t2v / temperature
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (
        F.cross_entropy(logits, target, label_smoothing=label_smoothing)
        + F.cross_entropy(logits.t(), target, label_smoothing=label_smoothing)
    )


def csal_targets(zv: Tensor, zt: Tensor) -> Tensor:
    """Soft targets of CSAL: Pi = relu(v v^T) * relu(t t^T), Pi < 0.05 -> -100, softmax(5 Pi)."""
    v = F.normalize(zv.mean(dim=1), dim=-1)
    pi = torch.relu(v @ v.t()) * torch.relu(zt @ zt.t())
    pi = pi.masked_fill(pi < 0.05, -100.0)
    return torch.softmax(5.0 * pi, dim=-1)


def csal_loss(sim_t2v: Tensor, zv: Tensor, zt: Tensor, temperature: Tensor, label_smoothing: float = 0.01) -> Tensor:
    """Cross/self-similarity alignment: ITC with CSAL's soft targets (computed without gradient).

    Row i of the targets is item i's distribution over the batch; both directions use it as it is
    (the spec's ``1/2 [CE(s_i2t, Y) + CE(s_t2i, Y)]``); its transpose is no distribution (the
    columns of a row-wise softmax need not sum to 1)."""
    with torch.no_grad():
        target = csal_targets(zv.detach(), zt.detach())
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / target.shape[-1]
    logits = sim_t2v / temperature
    return 0.5 * (
        torch.sum(-target * F.log_softmax(logits, dim=-1), dim=-1).mean()
        + torch.sum(-target * F.log_softmax(logits.t(), dim=-1), dim=-1).mean()
    )
