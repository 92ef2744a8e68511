"""S-ViLM bundles (family svilm) on the small test backbones, both flavours: every output of the
three graphs against PyTorch on fresh random frames and texts, the manifest, and the run-time
dispatch from a checkpoint (the family registry, finsta.families)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from finsta.export.bundle import ExportSpec
from finsta.models import backbones as bb
from finsta.models.svilm import TEXT_OUTPUTS, VIDEO_OUTPUTS, SViLMConfig, SViLMHeads, SViLMTextTower, SViLMVideoTower
from finsta.models.towers import FrameEncoder
from finsta.train.features import frame_preprocess
from finsta_rt.bundle import Bundle
from finsta_rt.model import Model

TEXTS = ["a large red circle moves left, then a small blue square appears", "a cat", "red circle"]


def tiny_svilm_towers(frames: int = 4, seed: int = 0):
    torch.manual_seed(seed)
    fb = bb.tiny_vit()
    tb = bb.tiny_text_transformer(vocab_file=bb.minilm_l6_vocab_file())
    pre = frame_preprocess(fb, frames)
    cfg = SViLMConfig(
        backbone_dim=fb.out_dim,
        text_dim=tb.out_dim,
        grid=tuple(fb.grid),
        frames=frames,
        dim=32,
        heads=4,
        layers=2,
        group_at=[1, 2],
        groups=4,
        embed_dim=16,
        scene_threshold=0.25,
    )
    heads = SViLMHeads(cfg).eval()
    spec = ExportSpec(
        "svilm",
        "tiny-svilm",
        pre,
        Path(tb.config.vocab_file),
        tb.config.lowercase,
        tb.config.max_length,
        {"svilm": cfg.to_dict()},
    )
    return (
        SViLMVideoTower(FrameEncoder(fb, pre.mean, pre.std), heads.video).eval(),
        SViLMTextTower(tb, heads.text).eval(),
        spec,
        heads,
    )


def _cos_rows(a, b) -> np.ndarray:
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("flavour", ["custom", "portable"])
def test_every_output_matches_pytorch(svilm_bundles, flavour):
    video, text, spec, paths = svilm_bundles
    model = Model(paths[flavour], device="cpu")
    rng = np.random.default_rng(123 + len(flavour))  # fresh inputs, not the exporter's
    S, T = spec.preprocess.size, spec.preprocess.frames
    frames = rng.integers(0, 256, (3, T, S, S, 3), dtype=np.uint8)
    got_v = model.embed_frames(frames)
    got_t = model.embed_texts(TEXTS)
    ids, mask = model.tokenizer(TEXTS)
    with torch.no_grad():
        ref_v = dict(zip(VIDEO_OUTPUTS, (t.numpy() for t in video(torch.from_numpy(frames)))))
        ref_t = dict(zip(TEXT_OUTPUTS, (t.numpy() for t in text(torch.from_numpy(ids), torch.from_numpy(mask)))))
    assert set(got_v) == set(VIDEO_OUTPUTS) and set(got_t) == set(TEXT_OUTPUTS)
    for name, ref in {**ref_v, **ref_t}.items():
        got = got_v.get(name, got_t.get(name))
        assert got.shape == ref.shape, name
        if np.issubdtype(ref.dtype, np.floating):
            if name == "scene_change":  # a vector of T values per clip; the first is exactly 0
                assert np.all(got[:, 0] == 0)
                np.testing.assert_allclose(got, ref, atol=1e-4)
            else:
                assert _cos_rows(got, ref).min() >= 0.9999, name
        else:
            assert got.dtype == np.int64 and np.array_equal(got, ref), name
    scores = model.score(got_v["video_embedding"], got_t["text_embedding"])
    ref_scores = np.einsum(
        "vqe,te->tvq", ref_v["video_embedding"].astype(np.float64), ref_t["text_embedding"].astype(np.float64)
    ).max(-1)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-4)


def test_outputs_are_consistent(svilm_bundles):
    """Properties of the runtime outputs, checked in float64: assignment = argmax of the probabilities,
    scene change = 1 - cosine of consecutive frame features, embeddings unit length."""
    video, text, spec, paths = svilm_bundles
    model = Model(paths["custom"], device="cpu")
    rng = np.random.default_rng(7)
    S, T = spec.preprocess.size, spec.preprocess.frames
    v = model.embed_frames(rng.integers(0, 256, (2, T, S, S, 3), dtype=np.uint8))
    assert np.array_equal(v["group_assignment"], v["group_probs"].argmax(-1))
    np.testing.assert_allclose(v["group_probs"].astype(np.float64).sum(-1), 1.0, atol=1e-5)
    f = v["frame_features"].astype(np.float64)
    want = 1 - (f[:, 1:] * f[:, :-1]).sum(-1) / np.linalg.norm(f[:, 1:], axis=-1) / np.linalg.norm(f[:, :-1], axis=-1)
    np.testing.assert_allclose(v["scene_change"][:, 1:], want, atol=1e-5)
    for k in ("video_global", "group_features", "frame_features"):
        np.testing.assert_allclose(np.linalg.norm(v[k].astype(np.float64), axis=-1), 1.0, atol=1e-5)


def test_more_frames_than_trained(svilm_bundles):
    """T is a dynamic axis of the video graph: a 6-frame clip (trained T=4) still matches PyTorch."""
    video, text, spec, paths = svilm_bundles
    model = Model(paths["portable"], device="cpu")
    S = spec.preprocess.size
    frames = np.random.default_rng(5).integers(0, 256, (1, 6, S, S, 3), dtype=np.uint8)
    got = model.embed_frames(frames)
    with torch.no_grad():
        ref = video(torch.from_numpy(frames))
    assert got["scene_change"].shape == (1, 6)
    assert _cos_rows(got["group_features"], ref[2].numpy()).min() >= 0.9999
    assert np.array_equal(got["group_assignment"], ref[3].numpy())


def test_manifest_names_the_family_and_outputs(svilm_bundles):
    _, _, spec, paths = svilm_bundles
    for fl, p in paths.items():
        b = Bundle.load(p)
        assert b.family == "svilm" and b.flavour == fl
        assert [o.name for o in b.graphs["video"].outputs] == list(VIDEO_OUTPUTS)
        assert [o.name for o in b.graphs["text"].outputs] == list(TEXT_OUTPUTS)
        m = yaml.safe_load((p / "bundle.yaml").read_text())
        assert m["model"]["svilm"]["scene_threshold"] == 0.25
        assert m["model"]["svilm"]["groups"] == 4


def test_export_from_a_run_dispatches_on_family(tmp_path):
    """The registry rebuilds an svilm checkpoint's towers (state saved as the training loop saves it)."""
    from finsta.families import parse_config, towers_and_scorer_from_run
    from finsta.train.fit import save_checkpoint

    cfg = parse_config(
        {
            "family": "svilm",
            "name": "s",
            "frame_backbone": "tiny_vit",
            "text_backbone": "tiny_text",
            "model": {"dim": 32, "heads": 4, "groups": 4, "embed_dim": 16},
            "data": {"frames": 4, "size": 64},
            "output": str(tmp_path),
        }
    )
    fb, tb = bb.tiny_vit(), bb.tiny_text_transformer(vocab_file=bb.minilm_l6_vocab_file())
    scfg = SViLMConfig(
        backbone_dim=fb.out_dim,
        text_dim=tb.out_dim,
        grid=tuple(fb.grid),
        frames=4,
        dim=32,
        heads=4,
        groups=4,
        embed_dim=16,
        scene_threshold=0.3,
    )
    heads = SViLMHeads(scfg)
    opt = torch.optim.AdamW(heads.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": 1, "train_seconds": 1.0}
    save_checkpoint(tmp_path / "checkpoint.pt", heads, "svilm_config", scfg.to_dict(), cfg, state, {"r1": 0.5})
    v, t, spec, scorer = towers_and_scorer_from_run(tmp_path)
    assert isinstance(v, SViLMVideoTower) and isinstance(t, SViLMTextTower) and scorer is None
    assert spec.family == "svilm" and spec.model_config["svilm"]["scene_threshold"] == 0.3
    x = torch.randint(0, 256, (1, 4, spec.preprocess.size, spec.preprocess.size, 3), dtype=torch.uint8)
    with torch.no_grad():
        a = v(x)[2]
        heads.eval()
        b = heads.video(v.encoder(x))[2]
    torch.testing.assert_close(a, b)
