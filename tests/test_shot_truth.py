"""The labelled real clips of the scene-boundary benchmarks: the histogram rule that found their cuts
still finds exactly those (so the labels match the files the packages install), and the matching
that scores detections against them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import shot_truth  # noqa: E402
from shot_truth import Match, ShotClip, match  # noqa: E402


@pytest.mark.parametrize("clip", shot_truth.CALIBRATION + shot_truth.HELD_OUT, ids=lambda c: c.name)
def test_labelled_cuts_are_the_histogram_spikes(clip):
    found, frames, fps = shot_truth.histogram_cuts(clip.path())
    assert frames > 100 and fps > 20
    assert len(found) == len(clip.cuts)
    assert all(abs(a - b) < 0.02 for a, b in zip(found, clip.cuts))


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
