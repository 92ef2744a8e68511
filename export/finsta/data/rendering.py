"""Rendering a synthetic scene graph to pixels: the background (texture and sensor noise) and the
shapes, and the label map of exactly the pixels each object paints."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .scene import COLOURS, ObjectSpec, SceneGraph


class HasGraph(Protocol):
    """A video with its scene graph (a ``SyntheticVideo``)."""

    graph: SceneGraph


@dataclass(frozen=True)
class Background:
    """Everything the renderer needs beyond the graph, so a video re-renders from JSON bit-exactly."""

    rgb: tuple[int, int, int]  # base colour
    waves: tuple[tuple[float, float, float, float], ...]  # (fx, fy, phase, amplitude) static texture
    noise: int  # per-frame pixel noise amplitude (uniform integer in [-noise, noise])
    seed: int  # seeds the pixel noise

    def to_dict(self) -> dict[str, Any]:
        return {"rgb": list(self.rgb), "waves": [list(w) for w in self.waves], "noise": self.noise, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Background:
        rgb = tuple(int(v) for v in d["rgb"])
        waves = tuple(tuple(float(v) for v in w) for w in d["waves"])
        return cls(rgb, waves, int(d["noise"]), int(d["seed"]))  # type: ignore[arg-type]


def _shape_masks(graph: SceneGraph) -> Iterator[tuple[ObjectSpec, np.ndarray]]:
    """(object, bool [T, H, W]) in drawing order (ids ascending: later ids are drawn on top).

    Vectorised over frames: pixel centres against each object's centre per frame by broadcasting."""
    S = graph.size
    xs = (np.arange(S, dtype=np.float32) + 0.5) / S
    cen = graph.centres().astype(np.float32)
    vis = graph.visible()
    for o in graph.objects:
        if not vis[:, o.id].any():
            continue
        r = np.float32(o.half)
        dx = np.abs(xs[None, None, :] - cen[:, o.id, 0, None, None])  # [T, 1, W]
        dy = xs[None, :, None] - cen[:, o.id, 1, None, None]  # [T, H, 1]
        if o.shape == "circle":
            m = dx * dx + dy * dy <= r * r
        elif o.shape == "square":
            m = (dx <= r) & (np.abs(dy) <= r)
        elif o.shape == "diamond":
            m = dx + np.abs(dy) <= r
        elif o.shape == "triangle":  # apex up at y0, base along y1: fills its box's width at the base
            m = (dy >= -r) & (dy <= r) & (dx <= (dy + r) * 0.5)
        else:
            raise ValueError(f"unknown shape {o.shape!r}")
        yield o, m & vis[:, o.id, None, None]


def object_masks(video: HasGraph | SceneGraph) -> np.ndarray:
    """Per-frame label map int32 [T, H, W]: 0 background, id + 1 for objects, topmost wins.

    The renderer paints exactly these pixels, so grounding maps can be scored against it."""
    graph = video if isinstance(video, SceneGraph) else video.graph
    labels = np.zeros((graph.frames, graph.size, graph.size), dtype=np.int32)
    for o, m in _shape_masks(graph):
        labels[m] = o.id + 1
    return labels


def render(graph: SceneGraph, background: Background) -> np.ndarray:
    """uint8 [T, H, W, 3] RGB frames of the graph on the background (deterministic)."""
    T, S = graph.frames, graph.size
    xs = (np.arange(S, dtype=np.float64) + 0.5) / S
    tex = np.zeros((S, S), dtype=np.float64)
    for fx, fy, ph, amp in background.waves:  # static low-frequency texture (a "floor")
        tex += amp * np.sin(2 * np.pi * (fx * xs[None, :] + fy * xs[:, None]) + ph)
    base = np.rint(np.asarray(background.rgb, dtype=np.float64)[None, None, :] + tex[:, :, None]).astype(np.int16)
    img = np.empty((T, S, S, 3), dtype=np.int16)
    img[:] = base
    for o, m in _shape_masks(graph):  # same masks and order as object_masks: topmost wins
        img[m] = COLOURS[o.colour]
    if background.noise > 0:  # fresh sensor-like noise every frame: no exact pixel matching across frames
        rng = np.random.default_rng(background.seed)
        img += rng.integers(-background.noise, background.noise + 1, size=img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def sample_background(rng: np.random.Generator) -> Background:
    grey = int(rng.integers(45, 106))
    rgb = tuple(int(np.clip(grey + rng.integers(-10, 11), 0, 255)) for _ in range(3))
    waves = tuple(
        (
            float(rng.uniform(-5, 5)),
            float(rng.uniform(-5, 5)),
            float(rng.uniform(0, 2 * np.pi)),
            float(rng.uniform(3, 8)),
        )
        for _ in range(3)
    )
    return Background(rgb, waves, noise=6, seed=int(rng.integers(2**63 - 1)))  # type: ignore[arg-type]
