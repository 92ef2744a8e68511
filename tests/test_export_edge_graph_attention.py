"""PyTorch -> ONNX: EdgeGraphAttention exports as one finsta node with two outputs; both flavours
match PyTorch; the eager op checks its inputs and has correct gradients (gradcheck, float64)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from finsta.export import attach_portable_functions
from finsta.nn import EdgeGraphAttention, edge_graph_attention
from helpers import IR_VERSION, max_rel_err, session
from test_edge_graph_attention import random_adjacency


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


def _inputs(B: int, N: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.standard_normal((B, N, 16)).astype(np.float32))
    edges = torch.from_numpy(rng.standard_normal((B, N, N, 6)).astype(np.float32))
    return x, edges, torch.from_numpy(random_adjacency(rng, B, N, 0.4))


@pytest.fixture(scope="module")
def exported():
    torch.manual_seed(0)
    model = GraphBlock().eval()
    B, N = torch.export.Dim("B", min=1, max=64), torch.export.Dim("N", min=1, max=256)
    dyn = {"x": {0: B, 1: N}, "edges": {0: B, 1: N, 2: N}, "adj": {0: B, 1: N, 2: N}}
    proto = torch.onnx.export(model, _inputs(2, 5), dynamo=True, dynamic_shapes=dyn, verbose=False).model_proto
    proto.ir_version = min(proto.ir_version, IR_VERSION)
    return model, proto


def test_one_custom_node(exported):
    _, proto = exported
    custom = [n for n in proto.graph.node if n.domain == "finsta"]
    assert [n.op_type for n in custom] == ["EdgeGraphAttention"]
    assert len(custom[0].input) == 5 and len(custom[0].output) == 2
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in custom[0].attribute}
    assert attrs == {"clamp": pytest.approx(3.0)}
    assert not proto.functions  # the custom flavour carries no fallback


@pytest.mark.parametrize("B,N", [(1, 1), (2, 5), (3, 12), (4, 31)])
@pytest.mark.parametrize("flavour", ["custom", "portable"])
def test_flavours_match_pytorch(exported, flavour, B, N):
    model, proto = exported
    if flavour == "portable":
        proto = attach_portable_functions(onnx.ModelProto.FromString(proto.SerializeToString()))
        onnx.checker.check_model(proto, full_check=True)
    inputs = _inputs(B, N, seed=B * 100 + N)
    with torch.no_grad():
        refs = [r.double().numpy() for r in model(*inputs)]
    sess = session(proto, library="cpu" if flavour == "custom" else None)
    outs = sess.run(None, {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)})
    for out, ref in zip(outs, refs):
        assert max_rel_err(out, ref) <= 1e-5


def _qkve(B=1, H=2, N=4, d=3, dtype=torch.float32, requires_grad=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = lambda *s: torch.randn(*s, generator=g, dtype=dtype).requires_grad_(requires_grad)  # noqa: E731
    return t(B, H, N, d), t(B, H, N, d), t(B, H, N, d), t(B, H, N, N, d)


def test_eager_op_checks_inputs():
    q, k, v, e = _qkve()
    adj = torch.eye(4, dtype=torch.bool)[None]
    with pytest.raises(ValueError, match="EdgeGraphAttention: e must be \\[B, H, N, N, d\\]"):
        edge_graph_attention(q, k, v, e[:, :, :3], adj)
    with pytest.raises(ValueError, match="EdgeGraphAttention: adj must be bool"):
        edge_graph_attention(q, k, v, e, adj.float())
    with pytest.raises(ValueError, match="EdgeGraphAttention: adj must be \\[B, N, N\\]"):
        edge_graph_attention(q, k, v, e, adj[0])
    with pytest.raises(ValueError, match="EdgeGraphAttention: q, k, v shapes differ"):
        edge_graph_attention(q, k[:, :1], v, e, adj)
    with pytest.raises(ValueError, match="EdgeGraphAttention: clamp must be finite and > 0, got 0"):
        edge_graph_attention(q, k, v, e, adj, clamp=0.0)
    with pytest.raises(ValueError, match="EdgeGraphAttention: clamp must be finite and > 0"):
        EdgeGraphAttention(clamp=float("nan"))
    bad = adj.clone()
    bad[0, 2, 2] = False
    with pytest.raises(ValueError, match="EdgeGraphAttention: adj lacks the self-loop of node 2 in batch 0"):
        edge_graph_attention(q, k, v, e, bad)


@pytest.mark.parametrize("seed,clamp,density", [(0, 5.0, 0.5), (1, 0.7, 1.0), (2, 3.0, 0.0), (3, 2.0, 0.7)])
def test_gradcheck_float64(seed, clamp, density):
    q, k, v, e = _qkve(B=2, H=2, N=4, d=3, dtype=torch.float64, requires_grad=True, seed=seed)
    adj = torch.from_numpy(random_adjacency(np.random.default_rng(seed), 2, 4, density))
    with torch.no_grad():  # gradcheck's finite differences need every logit away from the clip's kinks
        _, s = edge_graph_attention(q, k, v, e, adj, clamp)
        assert ((s.sum(-1).abs() - clamp).abs() > 1e-3).all()
    assert torch.autograd.gradcheck(lambda *t: edge_graph_attention(*t, adj, clamp), (q, k, v, e))


def test_clipped_logits_pass_no_gradient():
    q, k, v, e = _qkve(N=3, requires_grad=True)
    with torch.no_grad():
        q *= 100  # every logit far past the clamp
    h, _ = edge_graph_attention(q, k, v, e, torch.ones(1, 3, 3, dtype=torch.bool), clamp=1.0)
    h.sum().backward()
    assert torch.count_nonzero(q.grad) == 0 and torch.count_nonzero(v.grad) > 0
