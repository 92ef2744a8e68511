"""S-ViLM's cut-and-paste on synthetic clips (docs/families.md, S-ViLM): an artificial scene change
spliced from two clips, the held-out splice pairs, and the fraction of each feature-grid cell an
object covers (the grounding target)."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class HasFrames(Protocol):
    """A video with its frames (a ``SyntheticVideo``)."""

    frames: np.ndarray


def cut_and_paste(
    video_a: HasFrames | np.ndarray, video_b: HasFrames | np.ndarray, cut_frame: int
) -> tuple[np.ndarray, int]:
    """S-ViLM's artificial scene change: frames [0, cut_frame) of a, then [cut_frame, T) of b.

    Returns the spliced uint8 [T, H, W, 3] frames and the index of the first frame from b (the true
    scene boundary, equal to ``cut_frame``)."""
    a = np.asarray(video_a) if isinstance(video_a, np.ndarray) else video_a.frames
    b = np.asarray(video_b) if isinstance(video_b, np.ndarray) else video_b.frames
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"clips must have the same [T, H, W, C] shape, got {a.shape} and {b.shape}")
    if not 0 < cut_frame < a.shape[0]:
        raise ValueError(f"cut_frame must be in [1, {a.shape[0] - 1}], got {cut_frame}")
    out = np.concatenate([a[:cut_frame], b[cut_frame:]])
    return out, int(cut_frame)


def cell_coverage(labels: np.ndarray, object_id: int, grid: tuple[int, int]) -> np.ndarray:
    """labels int [T, H, W] (object_masks: id + 1 per pixel) -> fraction of each cell on the object [T, h, w]."""
    T, H, W = labels.shape
    h, w = grid
    ys = (np.arange(H) * h) // H
    xs = (np.arange(W) * w) // W
    on = (labels == object_id + 1).astype(np.float64)
    cov = np.zeros((T, h, w))
    np.add.at(cov, (slice(None), ys[:, None], xs[None, :]), on)  # sums over pixels per cell
    counts = np.zeros((h, w))
    np.add.at(counts, (ys[:, None], xs[None, :]), 1.0)
    return cov / counts


def temporal_cuts(n: int, frames: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Fixed held-out cut-and-paste pairs: clip i keeps [0, cut_i) and takes [cut_i, T) from partner_i."""
    rng = np.random.default_rng(seed)
    partner = (np.arange(n) + rng.integers(1, n, size=n)) % n
    return partner, rng.integers(1, frames, size=n)
