"""Bundles: export (both flavours) with the small test backbones, parity with PyTorch through
finsta_rt, self-description, integrity and safety checks, and loading without torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml
from test_no_torch import BLOCK_TORCH

from finsta.export.bundle import ExportSpec, default_bundle_dir, export_bundle, export_bundles
from finsta.models import backbones as bb
from finsta.models.stgt import STGTConfig, STGTHeads, similarity
from finsta.models.towers import FrameEncoder, TextTower, VideoTower
from finsta.train.features import frame_preprocess
from finsta_rt.bundle import Bundle, BundleError
from finsta_rt.model import Model

TEXTS = ["a large red circle moves left, then a small blue square appears", "a cat", "Ünïcödé text, with punctuation!"]


def tiny_towers(frames: int = 4):
    torch.manual_seed(0)
    fb = bb.tiny_vit()
    tb = bb.tiny_text_transformer(vocab_file=bb.minilm_l6_vocab_file())
    pre = frame_preprocess(fb, frames)
    cfg = STGTConfig(
        backbone_dim=fb.out_dim,
        text_dim=tb.out_dim,
        grid=tuple(fb.grid),
        frames=frames,
        dim=64,
        heads=4,
        queries=4,
        embed_dim=32,
        sim_threshold=0.0,
    )
    heads = STGTHeads(cfg)
    spec = ExportSpec(
        "stgt", "tiny", pre, Path(tb.config.vocab_file), tb.config.lowercase, tb.config.max_length, cfg.to_dict()
    )
    return VideoTower(FrameEncoder(fb, pre.mean, pre.std), heads.video).eval(), TextTower(tb, heads.text).eval(), spec


@pytest.fixture
def exported(tiny_bundles):
    return tiny_bundles


def torch_reference(video, text, frames: np.ndarray, ids: np.ndarray, mask: np.ndarray):
    with torch.no_grad():
        zv, zg, tokens = video(torch.from_numpy(frames))
        zt = text(torch.from_numpy(ids), torch.from_numpy(mask))
        return zv.numpy(), zg.numpy(), tokens.numpy(), zt.numpy(), similarity(zv, zt).numpy()


def cos(a, b):
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("flavour", ["custom", "portable"])
@pytest.mark.parametrize("B,T", [(1, 4), (3, 4), (2, 7), (2, 2)])
def test_bundle_matches_pytorch(exported, flavour, B, T):
    video, text, spec, paths = exported
    model = Model(paths[flavour], device="cpu")
    S = spec.preprocess.size
    frames = np.random.default_rng().integers(0, 256, (B, T, S, S, 3), dtype=np.uint8)
    ids, mask = model.tokenizer(TEXTS)
    zv, zg, tokens, zt, scores = torch_reference(video, text, frames, ids, mask)
    out = model.embed_frames(frames)
    assert cos(out["video_embedding"], zv).min() >= 0.9999 and cos(out["video_global"], zg).min() >= 0.9999
    assert cos(out["video_tokens"], tokens).min() >= 0.9999
    t = model.embed_text(TEXTS)
    assert cos(t, zt).min() >= 0.9999
    assert np.abs(model.score(out["video_embedding"], t) - scores).max() <= 1e-4


def test_every_file_passes_onnx_checker_and_describes_itself(exported):
    *_, spec, paths = exported
    for flavour, path in paths.items():
        for graph in ("video", "text", "scorer"):
            proto = onnx.load(path / f"{graph}.onnx")
            onnx.checker.check_model(proto, full_check=flavour == "portable")
            meta = {p.key: p.value for p in proto.metadata_props}
            assert json.loads(meta["finsta.preprocess"]) == spec.preprocess.to_dict()
            assert meta["finsta.graph"] == graph and meta["finsta.flavour"] == flavour
            custom = [n for n in proto.graph.node if n.domain == "finsta"]
            assert bool(custom) == (graph == "video")  # STGraphAttention lives in the video tower
            assert bool(proto.functions) == (flavour == "portable" and graph == "video")


def test_manifest_lists_files_hashes_and_ops(exported):
    *_, paths = exported
    b = Bundle.load(paths["custom"])
    assert b.requires_op_library and not Bundle.load(paths["portable"]).requires_op_library
    assert set(b.manifest["files"]) == {"video.onnx", "text.onnx", "scorer.onnx", "vocab.txt"}
    assert b.manifest["custom_ops"][0]["ops"] == ["STGraphAttention"]
    assert b.graphs["video"].inputs[0].dtype == "uint8"


def test_portable_bundle_runs_in_stock_onnxruntime(exported, monkeypatch, tmp_path):
    video, text, spec, paths = exported
    monkeypatch.setenv("FINSTA_OPS_DIR", str(tmp_path))  # no op library can be found
    model = Model(paths["portable"], device="cpu")
    frames = np.random.default_rng().integers(0, 256, (2, 4, 64, 64, 3), dtype=np.uint8)
    zv = torch_reference(video, text, frames, *model.tokenizer(TEXTS))[0]
    assert cos(model.embed_frames(frames)["video_embedding"], zv).min() >= 0.9999
    with pytest.raises(Exception, match="make ops"):
        Model(paths["custom"], device="cpu")


def test_fresh_process_without_torch_reproduces_the_numbers(exported, tmp_path):
    video, text, spec, paths = exported
    frames = np.random.default_rng().integers(0, 256, (2, 4, 64, 64, 3), dtype=np.uint8)
    np.save(tmp_path / "frames.npy", frames)
    script = BLOCK_TORCH + textwrap.dedent(f"""
        import json, numpy as np
        from finsta_rt.model import Model
        m = Model({str(paths["custom"])!r}, device="cpu")
        v = m.embed_frames(np.load({str(tmp_path / "frames.npy")!r}))["video_embedding"]
        t = m.embed_text({TEXTS!r})
        np.savez({str(tmp_path / "out.npz")!r}, v=v, t=t, s=m.score(v, t))
        assert "torch" not in sys.modules
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = np.load(tmp_path / "out.npz")
    tok = Bundle.load(paths["custom"]).tokenizer()
    zv, _, _, zt, scores = torch_reference(video, text, frames, *tok(TEXTS))
    assert cos(got["v"], zv).min() >= 0.9999 and cos(got["t"], zt).min() >= 0.9999
    assert np.abs(got["s"] - scores).max() <= 1e-4


