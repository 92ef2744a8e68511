"""User-supplied video scene graphs (Finsta's optional DSG path): load a JSON file, validate it, and
turn it into the padded slot tensors that replace the learned object slots.

File format (UTF-8 JSON)::

    {
      "width": 640, "height": 480,            # frame size in pixels; required when units = "pixels"
      "units": "pixels",                      # "pixels" (default) or "normalized" (boxes in [0, 1])
      "num_frames": 8,                        # optional: frame indices must be < num_frames
      "frames": [
        {"t": 0,                              # frame index (int >= 0), each at most once
         "objects": [
           {"id": "car1", "box": [x0, y0, x1, y1], "label": "car"},   # label optional
           {"id": "p2", "box": [300, 40, 360, 200], "label": "person"}
         ],
         "relations": [                       # optional
           {"subject": "car1", "predicate": "left of", "object": "p2"}
         ]}
      ]
    }

* ``id``: a string or an integer, unique within a frame; the same id in two frames is the same
  object (one *track*). ``label`` and ``predicate`` are free text (kept on the Python objects,
  not in the tensors).
* ``box``: ``x0, y0, x1, y1`` with the origin top-left, x rightwards, y downwards, inside the frame
  (0 <= x0 < x1 <= width, 0 <= y0 < y1 <= height; [0, 1] when normalised).
* Frames not listed are empty (no objects). Relation ends must be ids of the same frame.

Tensors (``UserVideoGraph.to_tensors(frames=T, slots=K)``):

=============  ===================  ============================================================
``slot_box``   float32 [T, K, 4]    normalised x0, y0, x1, y1; zeros in empty slots
``slot_pos``   float32 [T, K, 2]    box centre (x, y), normalised
``slot_mask``  bool    [T, K]       slot holds an object
``track``      int64   [T, K]       track index (first appearance order, from 0); -1 when empty
``rel_adj``    bool    [T, K, K]    a relation between the two slots in either direction, made
                                    symmetric, plus a self-loop on every slot (empty ones too) so
                                    it can feed EdgeGraphAttention like the text ``adj``
=============  ===================  ============================================================

Slots: when the whole video has at most K tracks, track m always sits in slot m (the same
convention as the learned slots: slot m at t and t+1 is the same track); otherwise each frame's
objects fill slots 0.. in file order and ``track`` carries the identity.

Every problem raises ``UserGraphError`` (a ValueError) naming the file, the frame and the field.
numpy and the standard library only (never torch).
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "UserGraphError",
    "UserObject",
    "UserRelation",
    "UserFrame",
    "UserVideoGraph",
    "load_user_graph",
    "parse_user_graph",
    "user_graph_tensors",
]

UNITS = ("pixels", "normalized")
# A graph for T frames is a few KB; bound the file and its nesting before json.loads (whose recursion
# ends in RecursionError on 100,000 nested '[').
MAX_FILE_BYTES = 16 << 20
MAX_NESTING = 16


class UserGraphError(ValueError):
    """An invalid user scene graph; the message names the file, the frame and the field."""


@dataclass(frozen=True)
class UserObject:
    id: str
    box: tuple[float, float, float, float]  # normalised x0, y0, x1, y1
    label: str | None = None


@dataclass(frozen=True)
class UserRelation:
    subject: str
    predicate: str
    object: str


@dataclass
class UserFrame:
    t: int
    objects: list[UserObject] = field(default_factory=list)
    relations: list[UserRelation] = field(default_factory=list)


@dataclass
class UserVideoGraph:
    """A validated user graph, boxes normalised to [0, 1]; ``source`` names it in error messages."""

    frames: list[UserFrame]
    num_frames: int | None = None
    source: str = "<graph>"

    @property
    def track_ids(self) -> list[str]:
        """Object ids in order of first appearance (frame order, then file order): track m = ids[m]."""
        seen: dict[str, None] = {}
        for f in sorted(self.frames, key=lambda f: f.t):
            for o in f.objects:
                seen.setdefault(o.id, None)
        return list(seen)

    def to_tensors(self, frames: int, slots: int) -> dict[str, np.ndarray]:
        """Padded tensors for ``frames`` (T) frames and ``slots`` (K) slots; see the module docstring."""
        return user_graph_tensors(self, frames, slots)


# ----------------------------------------------------------------------------- validation helpers
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _type(v: Any) -> str:
    return (
        "null"
        if v is None
        else {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(v), type(v).__name__)
    )


class _Checker:
    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, msg: str) -> UserGraphError:
        return UserGraphError(f"{self.source}: {where}: {msg}")

    def key(self, d: dict[str, Any], name: str, where: str, required: bool = True) -> Any:
        if name not in d:
            if required:
                raise self.fail(where, f"missing field {name!r}")
            return None
        return d[name]


def parse_user_graph(data: Any, source: str = "<graph>") -> UserVideoGraph:
    """Validate an already-decoded JSON document (see the module docstring) into a UserVideoGraph."""
    c = _Checker(source)
    if not isinstance(data, dict):
        raise c.fail("top level", f"expected a JSON object, got {_type(data)}")
    unknown = set(data) - {"width", "height", "units", "num_frames", "frames"}
    if unknown:
        raise c.fail(
            "top level", f"unknown field(s) {sorted(unknown)} (expected width, height, units, num_frames, frames)"
        )
    units = data.get("units", "pixels")
    if units not in UNITS:
        raise c.fail("field 'units'", f"must be one of {UNITS}, got {units!r}")
    if units == "pixels":
        for name in ("width", "height"):
            v = c.key(data, name, "top level")
            if not _is_num(v) or v <= 0:
                raise c.fail(f"field {name!r}", f"must be a positive number of pixels, got {v!r}")
        width, height = float(data["width"]), float(data["height"])
    else:
        width = height = 1.0
    num_frames = data.get("num_frames")
    if num_frames is not None and (not _is_int(num_frames) or num_frames < 1):
        raise c.fail("field 'num_frames'", f"must be an integer >= 1, got {num_frames!r}")
    frames_in = c.key(data, "frames", "top level")
    if not isinstance(frames_in, list):
        raise c.fail("field 'frames'", f"must be an array, got {_type(frames_in)}")
    frames: list[UserFrame] = []
    seen_t: dict[int, int] = {}
    for fi, f in enumerate(frames_in):
        where = f"frames[{fi}]"
        if not isinstance(f, dict):
            raise c.fail(where, f"expected an object, got {_type(f)}")
        unknown = set(f) - {"t", "objects", "relations"}
        if unknown:
            raise c.fail(where, f"unknown field(s) {sorted(unknown)} (expected t, objects, relations)")
        t = c.key(f, "t", where)
        if not _is_int(t):
            raise c.fail(f"{where}.t", f"must be an integer frame index, got {_type(t)} {t!r}")
        if t < 0 or (num_frames is not None and t >= num_frames):
            raise c.fail(f"{where}.t", f"frame index {t} out of range [0, {num_frames if num_frames else 'inf'})")
        if t in seen_t:
            raise c.fail(f"{where}.t", f"frame {t} is listed twice (also frames[{seen_t[t]}])")
        seen_t[t] = fi
        where = f"frame t={t} (frames[{fi}])"
        frames.append(_parse_frame(c, f, t, where, width, height, units))
    return UserVideoGraph(frames, num_frames, source)


def _parse_frame(
    c: _Checker, f: dict[str, Any], t: int, where: str, width: float, height: float, units: str
) -> UserFrame:
    objs_in = f.get("objects", [])
    if not isinstance(objs_in, list):
        raise c.fail(f"{where}.objects", f"must be an array, got {_type(objs_in)}")
    objects: list[UserObject] = []
    ids: set[str] = set()
    for oi, o in enumerate(objs_in):
        w = f"{where}.objects[{oi}]"
        if not isinstance(o, dict):
            raise c.fail(w, f"expected an object, got {_type(o)}")
        unknown = set(o) - {"id", "box", "label"}
        if unknown:
            raise c.fail(w, f"unknown field(s) {sorted(unknown)} (expected id, box, label)")
        oid = c.key(o, "id", w)
        if not (isinstance(oid, str) and oid) and not _is_int(oid):
            raise c.fail(f"{w}.id", f"must be a non-empty string or an integer, got {_type(oid)} {oid!r}")
        oid = str(oid)
        w = f"{where}, object {oid!r}"
        if oid in ids:
            raise c.fail(w, "duplicate id in this frame")
        ids.add(oid)
        box = c.key(o, "box", w)
        if not isinstance(box, list) or len(box) != 4 or not all(_is_num(v) for v in box):
            raise c.fail(f"{w}.box", f"must be an array of 4 finite numbers [x0, y0, x1, y1], got {box!r}")
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (x1 > x0 and y1 > y0):
            raise c.fail(f"{w}.box", f"{box} is empty or inverted: need x1 > x0 and y1 > y0")
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            size = "[0, 1]" if units == "normalized" else f"{width:g}x{height:g} pixels"
            raise c.fail(f"{w}.box", f"{box} lies outside the frame ({size})")
        label = o.get("label")
        if label is not None and not isinstance(label, str):
            raise c.fail(f"{w}.label", f"must be a string, got {_type(label)}")
        objects.append(UserObject(oid, (x0 / width, y0 / height, x1 / width, y1 / height), label))
    rels_in = f.get("relations", [])
    if not isinstance(rels_in, list):
        raise c.fail(f"{where}.relations", f"must be an array, got {_type(rels_in)}")
    relations: list[UserRelation] = []
    for ri, r in enumerate(rels_in):
        w = f"{where}.relations[{ri}]"
        if not isinstance(r, dict):
            raise c.fail(w, f"expected an object, got {_type(r)}")
        unknown = set(r) - {"subject", "predicate", "object"}
        if unknown:
            raise c.fail(w, f"unknown field(s) {sorted(unknown)} (expected subject, predicate, object)")
        ends = []
        for name in ("subject", "object"):
            v = c.key(r, name, w)
            if not (isinstance(v, str) and v) and not _is_int(v):
                raise c.fail(f"{w}.{name}", f"must be an object id (string or integer), got {_type(v)} {v!r}")
            if str(v) not in ids:
                raise c.fail(f"{w}.{name}", f"unknown object id {str(v)!r} (ids in this frame: {sorted(ids)})")
            ends.append(str(v))
        pred = c.key(r, "predicate", w)
        if not isinstance(pred, str) or not pred.strip():
            raise c.fail(f"{w}.predicate", f"must be a non-empty string, got {_type(pred)} {pred!r}")
        relations.append(UserRelation(ends[0], pred, ends[1]))
    return UserFrame(t, objects, relations)


def _nesting(raw: bytes) -> int:
    """The deepest [ / { nesting of a JSON text (brackets inside strings skipped)."""
    depth = deepest = 0
    for m in re.finditer(rb'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', raw):
        tok = m.group()
        if tok in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif tok in (b"]", b"}"):
            depth -= 1
    return deepest


def load_user_graph(path: str | PathLike[str]) -> UserVideoGraph:
    """Read and validate a user scene-graph JSON file (format in the module docstring)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UserGraphError(f"{path}: file does not exist") from None
    except OSError as e:
        raise UserGraphError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise UserGraphError(f"{path}: larger than the {MAX_FILE_BYTES} bytes a user video graph may have")
    if _nesting(raw) > MAX_NESTING:
        raise UserGraphError(f"{path}: nested deeper than {MAX_NESTING} levels")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UserGraphError(f"{path}: not UTF-8 (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise UserGraphError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    graph = parse_user_graph(data, source=str(path))
    log.debug("%s: %d frames, %d tracks", path, len(graph.frames), len(graph.track_ids))
    return graph


def user_graph_tensors(graph: UserVideoGraph, frames: int, slots: int) -> dict[str, np.ndarray]:
    """``graph`` as padded tensors for T = ``frames`` and K = ``slots`` (see the module docstring)."""
    if not _is_int(frames) or frames < 1 or not _is_int(slots) or slots < 1:
        raise ValueError(f"frames and slots must be integers >= 1, got frames={frames!r}, slots={slots!r}")
    T, K = int(frames), int(slots)
    track_of = {oid: m for m, oid in enumerate(graph.track_ids)}
    stable = len(track_of) <= K  # track m in slot m throughout
    slot_box = np.zeros((T, K, 4), dtype=np.float32)
    slot_mask = np.zeros((T, K), dtype=bool)
    track = np.full((T, K), -1, dtype=np.int64)
    rel_adj = np.zeros((T, K, K), dtype=bool)
    rel_adj[:, np.arange(K), np.arange(K)] = True
    for fi, f in enumerate(graph.frames):
        if f.t >= T:
            raise UserGraphError(
                f"{graph.source}: frame t={f.t} (frames[{fi}]): frame index out of range for {T} frames"
            )
        if len(f.objects) > K:
            raise UserGraphError(
                f"{graph.source}: frame t={f.t} (frames[{fi}]): {len(f.objects)} objects, more "
                f"than the {K} slots per frame"
            )
        slot_of: dict[str, int] = {}
        for j, o in enumerate(f.objects):
            k = track_of[o.id] if stable else j
            slot_of[o.id] = k
            slot_box[f.t, k] = o.box
            slot_mask[f.t, k] = True
            track[f.t, k] = track_of[o.id]
        for r in f.relations:
            a, b = slot_of[r.subject], slot_of[r.object]
            rel_adj[f.t, a, b] = rel_adj[f.t, b, a] = True
    slot_pos = np.stack([(slot_box[..., 0] + slot_box[..., 2]) / 2, (slot_box[..., 1] + slot_box[..., 3]) / 2], -1)
    return {
        "slot_box": slot_box,
        "slot_pos": slot_pos.astype(np.float32),
        "slot_mask": slot_mask,
        "track": track,
        "rel_adj": rel_adj,
    }
