"""The labelled real clips of the scene-boundary benchmarks: the labels are the cuts an engineer verified
by eye (written out below, independently of benchmarks/shot_truth.py), the histogram rule finds exactly
those in the files the packages install, and the matching that scores detections against them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import shot_truth  # noqa: E402
from shot_truth import Match, ShotClip, match  # noqa: E402

# Verified by looking at each cut's frame pair (first frame of the new shot, seconds), with the decoded
# frame count and rate that pin the file. carphone and bigbuckbunny are single shots.
VERIFIED = {
    "bikes.mp4": ((1.20, 3.04, 5.48, 7.48, 9.68), 250, 25.0),
    "demo.mp4": (
        (
            7.62,
            10.12,
            15.21,
            16.46,
            20.21,
            23.00,
            29.42,
            30.88,
            36.00,
            38.46,
            39.96,
            42.67,
            46.62,
            48.42,
            49.50,
            54.17,
            57.04,
            59.67,
        ),
        1441,
        24.0,
    ),
    "carphone_pristine.mp4": ((), 120, 30000 / 1001),
    "bigbuckbunny.mp4": ((), 132, 25.0),
}
CLIPS = shot_truth.CALIBRATION + shot_truth.HELD_OUT


def test_benchmark_labels_are_the_verified_cuts():
    assert sorted(c.name for c in CLIPS) == sorted(VERIFIED)
    for clip in CLIPS:
        want = VERIFIED[clip.name][0]
        assert len(clip.cuts) == len(want) and np.allclose(clip.cuts, want, rtol=0, atol=0.005), (clip.name, clip.cuts)


@pytest.mark.parametrize("name", sorted(VERIFIED))
def test_histogram_rule_finds_exactly_the_verified_cuts(name):
    clip = next(c for c in CLIPS if c.name == name)
    want, frames, fps = VERIFIED[name]
    found, n, rate = shot_truth.histogram_cuts(clip.path())
    assert (n, rate) == (frames, pytest.approx(fps)), f"{name}: not the labelled file"
    # within half a frame of each verified cut, and nothing else
    assert len(found) == len(want) and np.allclose(found, want, rtol=0, atol=0.5 / fps), (name, list(found))


def test_match_is_one_to_one_within_tolerance_and_ignores_gradual_transitions():
    clip = ShotClip("x.mp4", "none", "", cuts=(1.0, 1.6, 5.0), gradual=((3.0, 3.4),))
    # in order: 0.6 -> cut 1.0 (0.4 away); 1.3 -> 1.6 (1.0 is taken); 1.35 -> none left within 0.5:
    # false; 2.6 and 3.85 -> within 0.5 of the gradual span: ignored; 3.95 and 4.4 -> false
    m = match([0.6, 1.3, 1.35, 2.6, 3.85, 3.95, 4.4], clip)
    assert m == Match(hits=2, false=3, cuts=3)
    assert m.precision == pytest.approx(2 / 5) and m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 * (2 / 5) * (2 / 3) / (2 / 5 + 2 / 3))
    assert match([1.2, 0.7], clip) == Match(1, 1, 3)  # 1.2 takes the nearer cut 1.0, leaving 0.7 none
    assert match([], clip) == Match(0, 0, 3) and match([], clip).f1 == 0.0
    assert match([1.0, 1.6, 5.0], clip) + match([9.0], clip) == Match(3, 1, 6)
