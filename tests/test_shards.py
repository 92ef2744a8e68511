"""Sharded, collision-free extraction: ``--shard I/N`` (a stable hash of the path), concurrent runs into
one folder, the packed layout, ``--outputs`` and the one reader of a folder (finsta_rt.feature_store)."""

from __future__ import annotations

import errno
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import SEED, replay_hint
from media import moving_frames, write_video

from finsta_rt.extract import extract, parse_shard, read_manifest, shard_of
from finsta_rt.feature_store import FeatureStore, FeatureStoreError
from finsta_rt.model import Model

CLI = [sys.executable, "-m", "finsta_rt.cli"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(SEED % 2**32)
    return [
        write_video(d / f"c{i:02d}.mp4", moving_frames(8, seed=int(rng.integers(1 << 30))), fps=8) for i in range(8)
    ]


@pytest.fixture(scope="module")
def model(tiny_bundles) -> Model:
    return Model(tiny_bundles[3]["custom"], device="cpu", threads=1)


def test_shard_of_is_a_stable_hash_of_the_path_whatever_the_order():
    keys = [f"/videos/{i:05d}.mp4" for i in range(2000)]
    with replay_hint("shard_of over 2000 keys"):
        for n in (1, 2, 7):
            want = [int(hashlib.sha256(k.encode()).hexdigest()[:16], 16) % n for k in keys]  # independent reference
            assert [shard_of(k, n) for k in keys] == want
            assert [shard_of(k, n) for k in reversed(keys)] == want[::-1]
        counts = np.bincount([shard_of(k, 4) for k in keys], minlength=4)
        assert counts.min() > 400, counts  # roughly even (2000 / 4 = 500)
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "1", "-1/2", "a/b", "1/0"):
        with pytest.raises(ValueError, match="--shard must be I/N"):
            parse_shard(bad)


def test_two_concurrent_shards_then_a_resumed_run(tiny_bundles, videos, model, tmp_path):
    """--shard 0/2 and 1/2 at once into one packed folder with every output, then a third run over all:
    every video exactly once, nothing partial, and the same arrays as a per-video extraction."""
    out = tmp_path / "packed"
    bundle = str(tiny_bundles[3]["custom"])
    common = ["-o", str(out), "-q", "--layout", "packed", "--outputs", "all", "--pack-size", "2", "--threads", "1"]
    procs = [
        subprocess.Popen(
            [*CLI, "extract", bundle, *map(str, videos), *common, "--shard", f"{i}/2"],
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for i in range(2)
    ]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    mine = [sum(shard_of(str(v.resolve()), 2) == i for v in videos) for i in range(2)]
    for (rc, so, se), n in zip(results, mine, strict=True):
        assert rc == 0 and "Traceback" not in se, se
        assert f"{n} extracted, 0 already done, 0 failed" in so, so
    s = extract(model, videos, out, layout="packed", outputs="all", pack_size=2, progress=False)
    assert (s.total, s.done, s.skipped, s.failed) == (8, 0, 8, 0), s
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["path"] for r in lines) == sorted(str(v.resolve()) for v in videos)  # each once
    assert not [p.name for p in out.rglob("*") if ".tmp" in p.name]
    assert not (out / "features").exists() and len(list((out / "packs").glob("*.video_embedding.npy"))) >= 2

    ref = tmp_path / "per-video"
    extract(model, videos, ref, outputs="all", progress=False)
    packed, per_video = FeatureStore(out), FeatureStore(ref)
    names = [t.name for t in model.bundle.graphs["video"].outputs]
    assert packed.outputs == per_video.outputs == names and packed.layout == "packed"
    assert packed.paths == per_video.paths == sorted(str(v.resolve()) for v in videos)
    for name in names:
        a, b = packed.array(name), per_video.array(name)
        assert a.shape[0] == 8 and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5, err_msg=name)  # two processes vs one, same clips
    # the per-video layout keeps the first format's fields, which older readers use
    r = next(iter(read_manifest(ref).values()))
    assert np.load(ref / r["file"]).shape == tuple(r["shape"]) == tuple(r["outputs"]["video_embedding"]["shape"])
    with pytest.raises(Exception, match="holds layout packed"):  # a folder is resumed with its own options
        extract(model, videos, out, layout="per-video", outputs="all", progress=False)
    with pytest.raises(ValueError, match=r"outputs video_tokenz: the video graph of .* has video_embedding, "):
        extract(model, videos, tmp_path / "typo", outputs="video_embedding,video_tokenz", progress=False)


