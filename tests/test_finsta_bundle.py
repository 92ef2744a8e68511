"""A finsta bundle (tiny backbones, random heads) against PyTorch in both flavours: every output of
the three graphs on fresh frames, texts and user video graphs; the runtime's automatic text
parsing; the score command's parts; bad user graphs and misuse give clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from finsta.export.bundle import ExportSpec
from finsta.families.finsta import finsta_text_feed
from finsta.models import backbones as bb
from finsta.models.finsta import (
    SCORER_OUTPUTS,
    TEXT_INPUTS,
    TEXT_OUTPUTS,
    VIDEO_OUTPUTS,
    FinstaConfig,
    FinstaScorer,
    FinstaScorerTower,
    FinstaText,
    FinstaTextTower,
    FinstaVideo,
    FinstaVideoTower,
)
from finsta.models.stgt import STGTConfig, STGTHeads
from finsta.models.towers import FrameEncoder
from finsta.train.features import frame_preprocess
from finsta_rt.model import Model
from finsta_rt.scene_graph import rule_parse

T, K, N = 4, 3, 12
TEXTS = [
    "first a small red circle moves left, then a large blue square appears",
    "a large green triangle moves up past a small yellow diamond",
    "the cat",
]


def finsta_towers():
    torch.manual_seed(0)
    fb = bb.tiny_vit()
    tb = bb.tiny_text_transformer(vocab_file=bb.minilm_l6_vocab_file())
    pre = frame_preprocess(fb, T)
    scfg = STGTConfig(
        backbone_dim=fb.out_dim,
        text_dim=tb.out_dim,
        grid=tuple(fb.grid),
        frames=T,
        dim=64,
        heads=4,
        queries=4,
        embed_dim=32,
        sim_threshold=0.0,
    )
    host = STGTHeads(scfg)
    fcfg = FinstaConfig(
        backbone_dim=fb.out_dim,
        text_dim=tb.out_dim,
        grid=tuple(fb.grid),
        frames=T,
        host_embed_dim=32,
        dim=32,
        heads=4,
        slots=K,
        max_nodes=N,
    )
    fv, ft, fs = FinstaVideo(fcfg), FinstaText(fcfg), FinstaScorer(fcfg)
    with torch.no_grad():  # the fusion starts as the host; move it so that the test sees Finsta's effect
        for fusion in (fv.fusion, ft.fusion):
            fusion.proj.weight.normal_(0, 0.3)
        fs.weights_raw.fill_(0.5)
    spec = ExportSpec(
        "finsta",
        "tiny-finsta",
        pre,
        Path(tb.config.vocab_file),
        tb.config.lowercase,
        tb.config.max_length,
        {"finsta": fcfg.to_dict()},
    )
    video = FinstaVideoTower(FrameEncoder(fb, pre.mean, pre.std), host.video, fv).eval()
    text = FinstaTextTower(tb, host.text, ft).eval()
    return video, text, FinstaScorerTower(fs).eval(), spec


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def user_graph(rng, B: int) -> dict[str, np.ndarray]:
    x0y0 = rng.uniform(0, 0.5, (B, T, K, 2))
    box = np.concatenate([x0y0, x0y0 + rng.uniform(0.05, 0.5, (B, T, K, 2))], -1).astype(np.float32)
    mask = rng.random((B, T, K)) < 0.6
    adj = rng.random((B, T, K, K)) < 0.4
    adj = adj | adj.transpose(0, 1, 3, 2) | np.eye(K, dtype=bool)
    return {"slot_box": box, "slot_mask": mask, "slot_adj": adj}


@pytest.mark.parametrize("flavour", ["custom", "portable"])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_output_equals_pytorch(finsta_bundles, flavour, seed):
    video, text, scorer, spec, paths = finsta_bundles
    model = Model(paths[flavour], device="cpu")
    assert model.bundle.family == "finsta" and model.text_graph_inputs
    rng = np.random.default_rng(seed)
    B = 3
    frames = rng.integers(0, 256, (B, T, spec.preprocess.size, spec.preprocess.size, 3), dtype=np.uint8)
    ug = user_graph(rng, B)
    ug["slot_mask"][0] = False  # one video without a user graph: the learned slots
    got_v = model.embed_frames(frames, user_graph=ug)
    got_t = model.embed_texts(TEXTS)
    got_s = model.score_parts(got_v, got_t)
    tok = model.tokenizer
    feed = finsta_text_feed(TEXTS, tok, N, "rules")  # the exporter's own feed builder, checked below too
    with torch.no_grad():
        ref_v = dict(
            zip(
                VIDEO_OUTPUTS,
                video(
                    torch.from_numpy(frames), *(torch.from_numpy(ug[k]) for k in ("slot_box", "slot_mask", "slot_adj"))
                ),
            )
        )
        ref_t = dict(zip(TEXT_OUTPUTS, text(*(feed[k] for k in TEXT_INPUTS))))
        ref_s = dict(
            zip(
                SCORER_OUTPUTS,
                scorer(
                    ref_v["video_embedding"],
                    ref_v["video_tracks"],
                    ref_v["video_frames"],
                    ref_v["video_graph"],
                    *(ref_t[k] for k in TEXT_OUTPUTS),
                ),
            )
        )
    for name, ref in {**ref_v, **ref_t}.items():
        got = got_v.get(name, got_t.get(name))
        if ref.dtype.is_floating_point:
            assert cosine_rows(got, ref.numpy()).min() >= 0.9999, name
        else:
            np.testing.assert_array_equal(got, ref.numpy(), err_msg=name)
    for name, ref in ref_s.items():
        np.testing.assert_allclose(got_s[name], ref.numpy(), atol=1e-4, err_msg=name)
    # the user graph changes the video's slots, so it must change its outputs
    plain = model.embed_frames(frames)
    assert np.allclose(plain["video_tracks"][0], got_v["video_tracks"][0], atol=1e-5)
    assert not np.allclose(plain["video_tracks"][1:], got_v["video_tracks"][1:], atol=1e-3)


def test_runtime_parses_texts_like_the_parser(finsta_bundles):
    """The text feed the runtime builds: spans of each object node cover exactly its word's tokens."""
    *_, paths = finsta_bundles
    model = Model(paths["custom"], device="cpu")
    feed = model.text_inputs(TEXTS)
    for b, t in enumerate(TEXTS):
        g = rule_parse(t)
        objects = [n for n in g.nodes if n.kind == "object"]
        assert int((feed["node_type"][b] == 1).sum()) == len(objects)
        ids, offsets = model.tokenizer.encode_with_offsets(t)
        assert feed["input_ids"][b][: len(ids)].tolist() == ids
        for n, node in zip(np.flatnonzero(feed["node_type"][b] == 1), objects):
            s, e = feed["node_span"][b, n]
            # the node's tokens are exactly those whose characters lie inside the node's words
            assert offsets[s][0] == node.start and offsets[e - 1][1] == node.end, (t, node)
            assert t[offsets[s][0] : offsets[e - 1][1]] == node.text
        assert feed["adj"][b].diagonal().all() and (feed["adj"][b] == feed["adj"][b].T).all()


