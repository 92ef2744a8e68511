"""PyTorch -> ONNX: GaussianDiffGraphAttention exports as one finsta node; both flavours match
PyTorch; the eager op checks its inputs and has correct gradients (gradcheck, float64); the cases of
tests/op_harness.py."""

from __future__ import annotations

import numpy as np
import torch
from op_harness import ExportCases, export_tests
from test_edge_graph_attention import random_adjacency
from test_gaussian_diff_graph_attention import scene_graph_adjacency

from finsta.nn import GaussianDiffGraphAttention, gaussian_diff_graph_attention


class GraphBlock(torch.nn.Module):
    """The spatial-temporal Gaussian differential layer in miniature: q, k, v projections around
    GaussianDiffGraphAttention with learnable per-head scales, then a projection of [context, change]."""

    def __init__(self, D=16, H=2, d=8):
        super().__init__()
        self.H, self.d = H, d
        self.qkv = torch.nn.Linear(D, 3 * H * d)
        self.att = GaussianDiffGraphAttention(heads=H, sigma_init=(0.3, 0.3, 1.5))
        self.out = torch.nn.Linear(2 * H * d, D)

    def forward(self, x, pos, adj):
        B, N, _ = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.H, self.d).permute(2, 0, 3, 1, 4)
        y = self.att(q, k, v, pos, adj)
        return self.out(y.transpose(1, 2).reshape(B, N, 2 * self.H * self.d))


def _inputs(size: tuple, seed: int = 0):
    B, T, K = size
    rng = np.random.default_rng(seed)
    N = T * K
    x = torch.from_numpy(rng.standard_normal((B, N, 16)).astype(np.float32))
    t = np.repeat(np.arange(T, dtype=np.float32), K)
    pos = np.concatenate([rng.uniform(0, 1, (B, N, 2)), np.broadcast_to(t[None, :, None], (B, N, 1))], -1)
    return x, torch.from_numpy(pos.astype(np.float32)), torch.from_numpy(scene_graph_adjacency(B, T, K))


def _dynamic_shapes() -> dict:
    B, N = torch.export.Dim("B", min=1, max=64), torch.export.Dim("N", min=1, max=4096)
    return {"x": {0: B, 1: N}, "pos": {0: B, 1: N}, "adj": {0: B, 1: N, 2: N}}


def _case(B=2, H=2, N=5, d=3, dtype=torch.float32, requires_grad=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = lambda *s: torch.randn(*s, generator=g, dtype=dtype).requires_grad_(requires_grad)  # noqa: E731
    pos = torch.rand(B, N, 3, generator=g, dtype=dtype).requires_grad_(requires_grad)
    sigma = (0.2 + torch.rand(H, 3, generator=g, dtype=dtype)).requires_grad_(requires_grad)
    return t(B, H, N, d), t(B, H, N, d), t(B, H, N, d), pos, sigma


def _call(q_first=False, pos_slice=slice(None), sigma_heads=None, adj=None, sigma_at=None):
    q, k, v, pos, sigma = _case()
    adj = torch.eye(5, dtype=torch.bool).repeat(2, 1, 1) if adj is None else adj
    if sigma_at is not None:
        sigma = sigma.clone()
        sigma[1, 0] = sigma_at
    return lambda: gaussian_diff_graph_attention(
        q[0] if q_first else q, k, v, pos[..., pos_slice], adj, sigma if sigma_heads is None else sigma[:sigma_heads]
    )


def _no_self_loop():
    adj = torch.eye(5, dtype=torch.bool).repeat(2, 1, 1)
    adj[1, 3, 3] = False
    return adj


def _gradcheck(seed: int, density: float):
    def make():
        q, k, v, pos, sigma = _case(dtype=torch.float64, requires_grad=True, seed=seed)
        adj = torch.from_numpy(random_adjacency(np.random.default_rng(seed), 2, 5, density))
        return (lambda q, k, v, pos, sigma: gaussian_diff_graph_attention(q, k, v, pos, adj, sigma)), (
            q,
            k,
            v,
            pos,
            sigma,
        )

    return make


OP = "GaussianDiffGraphAttention"
CASES = ExportCases(
    op=OP,
    block=GraphBlock,
    inputs=_inputs,
    dynamic_shapes=_dynamic_shapes,
    export_size=(2, 3, 4),
    sizes=[(1, 1, 1), (2, 3, 4), (3, 8, 5), (1, 16, 8)],
    node_inputs=6,
    node_outputs=1,
    node_attrs={},
    eager_errors={
        "pos_two_coords": (_call(pos_slice=slice(0, 2)), f"{OP}: pos must be \\[B, N, 3\\]"),
        "sigma_heads": (_call(sigma_heads=1), f"{OP}: sigma must be \\[H, 3\\]"),
        "adj_int": (
            lambda: gaussian_diff_graph_attention(
                *_case()[:4], torch.eye(5, dtype=torch.int32).repeat(2, 1, 1), _case()[4]
            ),
            f"{OP}: adj must be bool",
        ),
        "q_rank": (_call(q_first=True), f"{OP}: q must be \\[B, H, N, d\\]"),
        "sigma_zero": (_call(sigma_at=0.0), f"{OP}: sigma must be finite and > 0, got sigma\\[1, 0\\] = 0"),
        "sigma_nan": (_call(sigma_at=float("nan")), f"{OP}: sigma must be finite and > 0, got sigma\\[1, 0\\] = nan"),
        "missing_self_loop": (_call(adj=_no_self_loop()), f"{OP}: adj lacks the self-loop of node 3 in batch 1"),
        "sigma_init": (
            lambda: GaussianDiffGraphAttention(heads=2, sigma_init=(1.0, -1.0, 1.0)),
            "sigma_init must be 3 finite values > 0",
        ),
        "heads_0": (lambda: GaussianDiffGraphAttention(heads=0), f"{OP}: heads must be > 0, got 0"),
    },
    gradchecks={f"seed{s}": _gradcheck(s, dens) for s, dens in [(0, 0.5), (1, 1.0), (2, 0.0), (3, 0.3)]},
)

globals().update(export_tests(CASES))


def test_module_learns_sigma():
    att = GaussianDiffGraphAttention(heads=2, sigma_init=(0.5, 0.5, 2.0))
    assert torch.allclose(att.sigma, torch.tensor([[0.5, 0.5, 2.0]] * 2))
    q, k, v, pos, _ = _case()
    att(q, k, v, pos, torch.ones(2, 5, 5, dtype=torch.bool)).square().sum().backward()
    assert att.log_sigma.grad is not None and torch.isfinite(att.log_sigma.grad).all()
    assert torch.count_nonzero(att.log_sigma.grad) > 0