def test_a_pack_that_cannot_be_written_fails_its_videos_only(model, videos, tmp_path, monkeypatch):
    real_save, calls = np.save, []

    def save(f, arr, *a, **k):
        calls.append(1)
        if len(calls) == 2:  # the first pack's second output: half written, then the disk is full
            real_save(f, arr[: arr.shape[0] // 2], *a, **k)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(f, arr, *a, **k)

    monkeypatch.setattr(np, "save", save)
    out = tmp_path / "out"
    outputs = ["video_embedding", "video_global"]
    s = extract(model, videos[:5], out, layout="packed", outputs=outputs, pack_size=2, batch_size=1, progress=False)
    assert (s.done, s.failed) == (3, 2), s
    assert all("No space left on device" in why for _, why in s.failures)
    assert not [p.name for p in out.rglob("*") if ".tmp" in p.name]
    assert len(list((out / "packs").iterdir())) == 2 * 2  # two packs of two outputs; the failed one removed
    monkeypatch.setattr(np, "save", real_save)
    s = extract(model, videos[:5], out, layout="packed", outputs=outputs, pack_size=2, progress=False)
    assert (s.done, s.skipped, s.failed) == (2, 3, 0), s  # resume redoes exactly the failed pack's videos
    assert len(FeatureStore(out).array("video_global")) == 5


def _folder(tmp_path: Path, sampling: str, arrays: dict[str, np.ndarray]) -> Path:
    """A folder of the first format (rows with file and shape only, no layout or outputs recorded)."""
    d = tmp_path / "old"
    (d / "features").mkdir(parents=True)
    (d / "extract.json").write_text(json.dumps({"bundle": "b", "bundle_sha256": "x", "sampling": sampling}))
    rows = []
    for name, a in arrays.items():
        np.save(d / "features" / f"{name}.npy", a)
        rows.append({"path": f"/v/{name}", "status": "ok", "file": f"features/{name}.npy", "shape": list(a.shape)})
    rows.append({"path": "/v/bad", "status": "failed", "error": "not a readable video"})
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"path": "/v/torn"')
    return d


@pytest.mark.parametrize("sampling", ["uniform:4", "segments:3"])
def test_feature_store_reads_the_first_format(tmp_path, sampling):
    rng = np.random.default_rng([SEED, len(sampling)])
    shape = (3, 2, 5) if sampling.startswith("segments") else (2, 5)
    arrays = {n: rng.standard_normal(shape).astype(np.float32) for n in ("c", "a", "b")}
    store = FeatureStore(_folder(tmp_path, sampling, arrays))
    with replay_hint(f"first-format folder, {sampling}"):
        assert store.paths == ["/v/a", "/v/b", "/v/c"] and store.outputs == ["video_embedding"]
        want = np.concatenate([arrays[n].reshape(-1, 2, 5) for n in "abc"])
        np.testing.assert_array_equal(store.array(), want)
        clips = 3 if sampling.startswith("segments") else 1
        assert store.owner.tolist() == [i for i in range(3) for _ in range(clips)]
        assert store.segment == ([0, 1, 2] * 3 if clips == 3 else [None] * 3)


def test_feature_store_errors_name_the_file(tmp_path):
    with pytest.raises(FeatureStoreError, match="not an extraction folder"):
        FeatureStore(tmp_path / "missing")
    d = _folder(tmp_path, "uniform:4", {"a": np.zeros((2, 5), np.float32), "b": np.zeros((3, 5), np.float32)})
    with pytest.raises(FeatureStoreError, match=r"b\.npy: video_embedding of shape \[3, 5\]"):
        FeatureStore(d).array()
    with pytest.raises(FeatureStoreError, match="output 'video_tokens' was not saved"):
        FeatureStore(d).array("video_tokens")
    (d / "features" / "a.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(FeatureStoreError, match=r"cannot read .*a\.npy"):
        FeatureStore(d).array()
    (d / "extract.json").write_text("[1, 2")
    with pytest.raises(FeatureStoreError, match="cannot read .*extract.json"):
        FeatureStore(d)


def _info(layout: str) -> dict:
    return {"bundle": "b", "bundle_sha256": "x", "sampling": "uniform:4", "layout": layout, "outputs": ["o"]}


@pytest.mark.parametrize("layout", ["per-video", "packed"])
def test_writers_interleaved_with_compaction_lose_no_row(tmp_path, layout):
    """Writer A compacts (replacing the manifest) while B still writes; a third dies mid-row: B reopens the
    manifest, ends the torn line, and every row is there once."""
    from finsta_rt.feature_writer import FeatureWriter

    rng = np.random.default_rng([SEED, len(layout)])
    arrays = {k: {"o": rng.standard_normal((1, 3)).astype(np.float32)} for k in ("/v/x", "/v/y", "/v/z", "/v/w")}
    a = FeatureWriter(tmp_path, _info(layout), pack_size=1)
    b = FeatureWriter(tmp_path, _info(layout), pack_size=1)
    assert a.ok("/v/x", arrays["/v/x"], [0.5], "x") == [] and b.ok("/v/y", arrays["/v/y"], [0.5], "y") == []
    a.close()  # compaction: a new manifest file
    with open(tmp_path / "manifest.jsonl", "ab") as f:
        f.write(b'{"path": "/v/torn", "sta')  # a writer killed mid-row
    b.ok("/v/z", arrays["/v/z"], [0.5], "z")  # B reopens the new manifest and ends the torn line
    with open(tmp_path / "manifest.jsonl", "ab") as f:
        f.write(b'{"path": "/v/torn2"')  # and again, in the file B has open
    b.failed("/v/bad", "not a readable video")
    b.ok("/v/w", arrays["/v/w"], [0.5], "w")
    b.close()
    lines = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["path"] for r in lines) == ["/v/bad", "/v/w", "/v/x", "/v/y", "/v/z"]
    store = FeatureStore(tmp_path)
    with replay_hint(f"interleaved writers, {layout}"):
        np.testing.assert_array_equal(store.array("o"), np.concatenate([arrays[p]["o"] for p in store.paths]))
