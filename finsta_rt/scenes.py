"""``finsta-rt scenes``: scene boundaries of a video with timestamps (S-ViLM bundles, docs/families.md).

How it works: frames are sampled densely (default ``fps:4``) and cut into windows of the bundle's
T frames that overlap by one frame, so every pair of consecutive sampled frames lies inside exactly
one window. The video tower's ``scene_change`` output scores each pair (1 - cosine of the two
frames' temporal-grouping features, trained with cut-and-paste clips). A boundary is a pair whose
score is a local maximum, above ``min_score``, and at least ``ratio`` times the mean score of
the other pairs within ``window`` seconds (``SceneRule``; the adaptive rule of PySceneDetect).
The rule is relative because the score of a real shot cut depends on the footage: the middle half
of synthetic cuts score 0.45-0.86, the real cuts of our test clips 0.05-0.24, while steady shots
stay near 0.01 and fast motion reaches 0.2 only together with its neighbours. The defaults were chosen on real footage with labelled cuts
(benchmarks/calibrate_scenes.py; bikes.mp4 is held out for the evaluation). A boundary is reported
at the time of the first frame of the new scene, together with the previous sampled frame's time:
the true cut lies between the two.

numpy only: runs inside ``finsta_rt`` without torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_SAMPLING = "fps:4"


@dataclass(frozen=True)
class SceneRule:
    """When a transition score is a boundary. Defaults: benchmarks/calibrate_scenes.py at fps:4."""

    ratio: float = 2.5  # score / mean of the other scores within the window; 0 = a plain threshold
    window: float = 1.0  # seconds on each side
    min_score: float = 0.04  # a boundary scores above this, so the noise of a still shot never counts

    def __post_init__(self) -> None:
        for name, lo in (("ratio", 0.0), ("window", 0.0), ("min_score", 0.0)):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= lo):
                raise ValueError(f"scene rule: {name} must be a finite number >= {lo:g}, got {v!r}")
        if self.min_score > 2:
            raise ValueError(f"scene rule: min_score must be <= 2 (scores are 1 - cosine), got {self.min_score!r}")


def boundaries(times: np.ndarray, scores: np.ndarray, rule: SceneRule = SceneRule()) -> list[int]:
    """Indices i (frame i starts a new scene; score i compares frames i-1 and i, score 0 is unused)
    where scores[i] is a local maximum (a plateau keeps its first index), > rule.min_score and
    >= rule.ratio x the mean of the other scores 1.. within rule.window seconds of times[i]."""
    t = np.asarray(times, np.float64)
    s = np.asarray(scores, np.float64)
    if t.shape != s.shape or s.ndim != 1:
        raise ValueError(f"times {t.shape} and scores {s.shape} must be two vectors of one length")
    out = []
    for i in range(1, len(s)):
        left = s[i - 1] if i > 1 else -np.inf
        right = s[i + 1] if i + 1 < len(s) else -np.inf
        if not (s[i] > rule.min_score and s[i] > left and s[i] >= right):
            continue
        near = np.abs(t - t[i]) <= rule.window
        near[0] = near[i] = False
        if not near.any() or s[i] >= rule.ratio * s[near].mean():
            out.append(i)
    return out


def scene_changes(
    model,
    video: str | Path,
    sampling: str = DEFAULT_SAMPLING,
    batch: int = 8,
    timeout: float | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps [n] of the sampled frames, transition scores [n]; score i compares frames i-1 and i,
    score 0 is 0). Frames stream from the decoder through windows of the bundle's T frames that
    overlap by one frame, ``batch`` windows per model call: memory stays flat however long the video.
    ``progress`` gets the time reached after each model call."""
    from .ground import require_svilm
    from .video import Sampling, VideoError, iter_frames, read_frames

    require_svilm(model)
    sp = Sampling.parse(sampling)
    if sp.kind == "segments":
        raise ValueError("scenes needs a dense sampling (fps:F, every:K or uniform:N), not segments:S")
    pre = model.bundle.preprocess
    T = pre.frames
    if sp.kind == "uniform":  # N frames in all: the user bounds the memory
        clip = read_frames(video, sp, transform=pre, frames_per_clip=T, timeout=timeout)
        frames = zip(clip.timestamps, clip.frames)
    else:
        frames = iter_frames(video, sp, transform=pre, timeout=timeout)
    stamps: list[float] = []
    scores: list[float] = [0.0]
    windows: list[np.ndarray] = []
    lengths: list[int] = []

    def flush() -> None:
        if windows:
            change = model.embed_frames(np.stack(windows))["scene_change"]
            for c, n in zip(change, lengths):
                scores.extend(float(x) for x in c[1:n])
            windows.clear()
            lengths.clear()
            if progress is not None:
                progress(stamps[-1])

    def push(w: list[np.ndarray]) -> None:
        lengths.append(len(w))
        windows.append(np.stack(w + [w[-1]] * (T - len(w))))  # the last window repeats its last frame
        if len(windows) == batch:
            flush()

    window: list[np.ndarray] = []
    for t, img in frames:
        stamps.append(float(t))
        window.append(img)
        if len(window) == T:
            push(window)
            window = [window[-1]]
    if len(stamps) < 2:
        raise VideoError(
            video,
            f"sampling {sp} gave {len(stamps)} frame(s); scene boundaries need at least 2 "
            "(sample more densely, e.g. --sampling fps:8)",
        )
    if len(window) > 1:
        push(window)
    flush()
    return np.asarray(stamps, np.float64), np.asarray(scores, np.float64)


def detect(
    model,
    video: str | Path,
    sampling: str = DEFAULT_SAMPLING,
    rule: SceneRule = SceneRule(),
    progress: Callable[[float, float], None] | None = None,
) -> dict:
    """Boundaries, scenes and every transition score of a video (what ``finsta-rt scenes --json`` prints).
    ``progress(seconds scored, video duration)`` is called as the scoring goes."""
    from .video import probe

    info = probe(video)  # scenes span the whole video, not just the first to the last sampled frame
    stamps, scores = scene_changes(
        model, video, sampling, progress=None if progress is None else lambda t: progress(t, info.duration)
    )
    idx = boundaries(stamps, scores, rule)
    cuts = [
        {"index": i, "time": float(stamps[i]), "previous_time": float(stamps[i - 1]), "score": float(scores[i])}
        for i in idx
    ]
    end = info.start + info.duration if info.duration > 0 else float(stamps[-1])
    edges = [min(info.start, float(stamps[0]))] + [c["time"] for c in cuts] + [max(end, float(stamps[-1]))]
    scenes = [{"start": edges[k], "end": edges[k + 1]} for k in range(len(edges) - 1)]
    return {
        "video": str(video),
        "sampling": str(sampling),
        "rule": asdict(rule),
        "frames": len(stamps),
        "boundaries": cuts,
        "scenes": scenes,
        "scores": [{"time": float(t), "score": float(s)} for t, s in zip(stamps, scores)],
    }


def _clock(t: float) -> str:
    m, s = divmod(max(t, 0.0), 60)
    return f"{int(m):02d}:{s:06.3f}"
