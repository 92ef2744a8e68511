"""Backbone plug-ins (finsta.models.backbones.plugin): hf-clip:DIR against transformers' own CLIP classes,
onnx:PATH detected and run through ONNX Runtime, module:callable checked against the protocol, and the
errors of bad plug-ins; and each plug-in trains (a few steps), exports and serves (finsta_rt.Model, the CLI's
score and extract) with bundle parity >= 0.9999. A tiny random CLIP is built with transformers and saved to a
temp dir: nothing downloads."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import onnx
import pytest
import torch
from helpers import SEED, replay_hint
from media import moving_frames, write_video
from torch import nn

from finsta import families
from finsta.export import ExportSpec, export_bundle, verify_bundle
from finsta.models.backbones import (
    BackboneError,
    ClipDirError,
    OnnxEncoderError,
    build_backbone,
    cache_identity,
    save_tiny_random_clip,
    tiny_vit,
)
from finsta.models.towers import TextTower, VideoTower
from finsta.train.config import ConfigError, parse_config
from finsta.train.features import build_backbones
from finsta_rt import cli
from finsta_rt.extract import read_manifest
from finsta_rt.model import Model


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_random_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


class CatTokens(nn.Module):
    """A frame backbone as an image encoder with one output: [CLS, patches] (transformers' last_hidden_state)."""

    def __init__(self, backbone: nn.Module, nhwc: bool = False):
        super().__init__()
        self.backbone, self.nhwc = backbone, nhwc

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = pixel_values.permute(0, 3, 1, 2) if self.nhwc else pixel_values
        tokens, cls = self.backbone(x)
        return torch.cat([cls[:, None], tokens], dim=1)


def save_encoder(path, nhwc: bool = False, metadata: dict | None = None) -> tuple[nn.Module, str]:
    """A tiny ViT saved as someone else's ONNX image encoder would be: the TorchScript exporter at opset 17
    (so inlining it into our opset-18 graphs converts it), one output [N, 1 + P, C]."""
    vit = tiny_vit(image_size=32, patch=8, dim=32, depth=1, heads=4, seed=SEED % 1000)
    x = torch.randn(2, 32, 32, 3) if nhwc else torch.randn(2, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter's notice
        torch.onnx.export(
            CatTokens(vit, nhwc),
            (x,),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["pixel_values"],
            output_names=["last_hidden_state"],
            dynamic_axes={"pixel_values": {0: "N"}},
        )
    if metadata:
        m = onnx.load(str(path))
        for k, v in metadata.items():
            m.metadata_props.add(key=k, value=v)
        onnx.save(m, str(path))
    return vit, str(path)


def test_hf_clip_sides_equal_transformers(clip_dir):
    from transformers import CLIPModel, CLIPTokenizer

    ref = CLIPModel.from_pretrained(str(clip_dir)).eval()
    frame, text = build_backbone("frame", f"hf-clip:{clip_dir}"), build_backbone("text", f"hf-clip:{clip_dir}")
    assert (frame.out_dim, frame.grid, frame.tokens_per_frame, frame.preprocess.size) == (32, (4, 4), 16, 32)
    assert text.config.tokenizer_kind == "clip_bpe" and text.config.merges_file == clip_dir / "merges.txt"
    g = torch.Generator().manual_seed(SEED % 2**31)
    texts = ["a man rides a bicycle down the street", "two dogs", "Hello, World!! 42 times"]
    with replay_hint("hf-clip sides vs transformers"), torch.no_grad():
        px = torch.randn(3, 3, 32, 32, generator=g)
        o = ref.vision_model(pixel_values=px)
        tokens, cls = frame(px)
        torch.testing.assert_close(cls, o.pooler_output, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(
            tokens, ref.vision_model.post_layernorm(o.last_hidden_state[:, 1:]), atol=1e-5, rtol=1e-4
        )
        ids, mask = text.config.tokenizer()(texts)
        hf = CLIPTokenizer.from_pretrained(str(clip_dir))(texts, padding=True, return_tensors="np")
        np.testing.assert_array_equal(ids, hf["input_ids"])
        ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
        o = ref.text_model(input_ids=ids_t, attention_mask=mask_t)
        feats, pooled = text(ids_t, mask_t)
        torch.testing.assert_close(feats[mask_t.bool()], o.last_hidden_state[mask_t.bool()], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(pooled, o.pooler_output, atol=1e-5, rtol=1e-4)  # end-of-text pooling


def test_clip_dir_errors_name_the_file(clip_dir, tmp_path):
    broken = tmp_path / "no-weights"
    shutil.copytree(clip_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ClipDirError, match=r"model.safetensors not found: the CLIP directory .* holds no weights"):
        build_backbone("frame", f"hf-clip:{broken}")
    shutil.copy(clip_dir / "model.safetensors", broken / "model.safetensors")
    (broken / "merges.txt").unlink()
    with pytest.raises(ClipDirError, match=r"merges.txt not found: the text side needs CLIP's tokenizer files"):
        build_backbone("text", f"hf-clip:{broken}")
    assert cache_identity(f"hf-clip:{broken}") != cache_identity(f"hf-clip:{clip_dir}")  # content, not name


def test_onnx_encoder_is_detected_and_runs_in_onnx_runtime(tmp_path):
    vit, path = save_encoder(tmp_path / "enc.onnx")
    bb = build_backbone("frame", f"onnx:{path}?mean=1,2,3&std=4,5,6")
    assert (bb.spec.layout, bb.spec.size, bb.spec.tokens, bb.cls_first) == ("NCHW", 32, "last_hidden_state", True)
    assert (bb.out_dim, bb.grid, bb.preprocess.mean, bb.preprocess.std) == (
        32,
        (4, 4),
        (1.0, 2.0, 3.0),
        (4.0, 5.0, 6.0),
    )
    nhwc, path2 = save_encoder(
        tmp_path / "enc_nhwc.onnx", nhwc=True, metadata={"finsta.mean": "0,0,0", "finsta.std": "1,1,1"}
    )
    bb2 = build_backbone("frame", f"onnx:{path2}")
    assert bb2.spec.layout == "NHWC" and bb2.preprocess.std == (1.0, 1.0, 1.0)  # mean/std from metadata_props
    px = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(SEED % 2**31))
    with torch.no_grad(), replay_hint("onnx encoder vs eager"):
        for b, ref in ((bb, vit), (bb2, nhwc)):
            got, want = b(px), ref(px)
            for gv, wv in zip(got, want):
                torch.testing.assert_close(gv, wv, atol=1e-4, rtol=1e-4)


def test_bad_onnx_encoders_are_refused(tmp_path):
    from onnx import TensorProto, helper

    def model(inputs, name):
        nodes = [helper.make_node("Identity", [inputs[0][0]], ["y"])]
        vi = [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs]
        g = helper.make_graph(nodes, "g", vi, [helper.make_tensor_value_info("y", inputs[0][1], None)])
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), tmp_path / name)
        return f"onnx:{tmp_path / name}"

    two = model([("a", TensorProto.FLOAT, [1, 3, 8, 8]), ("b", TensorProto.FLOAT, [1])], "two.onnx")
    with pytest.raises(OnnxEncoderError, match=r"expected one image input, got 2: \['a', 'b'\]"):
        build_backbone("frame", two)
    ints = model([("ids", TensorProto.INT64, [1, 3, 8, 8])], "ints.onnx")
    with pytest.raises(OnnxEncoderError, match=r"input 'ids' must be float32 images of rank 4 .* got int64"):
        build_backbone("frame", ints)
    dyn = model([("x", TensorProto.FLOAT, ["N", 3, "H", "W"])], "dyn.onnx")
    with pytest.raises(OnnxEncoderError, match=r"no fixed square size: declare size=S"):
        build_backbone("frame", dyn)
    with pytest.raises(OnnxEncoderError, match=r"no float output of rank 3"):  # Identity: the image itself
        build_backbone("frame", dyn + "?size=8")
    with pytest.raises(OnnxEncoderError, match=r"unknown declaration \['colour'\]"):
        build_backbone("frame", dyn + "?colour=bgr")


def good_frame_backbone() -> nn.Module:
    return tiny_vit(image_size=32, patch=8, dim=16, depth=1, heads=2)


def wrong_shapes() -> nn.Module:
    bb = good_frame_backbone()
    bb.tokens_per_frame, bb.grid = 9, (3, 3)  # claims 3 x 3 tokens, gives 4 x 4
    return bb


def not_a_module():
    return "vit"


def test_module_callable_plugins(tmp_path):
    assert build_backbone("frame", "test_plugins:good_frame_backbone").out_dim == 16
    with pytest.raises(
        BackboneError, match=r"must return \(tokens \[2, 9, 16\], cls \[2, 16\]\).*got \(\[2, 16, 16\], \[2, 16\]\)"
    ):
        build_backbone("frame", "test_plugins:wrong_shapes")
    with pytest.raises(BackboneError, match="returned str, not a torch.nn.Module"):
        build_backbone("frame", "test_plugins:not_a_module")
    with pytest.raises(BackboneError, match="module 'test_plugins' has no attribute 'nope'"):
        build_backbone("frame", "test_plugins:nope")
    raw = {"name": "p", "family": "stgt", "output": str(tmp_path / "p")}
    with pytest.raises(
        ConfigError,
        match=r"frame_backbone 'no_such_pkg_h7.models:build': module 'no_such_pkg_h7.models' cannot be found",
    ):
        parse_config({**raw, "frame_backbone": "no_such_pkg_h7.models:build"}, "p.yaml")
    with pytest.raises(ConfigError, match=r"text_backbone onnx:PATH is for frame_backbone only"):
        parse_config({**raw, "text_backbone": "onnx:x.onnx"}, "p.yaml")
    with pytest.raises(ConfigError, match=r"frame_backbone 'hf-clip:/nonexistent/clip': .*config.json not found"):
        parse_config({**raw, "frame_backbone": "hf-clip:/nonexistent/clip"}, "p.yaml")
    with pytest.raises(
        ConfigError, match=r"frame_backbone must be one of \('efficientnet_lite0', 'tiny_vit'\), 'module:callable'"
    ):
        parse_config({**raw, "frame_backbone": "resnet"}, "p.yaml")


def plugin_config(tmp, frame: str, text: str) -> dict:
    """One epoch of STGT heads on 16 synthetic 32 px clips: a few optimiser steps."""
    return {
        "name": "plug",
        "family": "stgt",
        "frame_backbone": frame,
        "text_backbone": text,
        "data": {"train": 16, "val": 8, "seed": 0, "val_seed": 5, "frames": 4, "size": 32},
        "output": str(tmp / "run"),
        "cache": str(tmp / "cache"),
        "optim": {"epochs": 1, "batch_size": 8, "lr": 1e-3, "eval_every": 1, "max_minutes": 2.0},
        "model": {"dim": 32, "heads": 4, "queries": 2, "query_layers": 1, "embed_dim": 16},
    }


def serves(bundle, tmp, capsys, video_tower, text_tower) -> None:
    """The bundle reproduces the towers (>= 0.9999) and serves: Model, finsta-rt score and extract."""
    report = verify_bundle(bundle, video_tower, text_tower, seed=SEED % 1000)
    assert all(v >= 0.9999 for k, v in report.items() if k.endswith("_cosine_min")), report
    assert report["scores_max_abs_diff"] <= 1e-4, report
    video = write_video(tmp / "clip.mp4", moving_frames(12, 40, 48, seed=SEED % 1000))
    texts = ["a red square moves right", "a blue circle"]
    capsys.readouterr()
    assert cli.main(["score", str(bundle), "--video", str(video), *[a for t in texts for a in ("--text", t)]]) == 0
    printed = capsys.readouterr().out
    assert all(t in printed for t in texts), printed
    out = tmp / "features"
    assert cli.main(["extract", str(bundle), str(video), "-o", str(out), "-q"]) == 0
    (row,) = read_manifest(out).values()
    from finsta_rt import read_frames

    m = Model(bundle, device="cpu")
    clip = read_frames(str(video), f"uniform:{m.bundle.preprocess.frames}", transform=m.bundle.preprocess)
    want = m.embed_frames(clip.frames[None])["video_embedding"][0]
    np.testing.assert_allclose(np.load(out / row["file"]), want, atol=1e-5)


def test_onnx_frame_encoder_trains_exports_and_serves(tmp_path, capsys):
    """onnx:PATH: features cached through ONNX Runtime; the bundle's video graph is the user's encoder
    (converted from opset 17) inlined before our head, one graph without placeholders."""
    _, enc = save_encoder(tmp_path / "enc.onnx")
    cfg = parse_config(plugin_config(tmp_path, f"onnx:{enc}?mean=127.5,127.5,127.5&std=64,64,64", "tiny_text"))
    with replay_hint("onnx:PATH train/export/serve"):
        families.train(cfg, resume=False)
        bundle = families.export_run(tmp_path / "run", out_dir=tmp_path / "bundle", verify=False)  # serves() verifies
        graph = onnx.load(str(bundle / "video.onnx")).graph
        assert {n.domain for n in graph.node} <= {"", "finsta"} and any(
            n.name.startswith("encoder0/") for n in graph.node
        )
        video, text, _ = families.towers_from_run(tmp_path / "run")
        serves(bundle, tmp_path, capsys, video, text)


def test_hf_clip_frames_and_text_train_export_and_serve(tmp_path, clip_dir, capsys):
    """hf-clip:DIR on both sides: a clip_bpe bundle (vocab.json + merges.txt), exported with the public
    export_bundle from the run's own towers."""
    cfg = parse_config(plugin_config(tmp_path, f"hf-clip:{clip_dir}", f"hf-clip:{clip_dir}"))
    with replay_hint("hf-clip train/export/serve"):
        families.train(cfg, resume=False)
        heads, cfg, _ = families.load_run(tmp_path / "run")
        bb = build_backbones(cfg)
        spec = ExportSpec.for_text_backbone(
            "stgt", "clip", bb.preprocess, bb.text.config, {"stgt": heads.cfg.to_dict()}
        )
        video, text = VideoTower(bb.encoder, heads.video).eval(), TextTower(bb.text, heads.text).eval()
        bundle = export_bundle(video, text, spec, out_dir=tmp_path / "bundle", verify=False)  # serves() verifies
        assert Model(bundle, device="cpu").bundle.manifest["tokenizer"]["kind"] == "clip_bpe"
        serves(bundle, tmp_path, capsys, video, text)
