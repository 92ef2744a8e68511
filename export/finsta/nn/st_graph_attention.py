"""STGraphAttention: STGT's spatio-temporal graph attention (docs/ops.md).

:func:`st_graph_attention_dense` follows the official STGT code: a dense [B, L, L] similarity graph, a band
of frames, multiplicative edge weights and a masked softmax (differentiable in q, k and v; the graph itself
carries no gradient). It is the reference; eager calls (training) run the same numbers band-sparse
(``st_graph_band``: each query frame against its 2r + 1 key frames, never [B, H, L, L]). Under
``torch.onnx.export`` the op becomes a single node ``finsta::STGraphAttention`` that the finsta op library
runs without the dense buffers; its portable function (:data:`DECLARATION`) is the dense decomposition in
standard ONNX ops.
"""

from __future__ import annotations

import math

import onnxscript
import torch
from onnxscript import FLOAT
from onnxscript import opset18 as op
from torch import Tensor, nn

from .declaration import FINSTA_OPSET, OpDeclaration, finite_positive, non_negative, not_nan, positive
from .st_graph_band import band_attention, band_edge_weights

OP = "STGraphAttention"
NEG_INF = -math.inf
TINY = 1.1754943508222875e-38  # float32's smallest normal: keeps x / m finite for an all-zero row


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
    # xn = x / max(|x|, eps) as (x / m) / max(|x / m|, eps / m), m = max_c |x_c| (see normalize_rows)
    m = op.Max(op.ReduceMax(op.Abs(x), [-1], keepdims=1), TINY)
    xs = op.Div(x, m)
    xn = op.Div(xs, op.Max(op.Sqrt(op.ReduceSumSquare(xs, [-1], keepdims=1)), op.Div(1e-12, m)))
    S = op.MatMul(xn, op.Transpose(xn, perm=[0, 2, 1]))
    # band(i, j) = |i // P - j // P| <= r, self-loops on the diagonal
    idx = op.Range(0, op.Squeeze(op.Shape(x, start=1, end=2)), 1)
    frame = op.Div(idx, P)
    band = op.LessOrEqual(op.Abs(op.Sub(op.Unsqueeze(frame, [-1]), frame)), r)
    eye = op.Equal(op.Unsqueeze(idx, [-1]), idx)
    # A = S where band and not S < tau (S >= tau or NaN: an unknown edge is kept), else 0;  A(i, i) = 1
    A0 = op.Where(op.Or(op.Less(S, tau), op.Not(band)), 0.0, S)
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


def normalize_rows(x: Tensor) -> Tensor:
    """x / max(|x|, 1e-12) over the last axis, as the kernels compute it (docs/ops.md): (x / m) / max(|x / m|,
    1e-12 / m) with m = max_c |x_c|, so the squared sum neither overflows (|x| above ~1e19 in float32) nor
    underflows. A row holding NaN or +-inf comes out all NaN (m is NaN or inf, x / m NaN somewhere)."""
    m = x.abs().amax(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)  # NaN stays NaN
    xs = x / m
    return xs / torch.maximum(torch.linalg.vector_norm(xs, dim=-1, keepdim=True), 1e-12 / m)


def edge_weights(x: Tensor, tokens_per_frame: int, frame_radius: int, sim_threshold: float) -> Tensor:
    """A [B, L, L]: thresholded cosine similarity inside the frame band, self-loops set to 1. A NaN similarity
    (a token with NaN or inf in x) is kept, as in the kernels: its NaN reaches every output that uses the edge."""
    xn = normalize_rows(x.detach())
    sim = xn @ xn.transpose(1, 2)
    idx = torch.arange(x.shape[1], device=x.device)
    frame = idx // tokens_per_frame
    off_band = (frame[:, None] - frame[None, :]).abs() > frame_radius
    a = torch.where((sim < sim_threshold) | off_band, torch.zeros((), dtype=sim.dtype, device=sim.device), sim)
    return torch.where(idx[:, None] == idx[None, :], torch.ones((), dtype=a.dtype, device=a.device), a)


def _prepare(
    x: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    tokens_per_frame: int,
    sim_threshold: float,
    frame_radius: int,
    scale: float | None,
) -> tuple[dict, float]:
    """Checks the attributes and inputs; returns the node's attributes and the scale (d^-1/2, 1 when d = 0)."""
    attrs = dict(tokens_per_frame=tokens_per_frame, sim_threshold=sim_threshold, frame_radius=frame_radius)
    DECLARATION.check_attributes(attrs if scale is None else {**attrs, "scale": scale})
    _check(x, q, k, v, tokens_per_frame)
    if scale is None:
        scale = q.shape[-1] ** -0.5 if q.shape[-1] else 1.0
    return attrs, scale


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
    Returns [B, H, L, d]. Eager: the band-sparse form (memory O(B H L (2r + 1) P)), equal to
    :func:`st_graph_attention_dense`; under ``torch.onnx.export``: one ``finsta::STGraphAttention`` node.
    """
    attrs, scale = _prepare(x, q, k, v, tokens_per_frame, sim_threshold, frame_radius, scale)
    if torch.onnx.is_in_onnx_export():
        return DECLARATION.export_node((x, q, k, v), {**attrs, "scale": scale}, [q.dtype], [q.shape])
    if x.shape[1] == 0:  # no token, no frame to window: the dense form is as small
        return st_graph_attention_dense(x, q, k, v, tokens_per_frame, sim_threshold, frame_radius, scale)
    a, keys = band_edge_weights(normalize_rows(x.detach()), tokens_per_frame, frame_radius, sim_threshold)
    return band_attention(q, k, v, a, keys, scale)


def st_graph_attention_dense(
    x: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    tokens_per_frame: int,
    sim_threshold: float,
    frame_radius: int = 1,
    scale: float | None = None,
) -> Tensor:
    """The dense reference of :func:`st_graph_attention` (the official code's [B, H, L, L] form), eager only."""
    _, scale = _prepare(x, q, k, v, tokens_per_frame, sim_threshold, frame_radius, scale)
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
