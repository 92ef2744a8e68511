"""STGT's contrastive losses against float64 references written from the spec (docs/families.md,
STGT losses): ITC = 1/2 [CE(s_i2t / tau, y) + CE(s_t2i / tau, y)] with label smoothing 0.1, and
CSAL = the same with the soft targets Y = softmax(5 Pi), Pi = relu(v v^T) * relu(t t^T) floored
at 0.05 (-> -100), label smoothing 0.01, and the same Y in both directions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import SEED, case_rng, replay_hint

from finsta.losses import csal_loss, csal_targets, itc_loss
from finsta.models.stgt import similarity


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def soft_ce(logits: np.ndarray, target: np.ndarray) -> float:
    """mean over rows of -sum_j target_ij log softmax(logits_i)_j."""
    return float((-(target * log_softmax(logits)).sum(-1)).mean())


def smooth(target: np.ndarray, eps: float) -> np.ndarray:
    return target * (1 - eps) + eps / target.shape[-1]


def itc_ref(s_t2v: np.ndarray, tau: float, eps: float = 0.1) -> float:
    y = smooth(np.eye(len(s_t2v)), eps)
    return 0.5 * (soft_ce(s_t2v.T / tau, y) + soft_ce(s_t2v / tau, y))


def csal_targets_ref(zv: np.ndarray, zt: np.ndarray) -> np.ndarray:
    v = zv.mean(axis=1)
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    pi = np.maximum(v @ v.T, 0) * np.maximum(zt @ zt.T, 0)
    pi = np.where(pi < 0.05, -100.0, pi)
    e = np.exp(5 * pi - (5 * pi).max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def csal_ref(s_t2v: np.ndarray, zv: np.ndarray, zt: np.ndarray, tau: float, eps: float = 0.01) -> float:
    y = smooth(csal_targets_ref(zv, zt), eps)  # row i: item i's soft targets, the same for i2t and t2i
    return 0.5 * (soft_ce(s_t2v.T / tau, y) + soft_ce(s_t2v / tau, y))


def embeddings(
    rng: np.random.Generator, B: int, Q: int, E: int, groups: int, opposed: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised zv [B, Q, E], zt [B, E] in ``groups`` clusters: items of one cluster are alike in
    video and text, so that CSAL's cross pairs (off-diagonal credit) occur. ``opposed``: cluster
    k + 1 is the negation of cluster k in both, so that both similarities of such a pair are
    negative while their product is not (the ReLUs must zero them)."""
    centre_v, centre_t = rng.standard_normal((groups, E)), rng.standard_normal((groups, E))
    if opposed:
        centre_v[1::2], centre_t[1::2] = -centre_v[0::2][: groups // 2], -centre_t[0::2][: groups // 2]
    g = rng.integers(0, groups, size=B)
    zv = centre_v[g][:, None] + 0.6 * rng.standard_normal((B, Q, E))
    zt = centre_t[g] + 0.6 * rng.standard_normal((B, E))
    return zv / np.linalg.norm(zv, axis=-1, keepdims=True), zt / np.linalg.norm(zt, axis=-1, keepdims=True)


CASES = [
    dict(B=6, Q=3, E=8, groups=2, tau=0.07),
    dict(B=9, Q=1, E=16, groups=3, tau=0.2),
    dict(B=2, Q=4, E=4, groups=1, tau=0.5),
    dict(B=12, Q=2, E=32, groups=12, tau=0.05),
    dict(B=8, Q=2, E=8, groups=2, tau=0.1, opposed=True),
]


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"B{c['B']}-g{c['groups']}" + ("-opposed" if c.get("opposed") else "")
)
def test_itc_and_csal_equal_the_float64_reference(case):
    with replay_hint(repr(case)):
        rng = case_rng(SEED, {"test": "losses", **case})
        zv, zt = embeddings(rng, case["B"], case["Q"], case["E"], case["groups"], case.get("opposed", False))
        sim = similarity(torch.from_numpy(zv), torch.from_numpy(zt))  # [texts, videos], max over queries
        s = sim.numpy()
        np.testing.assert_allclose(s, np.einsum("vqe,te->tvq", zv, zt).max(-1), rtol=1e-12)
        tau = torch.tensor(case["tau"], dtype=torch.float64)
        assert float(itc_loss(sim, tau)) == pytest.approx(itc_ref(s, case["tau"]), rel=1e-10)
        got = float(csal_loss(sim, torch.from_numpy(zv), torch.from_numpy(zt), tau))
        assert got == pytest.approx(csal_ref(s, zv, zt, case["tau"]), rel=1e-10)
        y = csal_targets(torch.from_numpy(zv), torch.from_numpy(zt)).numpy()
        np.testing.assert_allclose(y, csal_targets_ref(zv, zt), rtol=1e-10, atol=1e-300)
        np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-12)


def test_the_cases_have_cross_pairs():
    """The clustered cases give CSAL's targets real off-diagonal mass (otherwise CSAL = ITC with
    one-hot targets and the direction of the targets would not matter)."""
    rng = case_rng(SEED, {"test": "losses", **CASES[0]})
    zv, zt = embeddings(rng, 6, 3, 8, 2)
    y = csal_targets_ref(zv, zt)
    assert (y - np.diag(np.diag(y))).max() > 0.05
    assert np.abs(y.sum(0) - 1).max() > 1e-3  # columns do not sum to 1: target.T is not a distribution


def test_csal_gradient_flows_only_through_the_similarities():
    rng = case_rng(SEED, {"test": "csal-grad"})
    zv, zt = (torch.from_numpy(a).requires_grad_() for a in embeddings(rng, 5, 2, 8, 2))
    sim = similarity(zv, zt).detach().requires_grad_()
    csal_loss(sim, zv, zt, torch.tensor(0.1, dtype=torch.float64)).backward()
    assert zv.grad is None and zt.grad is None and sim.grad is not None and sim.grad.abs().sum() > 0
