"""Independent numpy float64 references for the finsta ops (docs/ops.md)."""

from __future__ import annotations

import numpy as np


def st_graph_attention_edges(x: np.ndarray, P: int, r: int, tau: float) -> np.ndarray:
    """A [B, L, L] in float64, and the raw similarity S, from x [B, L, D]. A token with NaN or +-inf in x has
    NaN similarities, and a NaN edge is kept (S >= tau or NaN): its NaN reaches every output using it."""
    x = x.astype(np.float64)  # float32's largest |x|, squared and summed, stays far inside float64's range
    norm = np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    xn = np.where(np.isfinite(x).all(axis=-1, keepdims=True), x / np.where(np.isfinite(norm), norm, 1.0), np.nan)
    S = xn @ np.swapaxes(xn, 1, 2)
    L = x.shape[1]
    frame = np.arange(L) // P
    band = np.abs(frame[:, None] - frame[None, :]) <= r
    A = np.where(((S >= tau) | np.isnan(S)) & band, S, 0.0)
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


def edge_graph_attention(q, k, v, e, adj, clamp: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """(h, e_out) in float64: s_ij = (q_i * k_j) d^-1/2 * e_ij; w_ij = adj_ij exp(clip(sum_d s_ij));
    h_i = sum_j w_ij v_j / (sum_j w_ij + 1e-6)."""
    q, k, v, e = (t.astype(np.float64) for t in (q, k, v, e))
    d = q.shape[-1]
    s = q[:, :, :, None, :] * k[:, :, None, :, :] * (d**-0.5 if d else 1.0) * e  # [B, H, N, N, d]
    w = np.where(adj.astype(bool)[:, None], np.exp(np.clip(s.sum(axis=-1), -clamp, clamp)), 0.0)
    h = (w @ v) / (w.sum(axis=-1, keepdims=True) + 1e-6)
    return h, s


def gaussian_diff_graph_attention(q, k, v, pos, adj, sigma) -> np.ndarray:
    """[B, H, N, 2d] in float64: alpha = softmax over adj of q.k d^-1/2 + log g, with
    log g_ij = -sum_c (pos_ic - pos_jc)^2 / (2 sigma_hc^2) computed directly; [sum alpha v_j,
    sum alpha (v_j - v_i)]."""
    q, k, v, pos, sigma = (t.astype(np.float64) for t in (q, k, v, pos, sigma))
    d = q.shape[-1]
    diff = pos[:, :, None, :] - pos[:, None, :, :]  # [B, N, N, 3]
    log_g = -0.5 * ((diff[:, None] / sigma[None, :, None, None, :]) ** 2).sum(axis=-1)  # [B, H, N, N]
    logits = (q @ np.swapaxes(k, -1, -2)) * (d**-0.5 if d else 1.0) + log_g
    logits = np.where(adj.astype(bool)[:, None], logits, -np.inf)
    logits = logits - logits.max(axis=-1, keepdims=True)
    alpha = np.exp(logits)
    alpha /= alpha.sum(axis=-1, keepdims=True)
    ctx = alpha @ v
    change = ctx - alpha.sum(axis=-1, keepdims=True) * v  # sum_j alpha_ij (v_j - v_i), no [N, N, d] buffer
    return np.concatenate([ctx, change], axis=-1)