# ---- integrity and safety ----


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(src, dst)
    return dst


def test_altered_file_fails_sha256_naming_the_file(exported, tmp_path):
    b = _copy(exported[3]["custom"], tmp_path)
    with open(b / "scorer.onnx", "r+b") as f:
        f.seek(100)
        f.write(b"\x00")
    with pytest.raises(BundleError, match="scorer.onnx fails its sha256 check"):
        Bundle.load(b)
    shutil.rmtree(b)
    b = _copy(exported[3]["custom"], tmp_path)
    (b / "vocab.txt").unlink()
    with pytest.raises(BundleError, match="vocab.txt is missing"):
        Bundle.load(b)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda m: m["graphs"]["video"].update(file="../../etc/passwd"), "leaves the bundle directory"),
        (lambda m: m["graphs"]["video"].update(file="/etc/passwd"), "leaves the bundle directory"),
        (lambda m: m["files"].update({"../x": "0"}), "leaves the bundle directory"),
        (lambda m: m.update(format_version=99), "format_version 99 is not supported"),
        (lambda m: m.update(family="../clip"), "family must be a plain name"),
        (lambda m: m.update(flavour="fast"), "flavour must be one of custom, portable, flat, got str 'fast'"),
        (lambda m: m["graphs"].pop("text"), "graphs.text is missing"),
        (lambda m: m["files"].pop("video.onnx"), "video.onnx has no sha256"),
        (lambda m: m.pop("tokenizer"), "tokenizer is missing"),
        (lambda m: m["preprocess"].update(size=-3), r"preprocess\.size must be an integer in \[1, 65536\], got int -3"),
        (lambda m: m["preprocess"].update(resize="zoom"), "preprocess: preprocess resize must be one of"),
    ],
)
def test_bad_manifest_gives_clear_error(exported, tmp_path, edit, message):
    b = _copy(exported[3]["custom"], tmp_path)
    m = yaml.safe_load((b / "bundle.yaml").read_text())
    edit(m)
    (b / "bundle.yaml").write_text(yaml.safe_dump(m))
    with pytest.raises(BundleError, match=message):
        Bundle.load(b)


