"""STGraphAttention: STGT's spatio-temporal graph attention (docs/ops.md).

Eager PyTorch follows the official STGT code: a dense [B, L, L] similarity graph, a band of
frames, multiplicative edge weights and a masked softmax (differentiable in q, k and v; the graph
itself carries no gradient). Under ``torch.onnx.export`` the op becomes a single node
``finsta::STGraphAttention`` that the finsta op library runs without the dense buffers; its portable
function (:data:`DECLARATION`) is the same dense decomposition in standard ONNX ops.
"""

from __future__ import annotations

import math

import onnxscript
import torch
from onnxscript import FLOAT
from onnxscript import opset18 as op
from torch import Tensor, nn

from .declaration import FINSTA_OPSET, OpDeclaration, finite_positive, non_negative, not_nan, positive

OP = "STGraphAttention"
NEG_INF = -math.inf


@onnxscript.script(FINSTA_OPSET, default_opset=op)
def st_graph_attention_portable(
    x, q, k, v, tokens_per_frame: int, sim_threshold: float, frame_radius: int = 1, scale: float = 0.0
):
    """The dense decomposition: [B, L, L] similarity, band and mask, softmax. scale 0 (the default) means
    d^-1/2; the custom kernel rejects scale <= 0 given explicitly, and so does :data:`DECLARATION`."""
    P = op.Constant(value_int=tokens_per_frame)
    r = op.Constant(value_int=frame_radius)
    tau = op.Constant(value_float=sim_threshold)
    scale_attr = op.Constant(value_float=scale)
    # xn = x / max(|x|, eps);  S = xn xn^T
    norm = op.Sqrt(op.ReduceSumSquare(x, [-1], keepdims=1))
    xn = op.Div(x, op.Max(norm, 1e-12))
    S = op.MatMul(xn, op.Transpose(xn, perm=[0, 2, 1]))
    # band(i, j) = |i // P - j // P| <= r, self-loops on the diagonal
    idx = op.Range(0, op.Squeeze(op.Shape(x, start=1, end=2)), 1)
    frame = op.Div(idx, P)
    band = op.LessOrEqual(op.Abs(op.Sub(op.Unsqueeze(frame, [-1]), frame)), r)
    eye = op.Equal(op.Unsqueeze(idx, [-1]), idx)
    # A = where(S >= tau, S, 0) * band;  A(i, i) = 1
    A0 = op.Where(op.And(op.GreaterOrEqual(S, tau), band), S, 0.0)
    A = op.Unsqueeze(op.Where(eye, 1.0, A0), [1])
    # scale: the attribute if > 0, else d^-1/2
    auto_scale = op.Pow(op.Cast(op.Shape(q, start=3, end=4), to=FLOAT.dtype), -0.5)
    scale_v = op.Where(op.Greater(scale_attr, 0.0), scale_attr, auto_scale)
    # logits = scale * q k^T * A;  logits[A == 0] = -inf;  out = softmax(logits) v
    logits = op.Mul(op.Mul(op.MatMul(q, op.Transpose(k, perm=[0, 1, 3, 2])), scale_v), A)
    logits = op.Where(op.Equal(A, 0.0), NEG_INF, logits)
    out = op.MatMul(op.Softmax(logits, axis=-1), v)
    return out


DECLARATION = OpDeclaration(
    OP,
    st_graph_attention_portable,
    checks={
        "tokens_per_frame": positive,
        "frame_radius": non_negative,
        "sim_threshold": not_nan,
        "scale": finite_positive,
    },
)


def _check(x: Tensor, q: Tensor, k: Tensor, v: Tensor, tokens_per_frame: int) -> None:
    if x.dim() != 3:
        raise ValueError(f"STGraphAttention: x must be [B, L, D], got shape {tuple(x.shape)}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"STGraphAttention: {name} must be [B, H, L, d], got shape {tuple(t.shape)}")
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(
            f"STGraphAttention: q, k, v shapes differ: {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[0] != x.shape[0] or q.shape[2] != x.shape[1]:
        raise ValueError(f"STGraphAttention: x {tuple(x.shape)} and q {tuple(q.shape)} disagree on B or L")
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
    attrs = dict(tokens_per_frame=tokens_per_frame, sim_threshold=sim_threshold, frame_radius=frame_radius)
    DECLARATION.check_attributes(attrs if scale is None else {**attrs, "scale": scale})
    _check(x, q, k, v, tokens_per_frame)
    if scale is None:
        scale = q.shape[-1] ** -0.5
    if torch.onnx.is_in_onnx_export():
        return DECLARATION.export_node((x, q, k, v), {**attrs, "scale": scale}, [q.dtype], [q.shape])
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
        return (
            f"tokens_per_frame={self.tokens_per_frame}, sim_threshold={self.sim_threshold}, "
            f"frame_radius={self.frame_radius}, scale={self.scale}"
        )
