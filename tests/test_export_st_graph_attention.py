"""PyTorch -> ONNX: STGraphAttention exports as one finsta node; both flavours match PyTorch; the eager
op checks its inputs and attributes and has correct gradients (the cases of tests/op_harness.py)."""

from __future__ import annotations

import numpy as np
import torch
from op_harness import ExportCases, export_tests

from finsta.nn import STGraphAttention, st_graph_attention


class GraphBlock(torch.nn.Module):
    """The STGT local branch in miniature: q, k, v projections around STGraphAttention."""

    def __init__(self, D=16, H=2, d=8, P=5):
        super().__init__()
        self.H, self.d = H, d
        self.qkv = torch.nn.Linear(D, 3 * H * d)
        self.att = STGraphAttention(tokens_per_frame=P, sim_threshold=0.1)
        self.out = torch.nn.Linear(H * d, D)

    def forward(self, x):
        B, L, _ = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.H, self.d).permute(2, 0, 3, 1, 4)
        y = self.att(x, q, k, v)
        return self.out(y.transpose(1, 2).reshape(B, L, self.H * self.d))


def _inputs(size: tuple, seed: int) -> tuple:
    B, T = size
    return (torch.from_numpy(np.random.default_rng(seed).standard_normal((B, T * 5, 16)).astype(np.float32)),)


def _qkv(L: int = 6, requires_grad: bool = False, dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(1, 2, L, 8, generator=g, dtype=dtype).requires_grad_(requires_grad) for _ in range(3))


def _call(L: int = 8, x_shape=None, **kw):
    q, k, v = _qkv(L)
    return lambda: st_graph_attention(
        torch.randn(*(x_shape or (1, L, 3))), q, k, v, **{"tokens_per_frame": 4, "sim_threshold": 0.1, **kw}
    )


def _gradcheck(seed: int, frame_radius: int, tau: float):
    def make():
        x = torch.randn(1, 8, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        return (
            lambda q, k, v: st_graph_attention(x, q, k, v, 4, tau, frame_radius),
            _qkv(8, requires_grad=True, dtype=torch.float64, seed=seed),
        )

    return make


CASES = ExportCases(
    op="STGraphAttention",
    block=GraphBlock,
    inputs=_inputs,
    dynamic_shapes=lambda: {"x": {0: torch.export.Dim("B", min=1, max=64), 1: torch.export.Dim.AUTO}},
    export_size=(2, 3),
    sizes=[(1, 3), (3, 3), (2, 7), (4, 1)],
    node_inputs=4,
    node_outputs=1,
    node_attrs=dict(tokens_per_frame=5, frame_radius=1, sim_threshold=0.1, scale=8**-0.5),
    eager_errors={
        "L_not_multiple_of_P": (_call(L=6), "STGraphAttention: L=6 is not a multiple of tokens_per_frame=4"),
        "x_q_disagree": (
            lambda: st_graph_attention(torch.randn(2, 8, 3), *_qkv(8), 4, 0.1),
            "STGraphAttention: x \\(2, 8, 3\\) and q \\(1, 2, 8, 8\\) disagree on B or L",
        ),
        "x_rank": (_call(x_shape=(8, 3)), "STGraphAttention: x must be \\[B, L, D\\]"),
        "tokens_per_frame_0": (_call(tokens_per_frame=0), "STGraphAttention: tokens_per_frame must be > 0, got 0"),
        "frame_radius_negative": (_call(frame_radius=-1), "STGraphAttention: frame_radius must be >= 0, got -1"),
        "sim_threshold_nan": (_call(sim_threshold=float("nan")), "STGraphAttention: sim_threshold must not be NaN"),
        "scale_0": (_call(scale=0.0), "STGraphAttention: scale must be finite and > 0, got 0.0"),
        "tokens_per_frame_float": (_call(tokens_per_frame=4.0), "STGraphAttention: tokens_per_frame must be an int"),
    },
    gradchecks={
        "radius1": _gradcheck(0, 1, 0.0),
        "radius0": _gradcheck(1, 0, 0.2),
        "all_edges": _gradcheck(2, 1, -1.0),
    },
)

globals().update(export_tests(CASES))


def test_gradients_flow_to_qkv_not_to_the_graph():
    x = torch.randn(1, 8, 4, requires_grad=True)
    q, k, v = (torch.randn(1, 2, 8, 4, requires_grad=True) for _ in range(3))
    STGraphAttention(tokens_per_frame=4, sim_threshold=0.0)(x, q, k, v).sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (q, k, v))
    assert x.grad is None  # the graph is built from stop-gradient features (official code)
