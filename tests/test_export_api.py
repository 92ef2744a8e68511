"""finsta.export.export_onnx on a module written only for this test: a small video ViT whose attention is
finsta.nn.st_graph_attention, exported in both flavours with dynamic B and T, against PyTorch eager on B and
T it was not traced with; and the report and errors of the verification."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import SEED, replay_hint
from torch import nn

from finsta.export import ExportError, ParityReport, export_onnx
from finsta.export.api import IR_VERSION, OPSET, fresh_inputs
from finsta.nn import st_graph_attention


class GraphViT(nn.Module):
    """frames [B, T, 3, S, S] -> (per-frame tokens [B, T * P, D] after one graph-attention block, clip embedding [B, D])."""

    def __init__(self, size: int = 16, patch: int = 8, dim: int = 16, heads: int = 2):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2, dim) * 0.1)
        self.norm, self.qkv, self.out = nn.LayerNorm(dim), nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.heads, self.P = heads, (size // patch) ** 2

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, C, H, W = frames.shape
        x = self.patch(frames.reshape(B * T, C, H, W)).flatten(2).transpose(1, 2) + self.pos
        x = x.reshape(B, T * self.P, -1)
        h = self.norm(x)
        q, k, v = (t.reshape(B, T * self.P, self.heads, -1).transpose(1, 2) for t in self.qkv(h).chunk(3, dim=-1))
        a = st_graph_attention(h, q, k, v, tokens_per_frame=self.P, sim_threshold=0.1, frame_radius=1)
        x = x + self.out(a.transpose(1, 2).reshape(B, T * self.P, -1))
        return x, nn.functional.normalize(x.mean(dim=1), dim=-1)


DYNAMIC = {"frames": {0: torch.export.Dim("B", min=1, max=64), 1: torch.export.Dim("T", min=1, max=64)}}


@pytest.fixture(scope="module")
def vit() -> GraphViT:
    torch.manual_seed(SEED % 2**31)
    return GraphViT().eval()


@pytest.mark.parametrize("flavour", ["custom", "portable"])
def test_graph_vit_exports_equal_to_eager_on_other_shapes(vit, tmp_path, flavour):
    g = torch.Generator().manual_seed(SEED % 2**31)
    args = (torch.randn(2, 3, 3, 16, 16, generator=g),)
    path = tmp_path / f"vit-{flavour}.onnx"
    with replay_hint(f"flavour {flavour}"):
        report = export_onnx(
            vit,
            args,
            path,
            flavour=flavour,
            input_names=["frames"],
            output_names=["tokens", "clip"],
            dynamic_shapes=DYNAMIC,
        )
        assert isinstance(report, ParityReport)
        assert report.inputs["frames"][:2] == [3, 4]  # B and T other than traced (2, 3)
        for name, o in report.outputs.items():
            assert o.cosine >= 0.9999 and o.max_abs_error <= 1e-4, (name, o)
        model = onnx.load(str(path))
        assert model.ir_version <= IR_VERSION and {o.version for o in model.opset_import if o.domain == ""} == {OPSET}
        finsta_nodes = [n for n in model.graph.node if n.domain == "finsta"]
        assert [n.op_type for n in finsta_nodes] == ["STGraphAttention"]
        assert bool(model.functions) == (flavour == "portable")
        # B=1, T=5 (again untraced) checked independently of the report, portable in stock ORT (no op library)
        x = torch.randn(1, 5, 3, 16, 16, generator=g)
        so = ort.SessionOptions()
        if flavour == "custom":
            import finsta_rt

            finsta_rt.register(so)
        got = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"frames": x.numpy()})
        with torch.no_grad():
            ref = vit(x)
        for gv, rv in zip(got, ref):
            np.testing.assert_allclose(gv, rv.numpy(), atol=1e-4)


def test_fresh_inputs_change_every_dynamic_dim_consistently(vit):
    ids = torch.randint(5, 9, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.int64)

    class Two(nn.Module):
        def forward(self, input_ids, attention_mask):
            return input_ids * attention_mask

    b, s = torch.export.Dim("B", max=2), torch.export.Dim("S")
    fi, fm = fresh_inputs(Two(), (ids, mask), {"input_ids": {0: b, 1: s}, "attention_mask": {0: b, 1: s}})
    assert fi.shape == fm.shape == (1, 8)  # B at its max goes down, S up; shared Dims move together
    assert fi.dtype == torch.int64 and 5 <= int(fi.min()) and int(fi.max()) <= 8


def test_parity_failure_is_a_clear_error(tmp_path):
    class Drifts(nn.Module):
        """Eager and exported differ: the traced graph doubles, the eager call does not."""

        def forward(self, x):
            return x * 2.0 if torch.onnx.is_in_onnx_export() else x

    with pytest.raises(ExportError, match=r"does not reproduce PyTorch on inputs \{'x': \[3, 4\]\}: y: max abs error"):
        export_onnx(
            Drifts(),
            (torch.randn(2, 4),),
            tmp_path / "d.onnx",
            flavour="custom",
            input_names=["x"],
            output_names=["y"],
            dynamic_shapes={"x": {0: torch.export.Dim("N")}},
        )
    with pytest.raises(ValueError, match="flavour must be one of"):
        export_onnx(
            nn.Identity(), (torch.ones(1),), tmp_path / "e.onnx", flavour="flat", input_names=["x"], output_names=["y"]
        )
