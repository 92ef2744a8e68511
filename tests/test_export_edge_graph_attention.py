"""PyTorch -> ONNX: EdgeGraphAttention exports as one finsta node with two outputs; both flavours
match PyTorch; the eager op checks its inputs and has correct gradients (gradcheck, float64); the cases
of tests/op_harness.py."""

from __future__ import annotations

import numpy as np
import torch
from op_harness import ExportCases, export_tests
from test_edge_graph_attention import random_adjacency

from finsta.nn import EdgeGraphAttention, edge_graph_attention


class GraphBlock(torch.nn.Module):
    """A textual-scene-graph layer in miniature: node and edge projections around EdgeGraphAttention."""

    def __init__(self, D=16, De=6, H=2, d=8, clamp=3.0):
        super().__init__()
        self.H, self.d = H, d
        self.qkv = torch.nn.Linear(D, 3 * H * d)
        self.edge_in = torch.nn.Linear(De, H * d)
        self.att = EdgeGraphAttention(clamp=clamp)
        self.out = torch.nn.Linear(H * d, D)
        self.edge_out = torch.nn.Linear(H * d, De)

    def forward(self, x, edges, adj):
        B, N, _ = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.H, self.d).permute(2, 0, 3, 1, 4)
        e = self.edge_in(edges).view(B, N, N, self.H, self.d).permute(0, 3, 1, 2, 4)
        h, e_out = self.att(q, k, v, e, adj)
        x_out = self.out(h.transpose(1, 2).reshape(B, N, self.H * self.d))
        return x_out, self.edge_out(e_out.permute(0, 2, 3, 1, 4).reshape(B, N, N, self.H * self.d))


def _inputs(size: tuple, seed: int = 0):
    B, N = size
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.standard_normal((B, N, 16)).astype(np.float32))
    edges = torch.from_numpy(rng.standard_normal((B, N, N, 6)).astype(np.float32))
    return x, edges, torch.from_numpy(random_adjacency(rng, B, N, 0.4))


def _dynamic_shapes() -> dict:
    B, N = torch.export.Dim("B", min=1, max=64), torch.export.Dim("N", min=1, max=256)
    return {"x": {0: B, 1: N}, "edges": {0: B, 1: N, 2: N}, "adj": {0: B, 1: N, 2: N}}


def _qkve(B=1, H=2, N=4, d=3, dtype=torch.float32, requires_grad=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = lambda *s: torch.randn(*s, generator=g, dtype=dtype).requires_grad_(requires_grad)  # noqa: E731
    return t(B, H, N, d), t(B, H, N, d), t(B, H, N, d), t(B, H, N, N, d)


def _call(e_slice=slice(None), adj=None, k_heads=None, **kw):
    q, k, v, e = _qkve()
    adj = torch.eye(4, dtype=torch.bool)[None] if adj is None else adj
    return lambda: edge_graph_attention(q, k if k_heads is None else k[:, :k_heads], v, e[:, :, e_slice], adj, **kw)


def _no_self_loop():
    adj = torch.eye(4, dtype=torch.bool)[None]
    adj[0, 2, 2] = False
    return adj


def _gradcheck(seed: int, clamp: float, density: float):
    def make():
        q, k, v, e = _qkve(B=2, H=2, N=4, d=3, dtype=torch.float64, requires_grad=True, seed=seed)
        adj = torch.from_numpy(random_adjacency(np.random.default_rng(seed), 2, 4, density))
        with torch.no_grad():  # gradcheck's finite differences need every logit away from the clip's kinks
            _, s = edge_graph_attention(q, k, v, e, adj, clamp)
            assert ((s.sum(-1).abs() - clamp).abs() > 1e-3).all()
        return (lambda *t: edge_graph_attention(*t, adj, clamp)), (q, k, v, e)

    return make


CASES = ExportCases(
    op="EdgeGraphAttention",
    block=GraphBlock,
    inputs=_inputs,
    dynamic_shapes=_dynamic_shapes,
    export_size=(2, 5),
    sizes=[(1, 1), (2, 5), (3, 12), (4, 31)],
    node_inputs=5,
    node_outputs=2,
    node_attrs={"clamp": 3.0},
    eager_errors={
        "e_shape": (_call(e_slice=slice(0, 3)), "EdgeGraphAttention: e must be \\[B, H, N, N, d\\]"),
        "adj_float": (_call(adj=torch.eye(4)[None]), "EdgeGraphAttention: adj must be bool"),
        "adj_rank": (_call(adj=torch.eye(4, dtype=torch.bool)), "EdgeGraphAttention: adj must be \\[B, N, N\\]"),
        "qkv_shapes_differ": (_call(k_heads=1), "EdgeGraphAttention: q, k, v shapes differ"),
        "clamp_0": (_call(clamp=0.0), "EdgeGraphAttention: clamp must be finite and > 0, got 0"),
        "clamp_inf": (_call(clamp=float("inf")), "EdgeGraphAttention: clamp must be finite and > 0, got inf"),
        "module_clamp_nan": (
            lambda: EdgeGraphAttention(clamp=float("nan")),
            "EdgeGraphAttention: clamp must be finite and > 0",
        ),
        "missing_self_loop": (
            _call(adj=_no_self_loop()),
            "EdgeGraphAttention: adj lacks the self-loop of node 2 in batch 0",
        ),
    },
    gradchecks={
        f"seed{s}": _gradcheck(s, c, dens)
        for s, c, dens in [(0, 5.0, 0.5), (1, 0.7, 1.0), (2, 3.0, 0.0), (3, 2.0, 0.7)]
    },
)

globals().update(export_tests(CASES))


def test_clipped_logits_pass_no_gradient():
    q, k, v, e = _qkve(N=3, requires_grad=True)
    with torch.no_grad():
        q *= 100  # every logit far past the clamp
    h, _ = edge_graph_attention(q, k, v, e, torch.ones(1, 3, 3, dtype=torch.bool), clamp=1.0)
    h.sum().backward()
    assert torch.count_nonzero(q.grad) == 0 and torch.count_nonzero(v.grad) > 0
