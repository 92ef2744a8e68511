"""Held-out retrieval metrics, the same for every family.

:func:`split_metrics` is what a family calls on a held-out FeatureSet: each part of it is scored on
its own (a synthetic part as :func:`retrieval_metrics`, a captions part video-level as
:func:`caption_metrics`); a set of several parts gives each part's metrics prefixed with its name
and, unprefixed, the first part's."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .features import FeatureSet


def retrieval_metrics(sim: Tensor, own: Tensor) -> dict[str, float]:
    """``sim`` [N texts, N videos] scores the caption of video j against video i (true pairs on the
    diagonal); ``own`` [N, 3] scores each video against its caption, order-swapped and
    attribute-swapped captions. Text->video recall R@1/5/10, the median rank (1 = first), chance
    R@1, and how often the true caption beats each hard negative."""
    n = sim.shape[0]
    rank = (sim > sim.diag()[:, None]).sum(dim=1)  # 0 = the true video ranks first
    return {
        "n": float(n),
        "chance_r1": 1.0 / n,
        "r1": float((rank < 1).float().mean()),
        "r5": float((rank < 5).float().mean()),
        "r10": float((rank < 10).float().mean()),
        "median_rank": float(rank.float().median() + 1),
        "order_acc": float((own[:, 0] > own[:, 1]).float().mean()),
        "attribute_acc": float((own[:, 0] > own[:, 2]).float().mean()),
    }


def _ranks(scores: Tensor, true: Tensor) -> Tensor:
    """0-based rank of column ``true[i]`` in row i (ties count for the true one)."""
    return (scores > scores.gather(1, true[:, None])).sum(dim=1)


def caption_metrics(sim: Tensor, video: np.ndarray, segment: np.ndarray) -> dict[str, float]:
    """Text->video recall of caption rows: ``sim`` [N texts, N rows] scores caption i against the
    segment of row j; ``video``/``segment`` [N] are each row's ids. Video-level (a hit is any segment
    of the right video, a video scoring its best segment): r1, r5, r10, median_rank, chance_r1;
    segment-level: seg_r1, seg_r5, seg_chance_r1."""
    _, first, seg_of_row = np.unique(segment, return_index=True, return_inverse=True)
    seg_sim = sim[:, torch.from_numpy(first)]  # [N, G]: one column per segment
    vids, vid_of_seg = np.unique(video[first], return_inverse=True)
    vid_sim = torch.full((sim.shape[0], len(vids)), float("-inf"), dtype=sim.dtype)
    vid_sim = vid_sim.scatter_reduce(
        1, torch.from_numpy(vid_of_seg)[None].expand(sim.shape[0], -1), seg_sim, "amax", include_self=True
    )
    vrank = _ranks(vid_sim, torch.from_numpy(np.searchsorted(vids, video)))
    srank = _ranks(seg_sim, torch.from_numpy(seg_of_row.reshape(-1)))
    return {
        "n": float(sim.shape[0]),
        "videos": float(len(vids)),
        "segments": float(len(first)),
        "chance_r1": 1.0 / len(vids),
        "r1": float((vrank < 1).float().mean()),
        "r5": float((vrank < 5).float().mean()),
        "r10": float((vrank < 10).float().mean()),
        "median_rank": float(vrank.float().median() + 1),
        "seg_chance_r1": 1.0 / len(first),
        "seg_r1": float((srank < 1).float().mean()),
        "seg_r5": float((srank < 5).float().mean()),
    }


def split_metrics(fs: FeatureSet, sim: Tensor, own: Tensor) -> dict[str, float]:
    """Metrics of a held-out set from ``sim`` [N texts, N rows] (caption i against row j's video) and
    ``own`` [N, 3] (each row's video against its caption and its two hard negatives), part by part."""
    out: dict[str, float] = {}
    for k, p in enumerate(fs.parts):
        block = slice(p.start, p.stop)
        if p.kind == "captions":
            m = caption_metrics(sim[block, block], fs.video[block], fs.segment[block])
        else:
            m = retrieval_metrics(sim[block, block], own[block])
        if len(fs.parts) == 1:
            return m
        out.update({f"{p.name}_{key}": v for key, v in m.items()})
        if k == 0:
            out.update(m)
    return out


def summary(m: dict[str, float]) -> str:
    """What the log says about an evaluation by default."""
    text = f"R@1 {m['r1']:.3f} R@5 {m['r5']:.3f}"
    if "order_acc" in m:
        text += f" order {m['order_acc']:.3f} attribute {m['attribute_acc']:.3f}"
    return text
