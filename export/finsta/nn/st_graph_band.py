"""STGraphAttention's band-sparse eager form: each query frame against its key frames only (docs/ops.md).

The edge graph of STGraphAttention is zero outside the band |t_i - t_j| <= r, so a query frame t needs only
the w = min(2r + 1, T) key frames of a window that holds its band. The window starts at
clamp(t - r, 0, T - w): interior frames see exactly t - r .. t + r, edge frames a window shifted into the
clip whose extra frames are masked like any off-band key. Logits, softmax and the similarity graph are
[B, H, T, P, w P] instead of [B, H, L, L]: memory O(B H L (2r + 1) P) where the dense form is O(B H L^2).
When the band covers the clip (w = T) the window is every frame and no key is gathered (the dense
products, reshaped). The attention has its own backward (:class:`_BandAttention`), lighter and faster than
autograd through the blockwise form.
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


def _scores(u: Tensor, w: Tensor, keys: Tensor | None, frames: int) -> Tensor:
    """u w^T per query frame, u [B, H, L, d] on the query side, w on the key side: [B, H, T, P, w P]."""
    B, H, L, d = u.shape
    if keys is None:  # the window is the clip: the dense product, viewed per frame
        return (u @ w.transpose(-1, -2)).view(B, H, frames, L // frames, L)
    return u.view(B, H, frames, L // frames, d) @ _window(w, keys, 2).transpose(-1, -2)


def _mix(p: Tensor, w: Tensor, keys: Tensor | None) -> Tensor:
    """p w: weights p [B, H, T, P, w P] of the key-side w [B, H, L, d] -> the query side [B, H, L, d]."""
    B, H, L, d = w.shape
    if keys is None:
        return p.view(B, H, L, L) @ w
    return (p @ _window(w, keys, 2)).view(B, H, L, d)


def _mix_t(p: Tensor, u: Tensor, keys: Tensor | None) -> Tensor:
    """p^T u: the query-side u [B, H, L, d] -> the key side [B, H, L, d] (window slots of one token add up)."""
    B, H, L, d = u.shape
    if keys is None:
        return p.view(B, H, L, L).transpose(-1, -2) @ u
    slots = p.transpose(-1, -2) @ u.view(B, H, p.shape[2], p.shape[3], d)  # [B, H, T, w P, d]
    return torch.zeros_like(u).index_add_(2, keys.flatten(), slots.flatten(2, 3))


class _BandAttention(torch.autograd.Function):
    """softmax(scale q k^T A, masked where A == 0) v over the window slots, with its own backward: it saves the
    softmax p and A (q, k, v and out exist anyway) and gathers the key and value windows again, and its softmax
    backward uses sum_j p_ij dp_ij = <g_i, out_i>, so one [.., P, w P] buffer besides p is alive at a time."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, a: Tensor, keys: Tensor | None, scale: float) -> Tensor:
        a = a[:, None]  # [B, 1, T, P, w P]
        p = _scores(q, k, keys, a.shape[2]).mul_(a * scale).masked_fill_(a == 0, float("-inf"))
        # softmax in place; every row has its self-loop, so its max is finite unless q, k or A is not
        p = p.sub_(p.amax(dim=-1, keepdim=True)).exp_()
        p = p.div_(p.sum(dim=-1, keepdim=True))
        out = _mix(p, v, keys)
        ctx.save_for_backward(q, k, v, a, p, out, keys)
        ctx.scale = scale
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        q, k, v, a, p, out, keys = ctx.saved_tensors
        dv = _mix_t(p, g, keys)
        # d logits = p (dp - sum_j p_ij dp_ij) with dp = g v^T and sum_j p_ij dp_ij = <g_i, out_i>; then * scale A
        delta = (g * out).sum(-1).view(*p.shape[:-1], 1)
        ds = _scores(g, v, keys, p.shape[2]).sub_(delta).mul_(p).mul_(a * ctx.scale)
        return _mix(ds, k, keys), _mix_t(ds, q, keys), dv, None, None, None


def band_attention(q: Tensor, k: Tensor, v: Tensor, a: Tensor, keys: Tensor | None, scale: float) -> Tensor:
    """softmax(scale * q k^T * A, masked where A == 0) v over the window slots: q, k, v [B, H, L, d],
    A [B, T, P, w P] and keys from :func:`band_edge_weights`. Returns [B, H, L, d]."""
    return _BandAttention.apply(q, k, v, a, keys, scale)