def test_misuse_gives_clear_errors(finsta_bundles, tiny_bundles):
    *_, paths = finsta_bundles
    model = Model(paths["custom"], device="cpu")
    S = model.bundle.preprocess.size
    frames = np.zeros((1, T, S, S, 3), np.uint8)
    with pytest.raises(ValueError, match="slot_box must be float32 \\[1, 4, 3, 4\\].*got shape"):
        model.embed_frames(
            frames,
            user_graph={
                "slot_box": np.zeros((1, T, K + 1, 4)),
                "slot_mask": np.zeros((1, T, K), bool),
                "slot_adj": np.ones((1, T, K, K), bool),
            },
        )
    with pytest.raises(ValueError, match="exactly T=4 frames"):
        model.embed_frames(np.zeros((1, T + 1, S, S, 3), np.uint8))
    with pytest.raises(ValueError, match="use score_parts"):
        model.score(np.zeros((1, 4, 32), np.float32), np.zeros((1, 32), np.float32))
    stgt = Model(tiny_bundles[3]["custom"], device="cpu")
    S2, T2 = stgt.bundle.preprocess.size, stgt.bundle.preprocess.frames
    with pytest.raises(ValueError, match="takes no user video graph"):
        stgt.embed_frames(np.zeros((1, T2, S2, S2, 3), np.uint8), user_graph={})


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "finsta_rt.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from media import write_video

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    frames = np.zeros((16, 64, 64, 3), np.uint8)
    for i in range(16):
        frames[i, 20:40, 4 * i : 4 * i + 12] = (255, 0, 0)
    write_video(path, frames, fps=8)
    return path


