"""``finsta-rt scenes``: scene boundaries of a video with timestamps (S-ViLM bundles, DESIGN.md §3).

How it works: frames are sampled densely (default ``fps:4``) and cut into windows of the bundle's
T frames that overlap by one frame, so every pair of consecutive sampled frames lies inside exactly
one window. The video tower's ``scene_change`` output scores each pair (1 - cosine of the two
frames' temporal-grouping features, trained with cut-and-paste clips). A boundary is a pair whose
score is above the threshold (the bundle's calibrated ``scene_threshold`` unless ``--threshold``)
and not below its neighbours' scores. It is reported at the time of the first frame of the new
scene, together with the previous sampled frame's time: the true cut lies between the two.

numpy only: runs inside ``finsta_rt`` without torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_SAMPLING = "fps:4"


def window_starts(n: int, T: int) -> list[int]:
    """Starts of windows of T frames overlapping by one frame that cover frames 0..n-1 (n >= 2, T >= 2)."""
    if n < 2 or T < 2:
        raise ValueError(f"need at least 2 frames and T >= 2, got n={n}, T={T}")
    return list(range(0, n - 1, T - 1))


def transition_scores(change: np.ndarray, n: int, T: int) -> np.ndarray:
    """Per-window scene_change [W, T] (score t compares window frames t-1 and t) -> scores [n] of the
    whole sequence (score i compares frames i-1 and i; score 0 is 0)."""
    out = np.zeros(n, np.float64)
    for w, s in enumerate(window_starts(n, T)):
        last = min(s + T, n)
        out[s + 1:last] = change[w, 1:last - s]
    return out


def boundaries(scores: np.ndarray, threshold: float) -> list[int]:
    """Indices i (frame i starts a new scene) with scores[i] > threshold and scores[i] >= both neighbours
    (a plateau keeps its first index)."""
    s = np.asarray(scores, np.float64)
    out = []
    for i in range(1, len(s)):
        left = s[i - 1] if i > 1 else -np.inf
        right = s[i + 1] if i + 1 < len(s) else -np.inf
        if s[i] > threshold and s[i] > left and s[i] >= right:
            out.append(i)
    return out


def scene_changes(model, video: str | Path, sampling: str = DEFAULT_SAMPLING, batch: int = 8,
                  timeout: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps [n] of the sampled frames, transition scores [n]) of a video."""
    from .ground import require_svilm
    from .video import Sampling, VideoError, read_frames

    require_svilm(model)
    sp = Sampling.parse(sampling)
    if sp.kind == "segments":
        raise ValueError("scenes needs a dense sampling (fps:F, every:K or uniform:N), not segments:S")
    pre = model.bundle.preprocess
    T = pre.frames
    clip = read_frames(video, sp, transform=pre, frames_per_clip=T, timeout=timeout)
    frames, stamps = clip.frames, np.asarray(clip.timestamps, np.float64)
    n = len(frames)
    if n < 2:
        raise VideoError(video, f"sampling {sp} gave {n} frame(s); scene boundaries need at least 2 "
                                "(sample more densely, e.g. --sampling fps:8)")
    starts = window_starts(n, T)
    windows = []
    for s in starts:
        w = frames[s:s + T]
        if len(w) < T:  # the last window: repeat its last frame (those pairs are not used)
            w = np.concatenate([w, np.repeat(w[-1:], T - len(w), axis=0)])
        windows.append(w)
    change = np.concatenate([model.embed_frames(np.stack(windows[i:i + batch]))["scene_change"]
                             for i in range(0, len(windows), batch)])
    return stamps, transition_scores(change, n, T)


def bundle_threshold(model) -> float:
    cfg = (model.bundle.manifest.get("model") or {}).get("svilm") or {}
    return float(cfg.get("scene_threshold", 0.5))


