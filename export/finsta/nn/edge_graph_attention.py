"""EdgeGraphAttention: graph Transformer attention with edge features (docs/ops.md).

Used by Finsta's Graph Transformer over the textual scene graph and, per frame, by the recurrent
graph Transformer over the video scene graph. Eager PyTorch computes the dense definition and is
differentiable in q, k, v and e; under ``torch.onnx.export`` the op becomes a single node
``finsta::EdgeGraphAttention`` with outputs (h, e_out); its portable function (:data:`DECLARATION`)
is the same dense decomposition in standard ONNX ops.
"""

from __future__ import annotations

import math

import onnxscript
import torch
from onnxscript import FLOAT
from onnxscript import opset18 as op
from torch import Tensor, nn

from .declaration import FINSTA_OPSET, OpDeclaration, finite_positive

OP = "EdgeGraphAttention"
NEG_INF = -math.inf


@onnxscript.script(FINSTA_OPSET, default_opset=op)
def edge_graph_attention_portable(q, k, v, e, adj, clamp: float = 5.0):
    """The dense decomposition: [B, H, N, N, d] scores, clipped exp relative to the row's largest, weighted mean."""
    clamp_hi = op.Constant(value_float=clamp)
    clamp_lo = op.Neg(clamp_hi)
    scale = op.Pow(op.Cast(op.Shape(q, start=3, end=4), to=FLOAT.dtype), -0.5)
    # s_ij = (q_i * k_j) d^-1/2 * e_ij;  e_out = s
    e_out = op.Mul(op.Mul(op.Mul(op.Unsqueeze(q, [3]), op.Unsqueeze(k, [2])), scale), e)
    # c_ij = clip(sum_d s_ij, -clamp, clamp); m_i = max over adj of c_ij (>= -clamp: a row without edges too)
    clipped = op.Clip(op.ReduceSum(e_out, [-1], keepdims=0), clamp_lo, clamp_hi)
    adj_h = op.Unsqueeze(adj, [1])
    m = op.Max(op.ReduceMax(op.Where(adj_h, clipped, NEG_INF), [-1], keepdims=1), clamp_lo)
    # h_i = sum_j w_ij v_j / (sum_j w_ij + 1e-6) with w_ij = adj_ij exp(c_ij), all scaled by exp(-m_i):
    # exp(c - m) <= 1 never overflows float32, even for clamp >= 88
    w = op.Where(adj_h, op.Exp(op.Sub(clipped, m)), 0.0)
    h = op.Div(op.MatMul(w, v), op.Add(op.ReduceSum(w, [-1], keepdims=1), op.Mul(op.Exp(op.Neg(m)), 1e-6)))
    return h, e_out


DECLARATION = OpDeclaration(OP, edge_graph_attention_portable, checks={"clamp": finite_positive})


def _check_qkv_adj(op: str, q: Tensor, k: Tensor, v: Tensor, adj: Tensor) -> None:
    """Checks q, k, v [B, H, N, d] (one shape) and adj [B, N, N] bool."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{op}: {name} must be [B, H, N, d], got shape {tuple(t.shape)}")
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"{op}: q, k, v shapes differ: {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    B, _, N, _ = q.shape
    if adj.dtype != torch.bool:
        raise ValueError(f"{op}: adj must be bool, got {adj.dtype}")
    if adj.dim() != 3 or tuple(adj.shape) != (B, N, N):
        raise ValueError(f"{op}: adj must be [B, N, N] = {(B, N, N)}, got shape {tuple(adj.shape)}")


def _check(q: Tensor, k: Tensor, v: Tensor, e: Tensor, adj: Tensor, clamp: float) -> None:
    _check_qkv_adj(OP, q, k, v, adj)
    B, H, N, d = q.shape
    if e.dim() != 5 or tuple(e.shape) != (B, H, N, N, d):
        raise ValueError(f"{OP}: e must be [B, H, N, N, d] = {(B, H, N, N, d)}, got shape {tuple(e.shape)}")
    DECLARATION.check_attributes({"clamp": clamp})


def check_self_loops(adj: Tensor, op: str) -> None:
    """Raises ValueError naming the first (batch, node) whose self-loop is missing (eager only:
    the check reads the data, so it is skipped while tracing or compiling)."""
    if torch.compiler.is_compiling() or adj.numel() == 0:
        return
    missing = ~adj.diagonal(dim1=-2, dim2=-1)
    if bool(missing.any()):
        b, n = (int(i) for i in missing.nonzero()[0])
        raise ValueError(
            f"{op}: adj lacks the self-loop of node {n} in batch {b}; every node, padded ones "
            "included, needs adj[b, n, n] = True"
        )


def edge_graph_attention(
    q: Tensor, k: Tensor, v: Tensor, e: Tensor, adj: Tensor, clamp: float = 5.0
) -> tuple[Tensor, Tensor]:
    """Graph attention with edge features; returns (h [B, H, N, d], e_out [B, H, N, N, d]).

    q, k, v: [B, H, N, d]; e: [B, H, N, N, d] edge features; adj: [B, N, N] bool with a self-loop
    on every node. s_ij = (q_i * k_j) d^-1/2 * e_ij (elementwise over d) is returned as e_out;
    w_ij = adj_ij exp(clip(sum_d s_ij, -clamp, clamp)); h_i = sum_j w_ij v_j / (sum_j w_ij + 1e-6).
    """
    _check(q, k, v, e, adj, clamp)
    if torch.onnx.is_in_onnx_export():
        h, e_out = DECLARATION.export_node((q, k, v, e, adj), {"clamp": clamp}, (q.dtype, e.dtype), (q.shape, e.shape))
        return h, e_out
    check_self_loops(adj, OP)
    d = q.shape[-1]
    s = q.unsqueeze(3) * k.unsqueeze(2) * (d**-0.5 if d else 1.0) * e  # [B, H, N, N, d]
    c = s.sum(dim=-1).clamp(-clamp, clamp)
    adj_h = adj.unsqueeze(1)
    # every weight relative to the row's largest (as the kernels and the portable function do): exp never
    # overflows float32, even for clamp >= 88; m >= -clamp keeps a row without edges finite
    if c.shape[-1]:
        m = c.masked_fill(~adj_h, -math.inf).amax(dim=-1, keepdim=True).clamp_min(-clamp)
    else:  # N = 0: nothing to reduce
        m = c.new_zeros((*c.shape[:-1], 1))
    w = torch.exp((c - m).masked_fill(~adj_h, -math.inf))  # masked before exp: off the graph it may overflow
    h = (w @ v) / (w.sum(dim=-1, keepdim=True) + 1e-6 * torch.exp(-m))
    return h, s


class EdgeGraphAttention(nn.Module):
    """Module form of :func:`edge_graph_attention` holding ``clamp``."""

    def __init__(self, clamp: float = 5.0):
        super().__init__()
        DECLARATION.check_attributes({"clamp": clamp})
        self.clamp = clamp

    def forward(self, q: Tensor, k: Tensor, v: Tensor, e: Tensor, adj: Tensor) -> tuple[Tensor, Tensor]:
        return edge_graph_attention(q, k, v, e, adj, self.clamp)

    def extra_repr(self) -> str:
        return f"clamp={self.clamp}"
