"""STGraphAttention's band-sparse eager form: each query frame against its key frames only (docs/ops.md).

The edge graph of STGraphAttention is zero outside the band |t_i - t_j| <= r, so a query frame t needs only
the w = min(2r + 1, T) key frames of a window that holds its band. The window starts at
clamp(t - r, 0, T - w): interior frames see exactly t - r .. t + r, edge frames a window shifted into the
clip whose extra frames are masked like any off-band key. Logits, softmax and the similarity graph are
[B, H, T, P, w P] instead of [B, H, L, L]: memory O(B H L (2r + 1) P) where the dense form is O(B H L^2).
When the band covers the clip (w = T) the window is every frame and no key is gathered (the dense
products, reshaped). Gradients flow through this blockwise form by autograd; the in-place steps keep one
[.., P, w P] buffer alive per step besides the softmax that autograd saves.
"""

from __future__ import annotations

import torch
from torch import Tensor


def band_window(frames: int, tokens_per_frame: int, frame_radius: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(keys [T, w P] int64: the token index of each window slot, off_band [T, 1, w P] bool: a slot outside
    |t - t_key| <= r). r is clamped to T - 1 first (docs/ops.md: any r >= T - 1 is the whole clip)."""
    r = min(frame_radius, frames - 1)
    w = min(2 * r + 1, frames)
    t = torch.arange(frames, device=device)
    key_frame = (t - r).clamp(0, frames - w)[:, None] + torch.arange(w, device=device)  # [T, w]
    p = torch.arange(tokens_per_frame, device=device)
    keys = (key_frame[:, :, None] * tokens_per_frame + p).flatten(1)  # [T, w P]
    off_band = ((key_frame - t[:, None]).abs() > r).repeat_interleave(tokens_per_frame, dim=1)
    return keys, off_band[:, None]


def _window(t: Tensor, keys: Tensor | None, dim: int) -> Tensor:
    """t with its token axis ``dim`` replaced by [T, w P] window slots (t itself, unsqueezed, when the window
    is every token: no copy)."""
    if keys is None:
        return t.unsqueeze(dim)
    shape = (*t.shape[:dim], *keys.shape, *t.shape[dim + 1 :])
    return t.index_select(dim, keys.flatten()).view(shape)


def band_edge_weights(
    xn: Tensor, tokens_per_frame: int, frame_radius: int, sim_threshold: float
) -> tuple[Tensor, Tensor | None]:
    """A [B, T, P, w P] (thresholded cosine similarity of the window slots, 0 off the band, self-loops 1) from
    the normalised rows xn [B, L, D], and the window's token indices [T, w P] (None when the window is every
    token, w P = L). A NaN similarity is kept, as in the dense form."""
    B, L, D = xn.shape
    T, P = L // tokens_per_frame, tokens_per_frame
    keys, off_band = band_window(T, P, frame_radius, xn.device)
    full = keys.shape[1] == L
    xq = xn.view(B, T, P, D)
    if full:
        keys_or_none = None
        sim = (xn @ xn.transpose(1, 2)).view(B, T, P, L)
    else:
        keys_or_none = keys
        sim = xq @ _window(xn, keys, 1).transpose(-1, -2)
    zero = torch.zeros((), dtype=sim.dtype, device=sim.device)
    a = torch.where((sim < sim_threshold) | off_band, zero, sim)
    query = torch.arange(L, device=xn.device).view(T, P, 1)
    return a.masked_fill_(query == keys[:, None], 1.0), keys_or_none


def band_attention(q: Tensor, k: Tensor, v: Tensor, a: Tensor, keys: Tensor | None, scale: float) -> Tensor:
    """softmax(scale * q k^T * A, masked where A == 0) v over the window slots: q, k, v [B, H, L, d],
    A [B, T, P, w P] and keys from :func:`band_edge_weights`. Returns [B, H, L, d]."""
    B, H, L, d = q.shape
    T, P = a.shape[1], a.shape[2]
    a = a[:, None]  # [B, 1, T, P, w P]
    if keys is None:  # the window is the clip: the dense products, viewed per frame
        logits = (q @ k.transpose(-1, -2)).view(B, H, T, P, L)
    else:
        logits = q.view(B, H, T, P, d) @ _window(k, keys, 2).transpose(-1, -2)
    # in place: matmul's backward needs its inputs, not its output, and mul_'s needs only scale * A
    logits = logits.mul_(a * scale).masked_fill_(a == 0, float("-inf"))
    p = torch.softmax(logits, dim=-1)
    if keys is None:
        return p.view(B, H, L, L) @ v
    return (p @ _window(v, keys, 2)).view(B, H, L, d)