def test_symlink_escaping_the_bundle_is_refused(exported, tmp_path):
    b = _copy(exported[3]["custom"], tmp_path)
    outside = tmp_path / "outside.onnx"
    shutil.copy(b / "scorer.onnx", outside)
    (b / "scorer.onnx").unlink()
    (b / "scorer.onnx").symlink_to(outside)
    with pytest.raises(BundleError, match="resolves outside the bundle directory"):
        Bundle.load(b)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        Bundle.load(tmp_path / "nope")
    with pytest.raises(BundleError, match="bundle.yaml is missing"):
        Bundle.load(tmp_path)
    (tmp_path / "bundle.yaml").write_text("!!python/object/apply:os.system ['echo pwned']")
    with pytest.raises(BundleError, match="not valid YAML"):  # safe_load refuses python tags
        Bundle.load(tmp_path)


def test_export_refuses_existing_and_unwritable_targets(exported, tmp_path):
    video, text, spec, paths = exported
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        export_bundle(video, text, spec, out_dir=paths["custom"])
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if not __import__("os").access(ro, __import__("os").W_OK):  # root ignores permissions
            with pytest.raises(PermissionError, match="not writable"):
                export_bundle(video, text, spec, out_dir=ro / "b")
        with pytest.raises(PermissionError, match="not writable"):
            export_bundle(video, text, spec, out_dir=Path("/proc/finsta-bundle"))
    finally:
        ro.chmod(0o700)
    assert not list(tmp_path.glob(".b.*")), "a failed export left a temporary directory"
    # several flavours from one trace: each its own folder, every target checked before anything is traced
    with pytest.raises(ValueError, match="each flavour needs its own directory"):
        export_bundles(video, text, spec, {"custom": tmp_path / "x", "portable": tmp_path / "x"})
    with pytest.raises(ValueError, match="flavour must be 'custom' or 'portable', got 'flat'"):
        export_bundles(video, text, spec, {"custom": tmp_path / "c", "flat": tmp_path / "f"})
    with pytest.raises(FileExistsError, match="already exists"):
        export_bundles(video, text, spec, {"custom": tmp_path / "new", "portable": paths["portable"]})
    assert not (tmp_path / "new").exists()


def test_default_bundle_names():
    assert default_bundle_dir("stgt", "custom") == Path("bundles/stgt")
    assert default_bundle_dir("stgt", "portable") == Path("bundles/stgt-portable")


def test_meanpool_bundle_declares_the_token_shape_it_returns(tmp_path):
    """The meanpool baseline returns one pooled token per video whatever T is: its bundle must declare
    [B, 1, D], not a per-frame count (it was declared T*0)."""
    video, text, spec = tiny_towers()
    cfg = STGTConfig.from_dict(spec.model_config)
    heads = STGTHeads(cfg, "meanpool")
    video = VideoTower(video.encoder, heads.video).eval()
    path = export_bundle(video, TextTower(text.backbone, heads.text).eval(), spec, out_dir=tmp_path / "mp")
    declared = {t.name: t.shape for t in Bundle.load(path).graphs["video"].outputs}["video_tokens"]
    model = Model(path, device="cpu")
    for T in (2, 4, 7):
        frames = np.random.default_rng(T).integers(0, 256, (2, T, *[spec.preprocess.size] * 2, 3), dtype=np.uint8)
        got = model.embed_frames(frames)["video_tokens"].shape
        assert declared[0] == "B" and declared[1:] == list(got[1:]), (T, declared, got)
