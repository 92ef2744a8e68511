"""The synthetic world's vocabulary and its exact scene graph: objects, per-frame states, geometric
relations and events (see :mod:`finsta.data.synthetic` for the event semantics and uniqueness rules)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
# Saturated colours, all far (> 60 levels in some channel) from the grey background, so a pixel's
# owner is recoverable from its colour despite the noise.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 80, 230),
    "yellow": (235, 220, 50),
    "purple": (150, 60, 200),
    "cyan": (40, 210, 220),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
}
# Half-extent in normalised units (fraction of the frame side): boxes of 17 and 28 pixels at 112.
SIZES: dict[str, float] = {"small": 0.075, "large": 0.125}
# (axis, sign): axis 0 is x (rightwards), axis 1 is y (image rows, downwards)
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1)}
MOTION_KINDS: tuple[str, ...] = ("move", "approach", "pass", "collide")
EVENT_KINDS: tuple[str, ...] = MOTION_KINDS + ("appear", "disappear")
PREDICATES: tuple[str, ...] = ("left of", "right of", "above", "below", "touching")
ATTRIBUTES: tuple[str, ...] = ("size", "colour", "shape")

TOUCH_EPS = 0.01  # box gap (normalised) at or below which two visible objects are "touching"
REL_EPS = 0.02  # centre difference needed for left/right/above/below
CLEARANCE = 0.03  # minimum box gap kept by any motion that is not meant to touch (clearly > TOUCH_EPS)
MARGIN = 0.02  # boxes stay this far inside the frame, so boxes are never clipped
MIN_TRAVEL = 0.12  # shortest motion: >= 13 px at 112, most of one cell of a 7x7 feature map


class Infeasible(Exception):
    """This layout cannot realise the plan; the caller draws another."""


@dataclass(frozen=True)
class ObjectSpec:
    id: int
    shape: str
    colour: str
    size: str

    @property
    def half(self) -> float:
        """Half-extent of the (square) bounding box, normalised."""
        return SIZES[self.size]

    @property
    def name(self) -> str:
        """The referring expression used in captions, e.g. "large red circle"."""
        return f"{self.size} {self.colour} {self.shape}"

    @property
    def triple(self) -> tuple[str, str, str]:
        return (self.size, self.colour, self.shape)


@dataclass(frozen=True)
class ObjectState:
    visible: bool
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 normalised to [0, 1]; kept while invisible
    centre: tuple[float, float]  # x, y normalised


@dataclass(frozen=True)
class Relation:
    frame: int
    subject: int
    predicate: str
    object: int


@dataclass(frozen=True)
class Event:
    kind: str
    subject: int
    object: int | None
    direction: str | None
    start_frame: int
    end_frame: int


@dataclass
class SceneGraph:
    frames: int
    size: int
    objects: list[ObjectSpec]
    states: list[list[ObjectState]]  # [frame][object id]
    relations: list[Relation]  # every ordered pair of visible objects, every frame
    events: list[Event]  # in temporal order

    def visible(self) -> np.ndarray:
        """bool [T, N]."""
        return np.array([[s.visible for s in row] for row in self.states], dtype=bool).reshape(self.frames, -1)

    def centres(self) -> np.ndarray:
        """float [T, N, 2] (x, y)."""
        return np.array([[s.centre for s in row] for row in self.states], dtype=np.float64).reshape(self.frames, -1, 2)

    def boxes(self) -> np.ndarray:
        """float [T, N, 4] (x0, y0, x1, y1)."""
        return np.array([[s.box for s in row] for row in self.states], dtype=np.float64).reshape(self.frames, -1, 4)

    def relations_at(self, frame: int) -> list[Relation]:
        return [r for r in self.relations if r.frame == frame]

    def find(self, size: str, colour: str, shape: str) -> ObjectSpec | None:
        """The object with these attributes (attribute triples are unique within a video)."""
        return next((o for o in self.objects if o.triple == (size, colour, shape)), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "size": self.size,
            "objects": [{"id": o.id, "shape": o.shape, "colour": o.colour, "size": o.size} for o in self.objects],
            "states": [
                [{"visible": s.visible, "box": list(s.box), "centre": list(s.centre)} for s in row]
                for row in self.states
            ],
            "relations": [
                {"frame": r.frame, "subject": r.subject, "predicate": r.predicate, "object": r.object}
                for r in self.relations
            ],
            "events": [
                {
                    "kind": e.kind,
                    "subject": e.subject,
                    "object": e.object,
                    "direction": e.direction,
                    "start_frame": e.start_frame,
                    "end_frame": e.end_frame,
                }
                for e in self.events
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SceneGraph:
        return cls(
            frames=int(d["frames"]),
            size=int(d["size"]),
            objects=[ObjectSpec(int(o["id"]), o["shape"], o["colour"], o["size"]) for o in d["objects"]],
            states=[
                [
                    ObjectState(
                        bool(s["visible"]),
                        tuple(float(v) for v in s["box"]),  # type: ignore[arg-type]
                        tuple(float(v) for v in s["centre"]),
                    )
                    for s in row
                ]
                for row in d["states"]
            ],
            relations=[
                Relation(int(r["frame"]), int(r["subject"]), r["predicate"], int(r["object"])) for r in d["relations"]
            ],
            events=[
                Event(
                    e["kind"],
                    int(e["subject"]),
                    None if e["object"] is None else int(e["object"]),
                    e["direction"],
                    int(e["start_frame"]),
                    int(e["end_frame"]),
                )
                for e in d["events"]
            ],
        )


def box_gap(ca: Sequence[float], ra: float, cb: Sequence[float], rb: float) -> float:
    """Gap between two axis-aligned square boxes (centre, half-extent): > 0 separated, <= 0 overlapping.

    The larger of the per-axis gaps: boxes are apart iff they are apart along at least one axis."""
    return max(abs(ca[0] - cb[0]) - ra - rb, abs(ca[1] - cb[1]) - ra - rb)
