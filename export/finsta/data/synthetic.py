"""Seeded synthetic structured videos with captions, exact scene graphs and hard-negative captions.

Why a generator: no package ships a caption corpus (docs/data.md), and the structural heads need
supervision that real clips cannot give us exactly: who moves where and when (STGT's temporal
reasoning, Finsta's predicates), which pixels belong to which noun (S-ViLM grounding), and where a
scene changes (S-ViLM cut-and-paste). Here everything is known by construction.

A video holds 1-3 coloured shapes on a mildly textured, noisy background and 2-3 *events* in a
strict temporal order (event k ends before event k+1 starts); nothing changes outside events, so
the event list is the complete description of the dynamics and the caption describes all of it:

    "first a large red circle moves left, after that a small blue square appears"

Event semantics (frames are inclusive indices; ``start_frame`` is the last frame with the old
state, ``end_frame`` the first with the new state, so every event spans >= 1 frame transition):

* ``move``      subject moves along one axis (``direction``); it neither passes nor touches others.
* ``approach``  subject moves along an axis towards ``object`` and stops close, not touching.
* ``pass``      subject moves along an axis past ``object``: it starts on one side and ends on the
                other, offset on the cross axis so they never touch.
* ``collide``   subject moves along an axis into ``object`` and stops with their boxes touching.
* ``appear`` / ``disappear``  the subject becomes visible / invisible at ``end_frame``.

Uniqueness rules make each event phrase true during exactly one event (an object never moves twice
in the same direction, never appears or disappears twice, and every phrase names its subject and
direction), which is what makes the order-swapped negative false; the attribute-swapped negative
names an attribute triple that no object of the video has. Plain moves never touch or pass another
object and no motion touches anything except a collision's target, so "touching" only ever starts
at the end of a ``collide``. Relations are geometric: ``left of``/``right of``/``above``/``below``
from centres (difference > ``REL_EPS``), ``touching`` when the bounding boxes' gap is <= ``TOUCH_EPS``
(boxes, not shape outlines).

Only numpy and the standard library are used, so the generator also runs where torch is absent.

The pieces: :mod:`.scene` (vocabulary and scene graph types), :mod:`.world` (planning and
trajectories), :mod:`.captions` (captions and negatives: how objects are named), :mod:`.rendering` (pixels and object
masks), :mod:`.cut_and_paste` (S-ViLM's splices); this module puts them together.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .captions import (
    TEMPLATES,
    AttributeNegative,
    Mention,
    OrderNegative,
    attribute_negative,
    compose,
    duplicate_rate,
    order_negative,
)
from .rendering import Background, object_masks, render, sample_background
from .scene import (
    ATTRIBUTES,
    COLOURS,
    DIRECTIONS,
    EVENT_KINDS,
    MOTION_KINDS,
    PREDICATES,
    REL_EPS,
    SHAPES,
    SIZES,
    TOUCH_EPS,
    Event,
    Infeasible,
    ObjectSpec,
    ObjectState,
    Relation,
    SceneGraph,
    box_gap,
)
from .world import build_graph, realise, sample_objects, sample_plan, touch_explained

log = logging.getLogger(__name__)

__all__ = [
    "SHAPES",
    "COLOURS",
    "SIZES",
    "DIRECTIONS",
    "EVENT_KINDS",
    "PREDICATES",
    "TOUCH_EPS",
    "REL_EPS",
    "ObjectSpec",
    "ObjectState",
    "Relation",
    "Event",
    "SceneGraph",
    "Mention",
    "OrderNegative",
    "AttributeNegative",
    "Background",
    "SyntheticVideo",
    "SyntheticVideoDataset",
    "generate",
    "generate_video",
    "render",
    "object_masks",
    "box_gap",
    "duplicate_rate",
    "ATTRIBUTES",
    "MOTION_KINDS",
]


@dataclass
class SyntheticVideo:
    """One video: pixels, exact scene graph, caption (all events, in order), noun mentions for
    grounding, and two hard negatives (``negatives`` gives their texts by kind)."""

    seed: int
    index: int
    graph: SceneGraph
    caption: str
    template: int  # index into the connective templates for this number of events
    mentions: list[Mention]
    order_negative: OrderNegative
    attribute_negative: AttributeNegative
    background: Background
    frames: np.ndarray = field(repr=False, compare=False)  # uint8 [T, H, W, 3] RGB

    @property
    def negatives(self) -> dict[str, str]:
        return {"order": self.order_negative.text, "attribute": self.attribute_negative.text}

    @property
    def events(self) -> list[Event]:
        return self.graph.events

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (no pixels: ``from_dict`` re-renders them bit-exactly from graph + background)."""
        o, a = self.order_negative, self.attribute_negative
        return {
            "seed": self.seed,
            "index": self.index,
            "caption": self.caption,
            "template": self.template,
            "mentions": [
                {"object_id": m.object_id, "start": m.start, "end": m.end, "text": m.text} for m in self.mentions
            ],
            "negatives": {
                "order": {"text": o.text, "event_order": list(o.event_order), "plausible": o.plausible},
                "attribute": {
                    "text": a.text,
                    "object_id": a.object_id,
                    "attribute": a.attribute,
                    "old": a.old,
                    "new": a.new,
                    "word_index": a.word_index,
                },
            },
            "background": self.background.to_dict(),
            "graph": self.graph.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SyntheticVideo:
        graph = SceneGraph.from_dict(d["graph"])
        bg = Background.from_dict(d["background"])
        o, a = d["negatives"]["order"], d["negatives"]["attribute"]
        return cls(
            seed=int(d["seed"]),
            index=int(d["index"]),
            graph=graph,
            caption=d["caption"],
            template=int(d["template"]),
            mentions=[Mention(int(m["object_id"]), int(m["start"]), int(m["end"]), m["text"]) for m in d["mentions"]],
            order_negative=OrderNegative(o["text"], tuple(int(i) for i in o["event_order"]), bool(o["plausible"])),
            attribute_negative=AttributeNegative(
                a["text"], int(a["object_id"]), a["attribute"], a["old"], a["new"], int(a["word_index"])
            ),
            background=bg,
            frames=render(graph, bg),
        )


def generate_video(seed: int, index: int, frames: int = 8, size: int = 112) -> SyntheticVideo:
    """Video ``index`` of the stream ``seed``; depends only on (seed, index, frames, size)."""
    if frames < 4:
        raise ValueError(f"frames must be >= 4 (two ordered events need 3 transitions), got {frames}")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, int(index), 0x5EED])
    for attempt in range(200):
        objects = sample_objects(rng)
        n_events = 3 if frames - 1 >= 5 and rng.random() < 0.35 else 2
        try:
            plan, initial = sample_plan(rng, len(objects), n_events)
        except Infeasible:
            continue
        for _ in range(25):  # layouts for this plan; then a new plan
            try:
                cen, vis, events = realise(rng, objects, plan, initial, frames)
                graph = build_graph(objects, cen, vis, events, size)
                if not touch_explained(graph):
                    raise Infeasible
                t = int(rng.integers(len(TEMPLATES[n_events])))
                template = TEMPLATES[n_events][t]
                caption, mentions, slots = compose(graph, range(n_events), template)
                order_neg = order_negative(rng, graph, template, caption)
                attr_neg = attribute_negative(rng, graph, caption, mentions, slots)
            except Infeasible:
                continue
            bg = sample_background(rng)
            if attempt:
                log.debug("video (%d, %d): plan %d realised", seed, index, attempt)
            return SyntheticVideo(seed, index, graph, caption, t, mentions, order_neg, attr_neg, bg, render(graph, bg))
    raise RuntimeError(f"could not realise synthetic video (seed={seed}, index={index})")  # pragma: no cover


class SyntheticVideoDataset:
    """``n`` videos of the stream ``seed``, built (and rendered) on access; item i depends only on
    (seed, i), so a held-out split is just another seed and a prefix of a split is stable."""

    def __init__(self, n: int, seed: int = 0, frames: int = 8, size: int = 112):
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n, self.seed, self.frames, self.size = int(n), int(seed), int(frames), int(size)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> SyntheticVideo:
        i = int(i)
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} videos")
        return generate_video(self.seed, i, self.frames, self.size)

    def __iter__(self) -> Iterator[SyntheticVideo]:
        return (self[i] for i in range(self.n))

    def __repr__(self) -> str:
        return f"SyntheticVideoDataset(n={self.n}, seed={self.seed}, frames={self.frames}, size={self.size})"


def generate(n: int, seed: int = 0, frames: int = 8, size: int = 112) -> list[SyntheticVideo]:
    """The first ``n`` videos of stream ``seed`` (same as ``list(SyntheticVideoDataset(n, seed, ...))``)."""
    return list(SyntheticVideoDataset(n, seed, frames, size))
