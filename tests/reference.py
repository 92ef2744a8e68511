"""Independent numpy float64 references for the finsta ops (DESIGN.md §4)."""

from __future__ import annotations

import numpy as np


def st_graph_attention_edges(x: np.ndarray, P: int, r: int, tau: float) -> np.ndarray:
    """A [B, L, L] in float64, and the raw similarity S, from x [B, L, D]."""
    x = x.astype(np.float64)
    norm = np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    xn = x / norm
    S = xn @ np.swapaxes(xn, 1, 2)
    L = x.shape[1]
    frame = np.arange(L) // P
    band = np.abs(frame[:, None] - frame[None, :]) <= r
    A = np.where((S >= tau) & band, S, 0.0)
    A[:, np.arange(L), np.arange(L)] = 1.0
    return A, S


def st_graph_attention(x, q, k, v, P: int, r: int, tau: float, scale: float | None = None) -> np.ndarray:
    q, k, v = (t.astype(np.float64) for t in (q, k, v))
    if scale is None:
        scale = q.shape[-1] ** -0.5
    A, _ = st_graph_attention_edges(x, P, r, tau)
    A = A[:, None]
    logits = scale * (q @ np.swapaxes(k, -1, -2)) * A
    logits = np.where(A == 0, -np.inf, logits)
    logits = logits - logits.max(axis=-1, keepdims=True)
    w = np.exp(logits)
    w /= w.sum(axis=-1, keepdims=True)
    return w @ v
