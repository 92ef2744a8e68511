"""fp16 and int8 bundles (finsta.export.precision): passes over the tiny fp32 bundles of test_bundle,
checked against the PyTorch towers; custom nodes kept float32; int8 calibrated for both flavours;
the bundle and `finsta-rt info` state the precision; bad requests are clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
import yaml
from helpers import SEED, case_rng, replay_hint
from test_bundle import TEXTS, cos, torch_reference

from finsta.cli.export import main as export_main
from finsta.export.precision import PrecisionError, convert_bundle, stem_nodes
from finsta.export.run import bundle_dir
from finsta_rt.bundle import Bundle, BundleError
from finsta_rt.cli import main as rt_main
from finsta_rt.model import Model

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


def _clips(rng: np.random.Generator, n: int) -> np.ndarray:
    """Frames with structure (smooth gradients plus a moving block), not white noise: what calibration sees."""
    y, x = np.mgrid[0:64, 0:64]
    out = np.empty((n, 4, 64, 64, 3), np.uint8)
    for i in range(n):
        base = rng.uniform(0, 255, 3) * (x[..., None] + y[..., None]) / 126
        for t in range(4):
            f = base.copy()
            x0 = int(rng.integers(0, 48))
            f[8:24, x0 : x0 + 16] = rng.uniform(0, 255, 3)
            out[i, t] = np.clip(f + rng.normal(0, 8, f.shape), 0, 255)
    return out


@pytest.fixture(scope="module")
def converted(tiny_bundles, tmp_path_factory):
    video, text, spec, paths = tiny_bundles
    rng = np.random.default_rng(SEED)
    root = tmp_path_factory.mktemp("precision")
    out = {
        # the pass's own check against fp32 runs once (custom int8): the tests compare with PyTorch
        ("custom", "fp16"): convert_bundle(paths["custom"], "fp16", root / "custom-fp16", verify=False),
        ("custom", "int8"): convert_bundle(paths["custom"], "int8", root / "custom-int8", _clips(rng, 6)),
        ("portable", "int8"): convert_bundle(
            paths["portable"], "int8", root / "portable-int8", _clips(rng, 6), verify=False
        ),
    }
    return video, text, out


def _types(proto: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(proto)
    vis = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    types = {v.name: v.type.tensor_type.elem_type for v in vis}
    types.update({t.name: t.data_type for t in proto.graph.initializer})
    return types


@pytest.mark.parametrize(
    "flavour, precision, min_cos", [("custom", "fp16", 0.999), ("custom", "int8", 0.95), ("portable", "int8", 0.95)]
)
def test_converted_bundle_matches_pytorch_and_keeps_finsta_nodes_float32(
    converted, flavour, precision, min_cos, monkeypatch, tmp_path
):
    video, text, paths = converted
    rng = case_rng(SEED, {"flavour": flavour, "precision": precision})
    path = paths[(flavour, precision)]
    b = Bundle.load(path)
    assert (b.precision, b.flavour) == (precision, flavour)
    assert b.manifest["exporter"]["precision"]["scorer"] == "float32 (unchanged)"
    proto = onnx.load(path / "video.onnx")
    assert {p.key: p.value for p in proto.metadata_props}["finsta.precision"] == precision
    finsta = [n for n in proto.graph.node if n.domain == "finsta"]
    assert finsta, "the finsta nodes must stay custom nodes"
    types = _types(proto)
    for n in finsta:  # float32 in and out, whatever the precision around them
        assert all(types.get(i, FLOAT) == FLOAT for i in n.input if i), (n.name, [types.get(i) for i in n.input])
    ops = {n.op_type for n in proto.graph.node}
    text_ops = {n.op_type for n in onnx.load(path / "text.onnx").graph.node}
    if precision == "int8":
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # static QDQ of the backbone
        assert not text_ops & {"MatMulInteger", "DynamicQuantizeLinear", "QuantizeLinear"}  # text stays float32
        assert b.manifest["exporter"]["precision"]["text"] == "float32 (unchanged)"
        assert any(i.data_type == onnx.TensorProto.INT8 for i in proto.graph.initializer)
    else:
        assert any(i.data_type == FLOAT16 for i in proto.graph.initializer)
    assert ({f.name for f in proto.functions} == {"STGraphAttention"}) == (flavour == "portable")
    if flavour == "portable":
        monkeypatch.setenv("FINSTA_OPS_DIR", str(tmp_path))  # stock ONNX Runtime: no op library to be found
    model = Model(path, device="cpu")
    frames = rng.integers(0, 256, (2, 4, 64, 64, 3), dtype=np.uint8)
    zv, zg, _, zt, s = torch_reference(video, text, frames, *model.tokenizer(TEXTS))
    with replay_hint(f"{flavour} {precision}"):
        v = model.embed_frames(frames)
        t = model.embed_text(TEXTS)
        assert v["video_embedding"].dtype == np.float32 and t.dtype == np.float32
        assert cos(v["video_embedding"], zv).min() >= min_cos
        assert cos(v["video_global"], zg).min() >= min_cos
        assert cos(t, zt).min() >= min_cos
        assert np.abs(model.score(v["video_embedding"], t) - s).max() <= 1 - min_cos + 1e-3


def test_info_shows_the_precision(converted, capsys):
    path = converted[2][("custom", "int8")]
    assert rt_main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "precision int8" in out and "int8 static QDQ" in out and "7-bit weights" in out


def test_bad_precision_requests_are_clear_errors(tiny_bundles, converted, tmp_path, capsys):
    paths = tiny_bundles[3]
    with pytest.raises(PrecisionError, match=r"precision int8 needs at least 2 calibration clips.*got none"):
        convert_bundle(paths["custom"], "int8", tmp_path / "a")
    with pytest.raises(PrecisionError, match=r"calibration frames must be uint8 \[N, T, S, S, 3\], got float32"):
        convert_bundle(paths["custom"], "int8", tmp_path / "a", np.zeros((4, 4, 64, 64, 3), np.float32))
    with pytest.raises(PrecisionError, match="calibration frames are 32x32, the bundle takes 64x64"):
        convert_bundle(paths["custom"], "int8", tmp_path / "a", np.zeros((4, 4, 32, 32, 3), np.uint8))
    with pytest.raises(PrecisionError, match="precision must be one of fp32, fp16, int8, got 'int4'"):
        convert_bundle(paths["custom"], "int4", tmp_path / "a")
    with pytest.raises(PrecisionError, match="is int8 already"):
        convert_bundle(converted[2][("custom", "int8")], "fp16", tmp_path / "a")
    assert not (tmp_path / "a").exists()
    with pytest.raises(SystemExit) as e:
        export_main(["runs/none", "--precision", "int4"])
    assert e.value.code == 2 and "argument --precision: invalid choice: 'int4'" in capsys.readouterr().err


def test_bundle_precision_key_is_checked(tiny_bundles, tmp_path):
    src = tiny_bundles[3]["custom"]
    dst = shutil.copytree(src, tmp_path / "b")
    m = yaml.safe_load((dst / "bundle.yaml").read_text())
    assert Bundle.load(dst).precision == "fp32"  # absent: fp32, as every bundle before precisions
    m["precision"] = "int4"
    (dst / "bundle.yaml").write_text(yaml.safe_dump(m))
    with pytest.raises(BundleError, match=r"bundle.yaml: precision must be one of fp32, fp16, int8, got str 'int4'"):
        Bundle.load(dst)


def test_default_bundle_names():
    assert str(bundle_dir("m")) == "bundles/m"
    assert str(bundle_dir("m", "flat", "int8")) == "bundles/m-flat-int8"
    assert str(bundle_dir("m", "portable", "fp16")) == "bundles/m-portable-fp16"


def test_export_parts_runs_precision_then_flattening(tiny_bundles, monkeypatch, tmp_path):
    """The composition in export_parts / export_flavours (the fp32 export itself is test_bundle's): flat fp16 is
    the portable bundle converted, then flattened; several flavours come from one trace; nothing is left
    beside the targets."""
    from finsta.export import run

    video, text, spec, paths = tiny_bundles
    calls = []

    def traced(video, text, spec, outs, **kw):  # what export_bundles writes, from the session's bundles
        calls.append(sorted(outs))
        return {fl: shutil.copytree(paths[fl], out) for fl, out in outs.items()}

    monkeypatch.setattr(run, "export_bundles", traced)
    parts = run.ExportParts(video, text, spec)
    with pytest.raises(PrecisionError, match="precision int8 needs at least 2 calibration clips"):
        run.export_parts(parts, "custom", tmp_path / "x", precision="int8")  # refused before any export
    with pytest.raises(ValueError, match="flavour must be one of custom, portable, flat, got 'flatt'"):
        run.export_parts(parts, "flatt", tmp_path / "x")
    assert calls == []
    out = run.export_parts(parts, "flat", tmp_path / "x", precision="fp16", verify=False)
    b = Bundle.load(out)
    assert (calls, b.flavour, b.precision, sorted(p.name for p in tmp_path.iterdir())) == (
        [["portable"]],
        "flat",
        "fp16",
        ["x"],
    )
    video_proto = onnx.load(out / "video.onnx")
    assert not video_proto.functions and all(n.domain in ("", "ai.onnx") for n in video_proto.graph.node)
    assert any(i.data_type == FLOAT16 for i in video_proto.graph.initializer)

    calls.clear()  # custom fp16 and flat fp16 of one trace: flat reuses the portable trace
    outs = run.export_flavours(
        parts, {"custom": tmp_path / "c", "flat": tmp_path / "f"}, precision="fp16", verify=False
    )
    got = {fl: (Bundle.load(o).flavour, Bundle.load(o).precision) for fl, o in outs.items()}
    assert calls == [["custom", "portable"]] and got == {"custom": ("custom", "fp16"), "flat": ("flat", "fp16")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "f", "x"]


def test_stem_convs_stay_float32():
    """int8 keeps a CNN stem (3 channels, 3x3 or 7x7) and its activation float32; a ViT patch embedding (3x16x16),
    pointwise, depthwise and grouped convs are quantized."""
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(SEED)
    convs = {  # name: (weight shape, group)
        "stem3": ((8, 3, 3, 3), 1),
        "stem7": ((8, 3, 7, 7), 1),
        "patch16": ((8, 3, 16, 16), 1),
        "pointwise": ((8, 8, 1, 1), 1),
        "depthwise": ((8, 1, 3, 3), 8),
    }
    nodes, weights = [], []
    for name, (shape, group) in convs.items():
        x = "image" if shape[1] == 3 else "features"
        weights.append(nh.from_array(rng.normal(size=shape).astype(np.float32), f"{name}.w"))
        nodes.append(h.make_node("Conv", [x, f"{name}.w"], [f"{name}.y"], name=name, group=group))
        nodes.append(h.make_node("Clip", [f"{name}.y"], [f"{name}.z"], name=f"{name}.clip"))
    nodes.append(h.make_node("Relu", ["stem3.y"], ["stem3.r"], name="stem3.relu"))
    nodes.append(h.make_node("Relu", ["pointwise.z"], ["pointwise.r"], name="pointwise.relu"))
    inputs = [h.make_tensor_value_info(n, FLOAT, None) for n in ("image", "features")]
    outputs = [h.make_tensor_value_info(n.output[0], FLOAT, None) for n in nodes if n.op_type != "Conv"]
    proto = h.make_model(h.make_graph(nodes, "g", inputs, outputs, weights))
    with replay_hint("stem_nodes"):
        assert sorted(stem_nodes(proto)) == sorted(["stem3", "stem7", "stem3.clip", "stem7.clip", "stem3.relu"])
