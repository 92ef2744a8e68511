"""PyTorch -> ONNX: STGraphAttention exports as one finsta node; both flavours match PyTorch."""

from __future__ import annotations

import onnx
import pytest
import torch

from finsta.export import attach_portable_functions
from finsta.nn import STGraphAttention
from helpers import IR_VERSION, max_rel_err, session


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


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = GraphBlock().eval()
    x = torch.randn(2, 3 * 5, 16)
    dyn = {"x": {0: torch.export.Dim("B", min=1, max=64), 1: torch.export.Dim.AUTO}}
    proto = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=dyn, verbose=False).model_proto
    proto.ir_version = min(proto.ir_version, IR_VERSION)
    return model, proto


def test_one_custom_node(exported):
    _, proto = exported
    custom = [n for n in proto.graph.node if n.domain == "finsta"]
    assert [n.op_type for n in custom] == ["STGraphAttention"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in custom[0].attribute}
    assert attrs["tokens_per_frame"] == 5 and attrs["frame_radius"] == 1
    assert attrs["sim_threshold"] == pytest.approx(0.1) and attrs["scale"] == pytest.approx(8 ** -0.5)
    assert not proto.functions  # the custom flavour carries no fallback


@pytest.mark.parametrize("B,T", [(1, 3), (3, 3), (2, 7), (4, 1)])
@pytest.mark.parametrize("flavour", ["custom", "portable"])
def test_flavours_match_pytorch(exported, flavour, B, T):
    model, proto = exported
    if flavour == "portable":
        proto = attach_portable_functions(onnx.ModelProto.FromString(proto.SerializeToString()))
        onnx.checker.check_model(proto, full_check=True)
    x = torch.randn(B, T * 5, 16)
    with torch.no_grad():
        ref = model(x).double().numpy()
    sess = session(proto, library="cpu" if flavour == "custom" else None)
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert max_rel_err(out, ref) <= 1e-5


def test_eager_op_checks_shapes():
    att = STGraphAttention(tokens_per_frame=4, sim_threshold=0.1)
    x, q = torch.randn(1, 6, 3), torch.randn(1, 2, 6, 8)
    with pytest.raises(ValueError, match="L=6 is not a multiple of tokens_per_frame=4"):
        att(x, q, q, q)
    with pytest.raises(ValueError, match="disagree on B or L"):
        att(torch.randn(2, 8, 3), torch.randn(1, 2, 8, 8), torch.randn(1, 2, 8, 8), torch.randn(1, 2, 8, 8))


def test_gradients_flow_to_qkv_not_to_the_graph():
    x = torch.randn(1, 8, 4, requires_grad=True)
    q, k, v = (torch.randn(1, 2, 8, 4, requires_grad=True) for _ in range(3))
    STGraphAttention(tokens_per_frame=4, sim_threshold=0.0)(x, q, k, v).sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (q, k, v))
    assert x.grad is None  # the graph is built from stop-gradient features (official code)
