"""Held-out retrieval metrics, the same for every family."""

from __future__ import annotations

from torch import Tensor


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


def summary(m: dict[str, float]) -> str:
    """What the log says about an evaluation by default."""
    return f"R@1 {m['r1']:.3f} order {m['order_acc']:.3f} attribute {m['attribute_acc']:.3f}"
