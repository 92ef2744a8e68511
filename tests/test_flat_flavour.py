"""The flat flavour (finsta.export.flat): every model-local function inlined, no finsta domain left;
the flat tiny bundle equals PyTorch in ONNX Runtime, onnx.reference.ReferenceEvaluator and OpenVINO
(f32 precision hint: its CPU default is bf16 on some CPUs)."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
import yaml
from helpers import SEED, replay_hint
from onnx.reference import ReferenceEvaluator
from test_bundle import TEXTS, cos, torch_reference

from finsta.export.flat import flatten_bundle, flatten_model
from finsta.export.precision import PrecisionError, convert_bundle
from finsta_rt.bundle import Bundle, BundleError
from finsta_rt.model import Model

MIN_COS = 0.9999


@pytest.fixture(scope="module")
def flat(tiny_bundles, tmp_path_factory):
    video, text, spec, paths = tiny_bundles
    return video, text, flatten_bundle(paths["portable"], tmp_path_factory.mktemp("flat") / "flat")


def _domains(proto: onnx.ModelProto) -> set[str]:
    return {n.domain for n in proto.graph.node} | {o.domain for o in proto.opset_import}


def test_flat_bundle_holds_standard_onnx_only(flat, tiny_bundles):
    path = flat[2]
    b = Bundle.load(path)
    assert (b.flavour, b.precision, b.custom_ops, b.requires_op_library) == ("flat", "fp32", [], False)
    for g in ("video", "text", "scorer"):
        proto = onnx.load(path / f"{g}.onnx")
        onnx.checker.check_model(proto, full_check=True)
        assert not proto.functions and _domains(proto) <= {"", "ai.onnx"}, g
        assert {p.key: p.value for p in proto.metadata_props}["finsta.flavour"] == "flat"
    # a custom-flavour graph flattens too: the portable functions are attached first
    custom = onnx.load(tiny_bundles[3]["custom"] / "video.onnx")
    assert "finsta" in _domains(custom) and _domains(flatten_model(custom)) <= {"", "ai.onnx"}


def _feeds(model: Model, rng: np.random.Generator):
    frames = rng.integers(0, 256, (1, 2, 64, 64, 3), dtype=np.uint8)  # T=2: not the T=4 it was traced with
    ids, mask = model.tokenizer(TEXTS)
    return frames, ids, mask


def test_flat_bundle_equals_pytorch_in_three_runtimes(flat, monkeypatch, tmp_path):
    import openvino as ov

    video, text, path = flat
    monkeypatch.setenv("FINSTA_OPS_DIR", str(tmp_path))  # stock ONNX Runtime: no op library to be found
    model = Model(path, device="cpu")
    frames, ids, mask = _feeds(model, np.random.default_rng(SEED))
    zv, zg, tokens, zt, _ = torch_reference(video, text, frames, ids, mask)
    ref = {"video_embedding": zv, "video_global": zg, "video_tokens": tokens, "text_embedding": zt}
    feeds = {"video": {"frames": frames}, "text": {"input_ids": ids, "attention_mask": mask}}
    core = ov.Core()

    def runtimes(graph: str):
        p = path / f"{graph}.onnx"
        yield (
            "onnxruntime",
            dict(
                zip(
                    [o.name for o in model.sessions[graph].get_outputs()], model.sessions[graph].run(None, feeds[graph])
                )
            ),
        )
        rev = ReferenceEvaluator(onnx.load(p))
        yield "reference", dict(zip(rev.output_names, rev.run(None, feeds[graph])))
        compiled = core.compile_model(core.read_model(p), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        out = compiled(feeds[graph])
        yield "openvino", {o.get_any_name(): out[o] for o in compiled.outputs}

    for graph in ("video", "text"):
        for runtime, got in runtimes(graph):
            with replay_hint(f"{graph} graph in {runtime}"):
                for name, value in got.items():
                    assert cos(value, ref[name]).min() >= MIN_COS, (runtime, name)


def test_flat_manifest_refuses_custom_ops_and_flat_sources_are_refused(flat, tmp_path):
    dst = shutil.copytree(flat[2], tmp_path / "b")
    m = yaml.safe_load((dst / "bundle.yaml").read_text())
    m["custom_ops"] = [{"domain": "finsta", "version": 1, "ops": ["STGraphAttention"], "required": False}]
    (dst / "bundle.yaml").write_text(yaml.safe_dump(m))
    with pytest.raises(BundleError, match=r"flavour flat holds standard ONNX only, but custom_ops lists"):
        Bundle.load(dst)
    with pytest.raises(ValueError, match="is flat already"):
        flatten_bundle(flat[2], tmp_path / "again")
    with pytest.raises(PrecisionError, match="is flat: convert its custom or portable bundle, then flatten"):
        convert_bundle(flat[2], "fp16", tmp_path / "fp16")