def test_score_command_prints_the_parts_and_takes_user_graphs(finsta_bundles, clip, tmp_path):
    *_, paths = finsta_bundles
    graph = {
        "units": "normalized",
        "frames": [
            {
                "t": 0,
                "objects": [{"id": "a", "box": [0.1, 0.3, 0.3, 0.6]}, {"id": "b", "box": [0.6, 0.6, 0.9, 0.9]}],
                "relations": [{"subject": "a", "predicate": "left of", "object": "b"}],
            },
            {"t": 3, "objects": [{"id": "a", "box": [0.6, 0.3, 0.8, 0.6]}]},
        ],
    }
    gpath = tmp_path / "graph.json"
    gpath.write_text(json.dumps(graph))
    texts = ["a red square moves right", "a blue circle appears"]
    for extra in ([], ["--graph", str(gpath)]):
        proc = run_cli(
            "score",
            str(paths["custom"]),
            "--video",
            str(clip),
            "--text",
            texts[0],
            "--text",
            texts[1],
            "--device",
            "cpu",
            *extra,
        )
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0].split() == ["rank", "score", "global", "spatial", "temporal", "holistic", "text"]
        rows = [ln.split(None, 6) for ln in lines[1:]]
        assert sorted(r[6] for r in rows) == sorted(texts)
        scores = [float(r[1]) for r in rows]
        assert scores == sorted(scores, reverse=True)
    # malformed user graphs: the problem is named, nothing runs
    bad = {
        "unknown id": (
            {
                "units": "normalized",
                "frames": [
                    {
                        "t": 0,
                        "objects": [{"id": "a", "box": [0.1, 0.1, 0.2, 0.2]}],
                        "relations": [{"subject": "a", "predicate": "on", "object": "zz"}],
                    }
                ],
            },
            "zz",
        ),
        "outside": (
            {"units": "normalized", "frames": [{"t": 0, "objects": [{"id": "a", "box": [0.1, 0.1, 1.2, 0.2]}]}]},
            "outside the frame",
        ),
        "too many": (
            {
                "units": "normalized",
                "frames": [
                    {
                        "t": 0,
                        "objects": [{"id": str(i), "box": [0.1 * i, 0.1, 0.1 * i + 0.05, 0.2]} for i in range(K + 1)],
                    }
                ],
            },
            "more",
        ),
        "frame": ({"units": "normalized", "frames": [{"t": T, "objects": []}]}, "out of range"),
    }
    for name, (doc, needle) in bad.items():
        gpath.write_text(json.dumps(doc))
        proc = run_cli(
            "score", str(paths["custom"]), "--video", str(clip), "--text", "x", "--graph", str(gpath), "--device", "cpu"
        )
        assert proc.returncode == 2 and needle in proc.stderr and str(gpath) in proc.stderr, (name, proc.stderr)
