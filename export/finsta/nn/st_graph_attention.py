"""STGraphAttention: STGT's spatio-temporal graph attention (DESIGN.md §4).

Eager PyTorch follows the official STGT code: a dense [B, L, L] similarity graph, a band of
frames, multiplicative edge weights and a masked softmax (differentiable in q, k and v; the graph
itself carries no gradient). Under ``torch.onnx.export`` the op becomes a single node
``finsta::STGraphAttention`` that the finsta op library runs without the dense buffers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

OPS_DOMAIN = "finsta"


def _check(x: Tensor, q: Tensor, k: Tensor, v: Tensor, tokens_per_frame: int, frame_radius: int) -> None:
    if x.dim() != 3:
        raise ValueError(f"STGraphAttention: x must be [B, L, D], got shape {tuple(x.shape)}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"STGraphAttention: {name} must be [B, H, L, d], got shape {tuple(t.shape)}")
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"STGraphAttention: q, k, v shapes differ: {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[0] != x.shape[0] or q.shape[2] != x.shape[1]:
        raise ValueError(f"STGraphAttention: x {tuple(x.shape)} and q {tuple(q.shape)} disagree on B or L")
    if tokens_per_frame <= 0:
        raise ValueError(f"STGraphAttention: tokens_per_frame must be > 0, got {tokens_per_frame}")
    if frame_radius < 0:
        raise ValueError(f"STGraphAttention: frame_radius must be >= 0, got {frame_radius}")
    if not torch.compiler.is_compiling() and x.shape[1] % tokens_per_frame:
        raise ValueError(f"STGraphAttention: L={x.shape[1]} is not a multiple of tokens_per_frame={tokens_per_frame}")


def edge_weights(x: Tensor, tokens_per_frame: int, frame_radius: int, sim_threshold: float) -> Tensor:
    """A [B, L, L]: thresholded cosine similarity inside the frame band, self-loops set to 1."""
    xn = nn.functional.normalize(x.detach(), dim=-1, eps=1e-12)
    sim = xn @ xn.transpose(1, 2)
    idx = torch.arange(x.shape[1], device=x.device)
    frame = idx // tokens_per_frame
    band = (frame[:, None] - frame[None, :]).abs() <= frame_radius
    a = torch.where((sim >= sim_threshold) & band, sim, torch.zeros((), dtype=sim.dtype, device=sim.device))
    return torch.where(idx[:, None] == idx[None, :], torch.ones((), dtype=a.dtype, device=a.device), a)


def st_graph_attention(
    x: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    tokens_per_frame: int,
    sim_threshold: float,
    frame_radius: int = 1,
    scale: float | None = None,
) -> Tensor:
    """softmax(scale * q k^T * A, masked where A == 0) v, with A from :func:`edge_weights`.

    x: [B, L, D] features that define the graph; q, k, v: [B, H, L, d]; L = T * tokens_per_frame.
    Returns [B, H, L, d].
    """
    _check(x, q, k, v, tokens_per_frame, frame_radius)
    if scale is None:
        scale = q.shape[-1] ** -0.5
    if torch.onnx.is_in_onnx_export():
        return torch.onnx.ops.symbolic(
            f"{OPS_DOMAIN}::STGraphAttention",
            (x, q, k, v),
            attrs={
                "tokens_per_frame": int(tokens_per_frame),
                "frame_radius": int(frame_radius),
                "sim_threshold": float(sim_threshold),
                "scale": float(scale),
            },
            dtype=q.dtype,
            shape=q.shape,
            version=1,
        )
    a = edge_weights(x, tokens_per_frame, frame_radius, sim_threshold)[:, None]
    logits = (q @ k.transpose(-1, -2)) * scale * a
    logits = logits.masked_fill(a == 0, float("-inf"))
    return torch.softmax(logits, dim=-1) @ v


class STGraphAttention(nn.Module):
    """Module form of :func:`st_graph_attention` holding the graph attributes."""

    def __init__(self, tokens_per_frame: int, sim_threshold: float, frame_radius: int = 1, scale: float | None = None):
        super().__init__()
        self.tokens_per_frame = tokens_per_frame
        self.sim_threshold = sim_threshold
        self.frame_radius = frame_radius
        self.scale = scale

    def forward(self, x: Tensor, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return st_graph_attention(x, q, k, v, self.tokens_per_frame, self.sim_threshold, self.frame_radius, self.scale)

    def extra_repr(self) -> str:
        return (f"tokens_per_frame={self.tokens_per_frame}, sim_threshold={self.sim_threshold}, "
                f"frame_radius={self.frame_radius}, scale={self.scale}")
