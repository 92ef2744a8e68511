"""PyTorch -> ONNX: GaussianDiffGraphAttention exports as one finsta node; both flavours match
PyTorch; the eager op checks its inputs and has correct gradients (gradcheck, float64)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from finsta.export import attach_portable_functions
from finsta.nn import GaussianDiffGraphAttention, gaussian_diff_graph_attention
from helpers import IR_VERSION, max_rel_err, session
from test_edge_graph_attention import random_adjacency
from test_gaussian_diff_graph_attention import scene_graph_adjacency


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


def _inputs(B: int, T: int, K: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    N = T * K
    x = torch.from_numpy(rng.standard_normal((B, N, 16)).astype(np.float32))
    t = np.repeat(np.arange(T, dtype=np.float32), K)
    pos = np.concatenate([rng.uniform(0, 1, (B, N, 2)), np.broadcast_to(t[None, :, None], (B, N, 1))], -1)
    return x, torch.from_numpy(pos.astype(np.float32)), torch.from_numpy(scene_graph_adjacency(B, T, K))


@pytest.fixture(scope="module")
def exported():
    torch.manual_seed(0)
    model = GraphBlock().eval()
    B, N = torch.export.Dim("B", min=1, max=64), torch.export.Dim("N", min=1, max=4096)
    dyn = {"x": {0: B, 1: N}, "pos": {0: B, 1: N}, "adj": {0: B, 1: N, 2: N}}
    proto = torch.onnx.export(model, _inputs(2, 3, 4), dynamo=True, dynamic_shapes=dyn, verbose=False).model_proto
    proto.ir_version = min(proto.ir_version, IR_VERSION)
    return model, proto


def test_one_custom_node(exported):
    _, proto = exported
    custom = [n for n in proto.graph.node if n.domain == "finsta"]
    assert [n.op_type for n in custom] == ["GaussianDiffGraphAttention"]
    assert len(custom[0].input) == 6 and not custom[0].attribute
    assert not proto.functions  # the custom flavour carries no fallback


@pytest.mark.parametrize("B,T,K", [(1, 1, 1), (2, 3, 4), (3, 8, 5), (1, 16, 8)])
@pytest.mark.parametrize("flavour", ["custom", "portable"])
def test_flavours_match_pytorch(exported, flavour, B, T, K):
    model, proto = exported
    if flavour == "portable":
        proto = attach_portable_functions(onnx.ModelProto.FromString(proto.SerializeToString()))
        onnx.checker.check_model(proto, full_check=True)
    inputs = _inputs(B, T, K, seed=B * 100 + T)
    with torch.no_grad():
        ref = model(*inputs).double().numpy()
    sess = session(proto, library="cpu" if flavour == "custom" else None)
    out = sess.run(None, {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)})[0]
    assert max_rel_err(out, ref) <= 1e-5


def _case(B=2, H=2, N=5, d=3, dtype=torch.float32, requires_grad=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = lambda *s: torch.randn(*s, generator=g, dtype=dtype).requires_grad_(requires_grad)  # noqa: E731
    pos = torch.rand(B, N, 3, generator=g, dtype=dtype).requires_grad_(requires_grad)
    sigma = (0.2 + torch.rand(H, 3, generator=g, dtype=dtype)).requires_grad_(requires_grad)
    return t(B, H, N, d), t(B, H, N, d), t(B, H, N, d), pos, sigma


def test_eager_op_checks_inputs():
    q, k, v, pos, sigma = _case()
    adj = torch.eye(5, dtype=torch.bool).repeat(2, 1, 1)
    op = gaussian_diff_graph_attention
    with pytest.raises(ValueError, match="GaussianDiffGraphAttention: pos must be \\[B, N, 3\\]"):
        op(q, k, v, pos[..., :2], adj, sigma)
    with pytest.raises(ValueError, match="GaussianDiffGraphAttention: sigma must be \\[H, 3\\]"):
        op(q, k, v, pos, adj, sigma[:1])
    with pytest.raises(ValueError, match="GaussianDiffGraphAttention: adj must be bool"):
        op(q, k, v, pos, adj.int(), sigma)
    with pytest.raises(ValueError, match="GaussianDiffGraphAttention: q must be \\[B, H, N, d\\]"):
        op(q[0], k, v, pos, adj, sigma)
    bad_sigma = sigma.clone()
    bad_sigma[1, 0] = 0
    with pytest.raises(ValueError, match="GaussianDiffGraphAttention: sigma must be finite and > 0, got sigma\\[1, 0\\] = 0"):
        op(q, k, v, pos, adj, bad_sigma)
    bad_sigma[1, 0] = float("nan")
    with pytest.raises(ValueError, match="sigma must be finite and > 0, got sigma\\[1, 0\\] = nan"):
        op(q, k, v, pos, adj, bad_sigma)
    bad = adj.clone()
    bad[1, 3, 3] = False
    with pytest.raises(ValueError, match="GaussianDiffGraphAttention: adj lacks the self-loop of node 3 in batch 1"):
        op(q, k, v, pos, bad, sigma)
    with pytest.raises(ValueError, match="sigma_init must be 3 finite values > 0"):
        GaussianDiffGraphAttention(heads=2, sigma_init=(1.0, -1.0, 1.0))


@pytest.mark.parametrize("seed,density", [(0, 0.5), (1, 1.0), (2, 0.0), (3, 0.3)])
def test_gradcheck_float64(seed, density):
    q, k, v, pos, sigma = _case(dtype=torch.float64, requires_grad=True, seed=seed)
    adj = torch.from_numpy(random_adjacency(np.random.default_rng(seed), 2, 5, density))
    assert torch.autograd.gradcheck(lambda q, k, v, pos, sigma: gaussian_diff_graph_attention(q, k, v, pos, adj, sigma),
                                    (q, k, v, pos, sigma))


def test_module_learns_sigma():
    att = GaussianDiffGraphAttention(heads=2, sigma_init=(0.5, 0.5, 2.0))
    assert torch.allclose(att.sigma, torch.tensor([[0.5, 0.5, 2.0]] * 2))
    q, k, v, pos, _ = _case()
    att(q, k, v, pos, torch.ones(2, 5, 5, dtype=torch.bool)).square().sum().backward()
    assert att.log_sigma.grad is not None and torch.isfinite(att.log_sigma.grad).all()
    assert torch.count_nonzero(att.log_sigma.grad) > 0
