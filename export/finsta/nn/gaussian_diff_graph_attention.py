"""GaussianDiffGraphAttention: spatial-temporal Gaussian differential graph attention (docs/ops.md).

Attention over a graph of nodes with positions (x, y, t), biased by a Gaussian of their distance
with per-head scales sigma [H, 3]; the output holds the context and its change relative to the
node. Eager PyTorch computes the dense definition and is differentiable in q, k, v, pos and sigma;
under ``torch.onnx.export`` the op becomes a single node ``finsta::GaussianDiffGraphAttention``; its
portable function (:data:`DECLARATION`) is the same dense decomposition in standard ONNX ops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import onnxscript
import torch
from onnxscript import FLOAT
from onnxscript import opset18 as op
from torch import Tensor, nn

from .declaration import FINSTA_OPSET, OpDeclaration
from .edge_graph_attention import _check_qkv_adj, check_self_loops

OP = "GaussianDiffGraphAttention"
NEG_INF = -math.inf


@onnxscript.script(FINSTA_OPSET, default_opset=op)
def gaussian_diff_graph_attention_portable(q, k, v, pos, adj, sigma):
    """The dense decomposition: [B, H, N, N] logits with the Gaussian log-bias computed directly as
    -((pos_i - pos_j) / sigma)^2 / 2 (never sigma^2, which a tiny sigma underflows), masked softmax,
    context and change."""
    scale = op.Pow(op.Cast(op.Shape(q, start=3, end=4), to=FLOAT.dtype), -0.5)
    qk = op.Mul(op.MatMul(q, op.Transpose(k, perm=[0, 1, 3, 2])), scale)
    # log g_ij = -sum_c ((pos_ic - pos_jc) / sigma_hc)^2 / 2   [B, H, N, N]
    diff = op.Unsqueeze(op.Sub(op.Unsqueeze(pos, [2]), op.Unsqueeze(pos, [1])), [1])
    z = op.Div(diff, op.Unsqueeze(sigma, [0, 2, 3]))
    log_g = op.Mul(op.ReduceSumSquare(z, [-1], keepdims=0), -0.5)
    # alpha = softmax over adj;  out = [alpha v, alpha v - v_i]
    logits = op.Where(op.Unsqueeze(adj, [1]), op.Add(qk, log_g), NEG_INF)
    ctx = op.MatMul(op.Softmax(logits, axis=-1), v)
    out = op.Concat(ctx, op.Sub(ctx, v), axis=-1)
    return out


DECLARATION = OpDeclaration(OP, gaussian_diff_graph_attention_portable)


def _check(q: Tensor, k: Tensor, v: Tensor, pos: Tensor, adj: Tensor, sigma: Tensor) -> None:
    _check_qkv_adj(OP, q, k, v, adj)
    B, H, N, _ = q.shape
    if pos.dim() != 3 or tuple(pos.shape) != (B, N, 3):
        raise ValueError(f"{OP}: pos must be [B, N, 3] = {(B, N, 3)} (x, y, t), got shape {tuple(pos.shape)}")
    if sigma.dim() != 2 or tuple(sigma.shape) != (H, 3):
        raise ValueError(f"{OP}: sigma must be [H, 3] = {(H, 3)}, got shape {tuple(sigma.shape)}")


def _check_sigma(sigma: Tensor) -> None:
    if torch.compiler.is_compiling():
        return
    bad = ~(torch.isfinite(sigma) & (sigma > 0))
    if bool(bad.any()):
        h, c = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{OP}: sigma must be finite and > 0, got sigma[{h}, {c}] = {float(sigma[h, c])}")


def gaussian_diff_graph_attention(q: Tensor, k: Tensor, v: Tensor, pos: Tensor, adj: Tensor, sigma: Tensor) -> Tensor:
    """Gaussian-biased graph attention; returns [B, H, N, 2d] = [context, context change].

    q, k, v: [B, H, N, d]; pos: [B, N, 3] node positions (x, y, t); adj: [B, N, N] bool with a
    self-loop on every node; sigma: [H, 3] positive scales. With
    log g_ij = -sum_c (pos_ic - pos_jc)^2 / (2 sigma_hc^2),
    alpha_ij = softmax_j over adj (q_i.k_j d^-1/2 + log g_ij) and
    out_i = [sum_j alpha_ij v_j, sum_j alpha_ij (v_j - v_i)].
    """
    _check(q, k, v, pos, adj, sigma)
    if torch.onnx.is_in_onnx_export():
        B, H, N, d = q.shape
        return DECLARATION.export_node((q, k, v, pos, adj, sigma), {}, [q.dtype], [(B, H, N, 2 * d)])
    check_self_loops(adj, OP)
    _check_sigma(sigma)
    d = q.shape[-1]
    # log g directly: (diff / sigma)^2 never forms sigma^2 (tiny sigma would underflow it) nor log(exp)
    diff = pos.unsqueeze(2) - pos.unsqueeze(1)  # [B, N, N, 3]
    log_g = -0.5 * (diff.unsqueeze(1) / sigma[None, :, None, None, :]).square().sum(dim=-1)  # [B, H, N, N]
    logits = (q @ k.transpose(-1, -2)) * (d**-0.5 if d else 1.0) + log_g
    logits = logits.masked_fill(~adj.unsqueeze(1), float("-inf"))
    alpha = torch.softmax(logits, dim=-1)
    ctx = alpha @ v
    return torch.cat([ctx, ctx - v], dim=-1)  # sum_j alpha_ij (v_j - v_i) = ctx_i - v_i: alpha sums to 1


class GaussianDiffGraphAttention(nn.Module):
    """Module form of :func:`gaussian_diff_graph_attention` with learnable per-head scales.

    sigma = exp(log_sigma) stays positive during training; ``sigma_init`` gives the initial
    (x, y, t) scales, shared by all heads.
    """

    def __init__(self, heads: int, sigma_init: Sequence[float] = (1.0, 1.0, 1.0), learn_sigma: bool = True):
        super().__init__()
        if heads <= 0:
            raise ValueError(f"{OP}: heads must be > 0, got {heads}")
        if len(sigma_init) != 3 or not all(math.isfinite(s) and s > 0 for s in sigma_init):
            raise ValueError(f"{OP}: sigma_init must be 3 finite values > 0, got {tuple(sigma_init)}")
        log_sigma = torch.tensor([math.log(s) for s in sigma_init]).repeat(heads, 1)
        self.log_sigma = nn.Parameter(log_sigma, requires_grad=learn_sigma)

    @property
    def sigma(self) -> Tensor:
        """[H, 3] scales."""
        return self.log_sigma.exp()

    def forward(self, q: Tensor, k: Tensor, v: Tensor, pos: Tensor, adj: Tensor) -> Tensor:
        return gaussian_diff_graph_attention(q, k, v, pos, adj, self.sigma.to(q.dtype))

    def extra_repr(self) -> str:
        return f"heads={self.log_sigma.shape[0]}, learn_sigma={self.log_sigma.requires_grad}"