def detect(model, video: str | Path, sampling: str = DEFAULT_SAMPLING, threshold: float | None = None) -> dict:
    stamps, scores = scene_changes(model, video, sampling)
    thr = bundle_threshold(model) if threshold is None else float(threshold)
    idx = boundaries(scores, thr)
    cuts = [{"index": i, "time": float(stamps[i]), "previous_time": float(stamps[i - 1]), "score": float(scores[i])}
            for i in idx]
    edges = [float(stamps[0])] + [c["time"] for c in cuts] + [float(stamps[-1])]
    scenes = [{"start": edges[k], "end": edges[k + 1]} for k in range(len(edges) - 1)]
    return {"video": str(video), "sampling": str(sampling), "threshold": thr, "frames": len(stamps),
            "boundaries": cuts, "scenes": scenes,
            "scores": [{"time": float(t), "score": float(s)} for t, s in zip(stamps, scores)]}


def _clock(t: float) -> str:
    m, s = divmod(max(t, 0.0), 60)
    return f"{int(m):02d}:{s:06.3f}"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "scenes", help="scene boundaries (shot cuts) of a video with timestamps (S-ViLM bundles)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print where the scenes of a video change.\n\n"
                    "Frames are sampled densely (default fps:4) and scored in overlapping windows of the\n"
                    "bundle's T frames: each pair of consecutive sampled frames gets a scene-change score\n"
                    "(1 - cosine of their temporal-grouping features). A boundary is a local maximum above the\n"
                    "threshold (default: the one calibrated at training time and stored in the bundle). Its\n"
                    "time is the first sampled frame of the new scene; the cut lies after the previous sampled\n"
                    "frame, so denser sampling gives tighter times.\n\n"
                    "The stored threshold is calibrated on synthetic cut-and-paste clips, whose cuts change\n"
                    "far more than real shot cuts do: on real footage start with --threshold 0.1 and look at\n"
                    "the scores (--json) to adjust (benchmarks/eval_svilm.py measures this on bikes.mp4).",
        epilog="examples:\n"
               "  finsta-rt scenes bundles/svilm --video film.mp4\n"
               "  finsta-rt scenes bundles/svilm --video film.mp4 --sampling fps:8 --threshold 0.3 --json\n"
               "needs an S-ViLM bundle (family svilm).")
    p.add_argument("bundle", help="an S-ViLM bundle directory")
    p.add_argument("--video", required=True, help="the video file")
    p.add_argument("--sampling", default=DEFAULT_SAMPLING,
                   help=f"frames to score: fps:F, every:K or uniform:N (default {DEFAULT_SAMPLING})")
    p.add_argument("--threshold", type=float, default=None,
                   help="scene-change score above which a local maximum is a boundary (default: the bundle's)")
    p.add_argument("--json", action="store_true", help="print boundaries, scenes and every score as JSON")
    p.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto (default cpu)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from .bundle import BundleError
    from .ground import GroundError
    from .model import Model
    from .video import VideoError

    if args.threshold is not None and not 0 <= args.threshold <= 2:
        print(f"finsta-rt scenes: --threshold must be in [0, 2] (scores are 1 - cosine), got {args.threshold}",
              file=sys.stderr)
        return 2
    try:
        model = Model(args.bundle, device=args.device)
        r = detect(model, args.video, args.sampling, args.threshold)
    except (GroundError, BundleError, VideoError, ValueError, FileNotFoundError) as e:
        print(f"finsta-rt scenes: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{r['video']}: {r['frames']} frames ({r['sampling']}), threshold {r['threshold']:.3f}, "
          f"{len(r['boundaries'])} boundar{'y' if len(r['boundaries']) == 1 else 'ies'}")
    for b in r["boundaries"]:
        print(f"  cut at {_clock(b['time'])}  (after {_clock(b['previous_time'])})  score {b['score']:.3f}")
    for k, s in enumerate(r["scenes"]):
        print(f"  scene {k + 1}: {_clock(s['start'])} - {_clock(s['end'])}")
    return 0
