"""Seeded synthetic structured videos with captions, exact scene graphs and hard-negative captions.

Why a generator: no package ships a caption corpus (DESIGN.md §7), and the structural heads need
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

Captions name objects by all three attributes ("a large red circle"), re-mention them as "it" when
the previous phrase named only that object, else as "the large red circle"; the attribute negative
only edits an object named in full once, so neither negative contradicts itself textually (the
order negative says when it is physically impossible: ``OrderNegative.plausible``).

Only numpy and the standard library are used, so the generator also runs where torch is absent.
"""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "SHAPES", "COLOURS", "SIZES", "DIRECTIONS", "EVENT_KINDS", "PREDICATES", "TOUCH_EPS", "REL_EPS",
    "ObjectSpec", "ObjectState", "Relation", "Event", "SceneGraph", "Mention", "OrderNegative",
    "AttributeNegative", "Background", "SyntheticVideo", "SyntheticVideoDataset", "generate",
    "generate_video", "render", "object_masks", "cut_and_paste", "box_gap", "duplicate_rate",
]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
# Saturated colours, all far (> 60 levels in some channel) from the grey background, so a pixel's
# owner is recoverable from its colour despite the noise.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 80, 230), "yellow": (235, 220, 50),
    "purple": (150, 60, 200), "cyan": (40, 210, 220), "orange": (245, 140, 30), "white": (245, 245, 245),
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

# Plans with interactions are rejected more often (they need aligned layouts), so they are drawn more
# often; realised events come out roughly move 40%, pass/approach/collide 9-13% each, appear/disappear
# 10-15% (seed 0, 1000 videos).
_KIND_WEIGHTS = {"move": 2.5, "approach": 2.5, "pass": 3.0, "collide": 2.5, "appear": 1.0, "disappear": 1.0}
_TEMPLATES: dict[int, tuple[str, ...]] = {
    2: ("{0}, then {1}", "first {0}, after that {1}", "{0}, and then {1}", "first {0}, then {1}"),
    3: ("{0}, then {1}, then {2}", "first {0}, after that {1}, and finally {2}", "{0}, then {1}, and then {2}",
        "first {0}, then {1}, finally {2}"),
}
_VERB = {"approach": "toward", "pass": "past", "collide": "and hits"}


# ----------------------------------------------------------------------------- scene graph types
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
            "frames": self.frames, "size": self.size,
            "objects": [{"id": o.id, "shape": o.shape, "colour": o.colour, "size": o.size} for o in self.objects],
            "states": [[{"visible": s.visible, "box": list(s.box), "centre": list(s.centre)} for s in row]
                       for row in self.states],
            "relations": [{"frame": r.frame, "subject": r.subject, "predicate": r.predicate, "object": r.object}
                          for r in self.relations],
            "events": [{"kind": e.kind, "subject": e.subject, "object": e.object, "direction": e.direction,
                        "start_frame": e.start_frame, "end_frame": e.end_frame} for e in self.events],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SceneGraph:
        return cls(
            frames=int(d["frames"]), size=int(d["size"]),
            objects=[ObjectSpec(int(o["id"]), o["shape"], o["colour"], o["size"]) for o in d["objects"]],
            states=[[ObjectState(bool(s["visible"]), tuple(float(v) for v in s["box"]),  # type: ignore[arg-type]
                                 tuple(float(v) for v in s["centre"])) for s in row] for row in d["states"]],
            relations=[Relation(int(r["frame"]), int(r["subject"]), r["predicate"], int(r["object"]))
                       for r in d["relations"]],
            events=[Event(e["kind"], int(e["subject"]), None if e["object"] is None else int(e["object"]),
                          e["direction"], int(e["start_frame"]), int(e["end_frame"])) for e in d["events"]],
        )


# ----------------------------------------------------------------------------- caption types
@dataclass(frozen=True)
class Mention:
    """A noun phrase of the caption that names an object: ``caption[start:end] == text``
    (e.g. "large red circle", without the article) - the grounding target for S-ViLM."""

    object_id: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class OrderNegative:
    """The caption's events told in a different order (``event_order`` indexes graph.events in the
    order they are mentioned); false because every event phrase is true exactly once.

    ``plausible``: the told order could happen in some video (visibility stays consistent). When
    False (e.g. "X moves left, then X appears") the negative is refutable from the text alone, so
    training may want to down-weight it; about 85% are plausible."""

    text: str
    event_order: tuple[int, ...]
    plausible: bool = True


@dataclass(frozen=True)
class AttributeNegative:
    """The caption with one attribute word of one mention replaced (``word_index`` into
    ``caption.split(" ")``); false because no object of the video has the resulting attributes."""

    text: str
    object_id: int
    attribute: str  # size | colour | shape
    old: str
    new: str
    word_index: int


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
            "seed": self.seed, "index": self.index, "caption": self.caption, "template": self.template,
            "mentions": [{"object_id": m.object_id, "start": m.start, "end": m.end, "text": m.text}
                         for m in self.mentions],
            "negatives": {
                "order": {"text": o.text, "event_order": list(o.event_order), "plausible": o.plausible},
                "attribute": {"text": a.text, "object_id": a.object_id, "attribute": a.attribute, "old": a.old,
                              "new": a.new, "word_index": a.word_index},
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
            seed=int(d["seed"]), index=int(d["index"]), graph=graph, caption=d["caption"], template=int(d["template"]),
            mentions=[Mention(int(m["object_id"]), int(m["start"]), int(m["end"]), m["text"]) for m in d["mentions"]],
            order_negative=OrderNegative(o["text"], tuple(int(i) for i in o["event_order"]), bool(o["plausible"])),
            attribute_negative=AttributeNegative(a["text"], int(a["object_id"]), a["attribute"], a["old"], a["new"],
                                                 int(a["word_index"])),
            background=bg, frames=render(graph, bg),
        )


# ----------------------------------------------------------------------------- geometry helpers
def box_gap(ca: Sequence[float], ra: float, cb: Sequence[float], rb: float) -> float:
    """Gap between two axis-aligned square boxes (centre, half-extent): > 0 separated, <= 0 overlapping.

    The larger of the per-axis gaps: boxes are apart iff they are apart along at least one axis."""
    return max(abs(ca[0] - cb[0]) - ra - rb, abs(ca[1] - cb[1]) - ra - rb)


def _box(c: Sequence[float], r: float) -> tuple[float, float, float, float]:
    return (float(c[0] - r), float(c[1] - r), float(c[0] + r), float(c[1] + r))


def _relations(frame: int, objects: list[ObjectSpec], centres: np.ndarray, visible: np.ndarray) -> list[Relation]:
    out: list[Relation] = []
    for a in objects:
        for b in objects:
            if a.id == b.id or not (visible[a.id] and visible[b.id]):
                continue
            dx, dy = centres[a.id] - centres[b.id]
            if dx < -REL_EPS:
                out.append(Relation(frame, a.id, "left of", b.id))
            elif dx > REL_EPS:
                out.append(Relation(frame, a.id, "right of", b.id))
            if dy < -REL_EPS:  # image y grows downwards
                out.append(Relation(frame, a.id, "above", b.id))
            elif dy > REL_EPS:
                out.append(Relation(frame, a.id, "below", b.id))
            if box_gap(centres[a.id], a.half, centres[b.id], b.half) <= TOUCH_EPS:
                out.append(Relation(frame, a.id, "touching", b.id))
    return out


def _direction(axis: int, sign: float) -> str:
    return ("right" if sign > 0 else "left") if axis == 0 else ("down" if sign > 0 else "up")


# ----------------------------------------------------------------------------- planning
@dataclass
class _Step:
    kind: str
    subject: int
    object: int | None = None


def _sample_objects(rng: np.random.Generator) -> list[ObjectSpec]:
    n = int(rng.choice([1, 2, 3], p=[0.2, 0.4, 0.4]))
    triples: list[tuple[str, str, str]] = []
    while len(triples) < n:  # unique attribute triples: every caption mention names exactly one object
        t = (str(rng.choice(list(SIZES))), str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES)))
        if t not in triples:
            triples.append(t)
    return [ObjectSpec(i, shape=t[2], colour=t[1], size=t[0]) for i, t in enumerate(triples)]


def _sample_plan(rng: np.random.Generator, n_obj: int, n_events: int) -> tuple[list[_Step], list[bool]]:
    """Event kinds and participants, consistent with visibility; returns the plan and initial visibility.

    Visibility is decided lazily: an object first used by ``appear`` starts invisible, anything
    else starts visible."""
    state = ["?"] * n_obj  # ? undecided (initially), v visible, i invisible
    initial = [True] * n_obj
    appeared: set[int] = set()
    disappeared: set[int] = set()
    plan: list[_Step] = []
    pairs: set[frozenset[int]] = set()
    for _ in range(n_events):
        options: dict[str, list[_Step]] = {k: [] for k in EVENT_KINDS}
        for s in range(n_obj):
            if state[s] in "?v":
                options["move"].append(_Step("move", s))
                if s not in disappeared:
                    options["disappear"].append(_Step("disappear", s))
                for o in range(n_obj):
                    # one interaction per pair: a second one would need the direction already used
                    if o != s and state[o] in "?v" and frozenset((s, o)) not in pairs:
                        for k in ("approach", "pass", "collide"):
                            options[k].append(_Step(k, s, o))
            if state[s] in "?i" and s not in appeared:
                options["appear"].append(_Step("appear", s))
        kinds = [k for k in EVENT_KINDS if options[k]]
        if not kinds:  # e.g. a lone object that appeared and then disappeared: nothing left to do
            raise _Infeasible
        w = np.array([_KIND_WEIGHTS[k] for k in kinds])
        kind = kinds[int(rng.choice(len(kinds), p=w / w.sum()))]
        step = options[kind][int(rng.integers(len(options[kind])))]
        plan.append(step)
        if step.object is not None:
            pairs.add(frozenset((step.subject, step.object)))
        for p in (step.subject, step.object):
            if p is not None and state[p] == "?":
                state[p] = "i" if kind == "appear" and p == step.subject else "v"
                initial[p] = state[p] == "v"
        if kind == "appear":
            state[step.subject] = "v"
            appeared.add(step.subject)
        elif kind == "disappear":
            state[step.subject] = "i"
            disappeared.add(step.subject)
    return plan, initial


def _schedule(rng: np.random.Generator, kinds: list[str], frames: int) -> list[tuple[int, int]]:
    """Start/end frames: every event spans >= 1 transition (motions >= 2 when there is room), and at
    least one static transition separates consecutive events, so event k ends before k+1 starts.
    The slack is spread randomly (lead-in, gaps, longer/slower motions, tail) to vary start times
    and speeds."""
    n, transitions = len(kinds), frames - 1
    motion = [i for i, k in enumerate(kinds) if k in MOTION_KINDS]
    mins = [2 if i in motion else 1 for i in range(n)]
    if sum(mins) + n - 1 > transitions:
        mins = [1] * n
    slack = transitions - sum(mins) - (n - 1)
    if slack < 0:
        raise ValueError(f"{frames} frames cannot hold {n} ordered events")
    bins = 2 + (n - 1) + len(motion)  # lead, tail, gaps, motion extras
    alloc = rng.multinomial(slack, rng.dirichlet(np.ones(bins)))
    lead, gaps, extra = int(alloc[0]), alloc[2:2 + n - 1], dict(zip(motion, alloc[1 + n:]))
    out, t = [], lead
    for i in range(n):
        d = mins[i] + int(extra.get(i, 0))
        out.append((t, t + d))
        t += d + 1 + (int(gaps[i]) if i < n - 1 else 0)
    return out


class _Infeasible(Exception):
    """This layout cannot realise the plan; the caller draws another."""


class _World:
    """Positions and visibility while the plan is played out, with the clearance rules."""

    def __init__(self, objects: list[ObjectSpec], pos: np.ndarray, vis: list[bool]):
        self.objects, self.pos, self.vis = objects, pos, list(vis)
        self.r = np.array([o.half for o in objects])
        self.used_dirs: list[set[str]] = [set() for _ in objects]

    def inside(self, s: int, p: np.ndarray) -> bool:
        lo, hi = self.r[s] + MARGIN, 1.0 - self.r[s] - MARGIN
        return bool(np.all(p >= lo - 1e-12) and np.all(p <= hi + 1e-12))

    def path_ok(self, s: int, end: np.ndarray, exempt: tuple[int, ...] = (), no_crossing: bool = False) -> bool:
        """A straight motion of ``s`` to ``end`` keeps clear of every other visible object.

        Checked on 24 sub-steps (step <= 0.03, smaller than any box, so nothing tunnels through).
        An object already closer than CLEARANCE (e.g. touching after a collision) may only be moved
        away from. With ``no_crossing`` (plain moves) the subject may not cross another object's
        centre line along the motion axis either: a "moves left" should not quietly pass something.
        Interactions may pass bystanders; that never makes a negative true, because negatives only
        name the video's events and attribute triples that no object has."""
        p0 = self.pos[s]
        u = np.linspace(0.0, 1.0, 25)[:, None]
        path = p0 + (end - p0) * u
        axis = int(np.argmax(np.abs(end - p0)))
        for j, o in enumerate(self.objects):
            if j == s or not self.vis[j] or j in exempt:
                continue
            g = np.max(np.abs(path - self.pos[j]) - self.r[s] - self.r[j], axis=1)
            if g[0] >= CLEARANCE:
                if g[1:].min() < CLEARANCE:
                    return False
            elif not np.all(np.diff(g) > 0):
                return False
            if no_crossing and (p0[axis] - self.pos[j][axis]) * (end[axis] - self.pos[j][axis]) <= 0:
                return False
        return True


def _realise_motion(rng: np.random.Generator, w: _World, step: _Step) -> tuple[np.ndarray, str]:
    s, o, kind = step.subject, step.object, step.kind
    p = w.pos[s]
    if kind == "move":
        for d in rng.permutation(list(DIRECTIONS)):
            d = str(d)
            if d in w.used_dirs[s]:
                continue
            axis, sign = DIRECTIONS[d]
            room = (1.0 - MARGIN - w.r[s] - p[axis]) if sign > 0 else (p[axis] - w.r[s] - MARGIN)
            if room < MIN_TRAVEL:
                continue
            for _ in range(3):
                end = p.copy()
                end[axis] += sign * rng.uniform(MIN_TRAVEL, min(room, 0.5))
                if w.path_ok(s, end, no_crossing=True):
                    return end, d
        raise _Infeasible
    assert o is not None
    q, rs, ro = w.pos[o], w.r[s], w.r[o]
    for axis in rng.permutation(2):
        axis, cross = int(axis), 1 - int(axis)
        along = q[axis] - p[axis]
        sign = 1.0 if along > 0 else -1.0
        d = _direction(axis, sign)
        if along == 0 or d in w.used_dirs[s]:
            continue
        cross_gap = abs(q[cross] - p[cross]) - rs - ro
        gap0 = abs(along) - rs - ro
        end = p.copy()
        if kind == "approach":  # stop close (gap 0.05-0.10) but clearly not touching
            if cross_gap > 0.10:
                continue
            end[axis] = q[axis] - sign * (rs + ro + rng.uniform(0.05, 0.10))
            ok = abs(end[axis] - p[axis]) >= MIN_TRAVEL and (end[axis] - p[axis]) * sign > 0 and w.path_ok(s, end)
        elif kind == "collide":  # near-aligned on the cross axis, so the shapes meet, and stop at gap 0
            if abs(q[cross] - p[cross]) > 0.5 * min(rs, ro) or gap0 < MIN_TRAVEL:
                continue
            end[axis] = q[axis] - sign * (rs + ro)
            ok = w.path_ok(s, end, exempt=(o,))
        else:  # pass: offset on the cross axis (never touching), from clearly before to clearly after
            room = (1 - MARGIN - rs - q[axis] if sign > 0 else q[axis] - rs - MARGIN) - rs - ro
            if not (CLEARANCE <= cross_gap <= 0.25) or gap0 < 0.02 or room < 0.02:
                continue
            end[axis] = q[axis] + sign * (rs + ro + rng.uniform(0.02, min(0.15, room)))
            ok = w.path_ok(s, end)
        if ok and w.inside(s, end):
            return end, d
    raise _Infeasible


def _initial_layout(rng: np.random.Generator, objects: list[ObjectSpec], plan: list[_Step]) -> np.ndarray:
    n = len(objects)
    r = np.array([o.half for o in objects])
    pos = np.zeros((n, 2))
    for i in range(n):
        for _ in range(100):
            pos[i] = rng.uniform(r[i] + MARGIN, 1 - r[i] - MARGIN, size=2)
            if all(box_gap(pos[i], r[i], pos[j], r[j]) >= 2 * CLEARANCE for j in range(i)):
                break
        else:
            raise _Infeasible
    # Random layouts rarely line two objects up for a collision or a pass, so most of the time the
    # subject of an interaction is placed relative to its object, provided neither has moved before
    # that event and the subject was not already placed or used as an anchor (the rest stays random).
    moved: set[int] = set()
    fixed: set[int] = set()
    for st in plan:
        o = st.object
        if (o is not None and st.subject not in moved | fixed and o not in moved
                and rng.random() < 0.9 and _place_for(rng, st, pos, r, move_anchor=o not in fixed)):
            fixed |= {st.subject, o}
        if st.kind in MOTION_KINDS:
            moved.add(st.subject)
    return pos


def _place_for(rng: np.random.Generator, st: _Step, pos: np.ndarray, r: np.ndarray, move_anchor: bool) -> bool:
    """Moves the subject of an interaction to a start position from which it can happen (and the
    object too, when ``move_anchor``: two large shapes only pass each other near the middle)."""
    s, o = st.subject, st.object
    assert o is not None
    rs, ro = r[s], r[o]
    lo, hi = rs + MARGIN, 1 - rs - MARGIN
    others = [j for j in range(len(pos)) if j not in (s, o)]
    for _ in range(40):
        axis = int(rng.integers(2))
        cross, side = 1 - axis, float(rng.choice([-1.0, 1.0]))  # side of o the subject starts on
        q = pos[o].copy()
        if move_anchor and rng.random() < 0.5:
            q = rng.uniform(ro + MARGIN, 1 - ro - MARGIN, size=2)
            if any(box_gap(q, ro, pos[j], r[j]) < 2 * CLEARANCE for j in others):
                continue
        c = q.copy()
        if st.kind == "pass":
            c[axis] += side * (rs + ro + rng.uniform(0.02, 0.2))
            c[cross] += rng.choice([-1.0, 1.0]) * (rs + ro + rng.uniform(CLEARANCE + 0.01, 0.2))
            after = q[axis] - side * (rs + ro + 0.02)  # the pass must have room on the far side
            if not lo <= after <= hi:
                continue
        else:
            c[axis] += side * (rs + ro + rng.uniform(0.15, 0.45))
            c[cross] += rng.uniform(-0.4, 0.4) * min(rs, ro) if st.kind == "collide" else rng.uniform(-1, 1) * (rs + ro)
        if np.all(c >= lo) and np.all(c <= hi) and all(box_gap(c, rs, pos[j], r[j]) >= 2 * CLEARANCE for j in others):
            pos[s], pos[o] = c, q
            return True
    return False


def _realise(rng: np.random.Generator, objects: list[ObjectSpec], plan: list[_Step], initial: list[bool],
             frames: int) -> tuple[np.ndarray, np.ndarray, list[Event]]:
    """Plays the plan out: centres [T, N, 2], visibility [T, N] and the events, or _Infeasible."""
    sched = _schedule(rng, [st.kind for st in plan], frames)
    w = _World(objects, _initial_layout(rng, objects, plan), initial)
    n = len(objects)
    cen = np.zeros((frames, n, 2))
    vis = np.zeros((frames, n), dtype=bool)
    events: list[Event] = []
    t = 0
    for st, (a, b) in zip(plan, sched):
        cen[t:a + 1], vis[t:a + 1] = w.pos, w.vis  # static until the event starts
        s = st.subject
        if st.kind in MOTION_KINDS:
            end, d = _realise_motion(rng, w, st)
            u = (np.arange(1, b - a + 1) / (b - a))[:, None]
            cen[a + 1:b + 1] = w.pos
            cen[a + 1:b + 1, s] = w.pos[s] + (end - w.pos[s]) * u  # constant speed along one axis
            vis[a + 1:b + 1] = w.vis
            w.pos = w.pos.copy()
            w.pos[s] = end
            w.used_dirs[s].add(d)
            events.append(Event(st.kind, s, st.object, d, a, b))
        else:
            if st.kind == "appear":  # may not appear on top of (or touching) a visible object
                if any(w.vis[j] and box_gap(w.pos[s], w.r[s], w.pos[j], w.r[j]) < CLEARANCE
                       for j in range(n) if j != s):
                    raise _Infeasible
            w.vis = list(w.vis)
            w.vis[s] = st.kind == "appear"
            cen[a + 1:b + 1], vis[a + 1:b + 1] = w.pos, w.vis
            events.append(Event(st.kind, s, None, None, a, b))
        t = b + 1
    cen[t:], vis[t:] = w.pos, w.vis
    return cen, vis, events


def _graph(objects: list[ObjectSpec], cen: np.ndarray, vis: np.ndarray, events: list[Event], size: int) -> SceneGraph:
    frames = cen.shape[0]
    states = [[ObjectState(bool(vis[t, o.id]), _box(cen[t, o.id], o.half),
                           (float(cen[t, o.id, 0]), float(cen[t, o.id, 1]))) for o in objects] for t in range(frames)]
    relations = [r for t in range(frames) for r in _relations(t, objects, cen[t], vis[t])]
    return SceneGraph(frames, size, objects, states, relations, events)


def _touch_explained(g: SceneGraph) -> bool:
    """Every new contact is the end of a collide event between those two objects (no accidental
    collisions), so "touching" is part of the described dynamics."""
    touching = [{(r.subject, r.object) for r in g.relations_at(t) if r.predicate == "touching"}
                for t in range(g.frames)]
    for t in range(g.frames):
        for a, b in touching[t]:
            if t > 0 and (a, b) in touching[t - 1]:
                continue
            if not any(e.kind == "collide" and e.end_frame == t and {e.subject, e.object} == {a, b} for e in g.events):
                return False
    return True


# ----------------------------------------------------------------------------- captions
def _compose(graph: SceneGraph, order: Sequence[int],
             template: str) -> tuple[str, list[Mention], list[tuple[int, int, str]]]:
    """Caption text from events in ``order``; also the mentions and attribute-word slots
    (word index, object id, attribute). First mention of an object takes "a"; a re-mention is "it"
    when the previous phrase named only that object (unambiguous), else "the" + its attributes.

    Pronouns matter for the attribute negative: changing one word of one of two full mentions
    ("a large red circle ..., then the large blue circle ...") would be detectable from the text
    alone, so negatives only edit objects named in full exactly once, and "it" keeps those common."""
    objs = graph.objects
    seen: set[int] = set()
    text = ""
    mentions: list[Mention] = []
    slots: list[tuple[int, int, str]] = []
    prev_only: int | None = None  # the object the previous phrase named, if it named just one

    def noun(oid: int) -> None:
        nonlocal text
        if oid in seen and oid == prev_only:
            text += "it"
            return
        text += ("the " if oid in seen else "a ")
        seen.add(oid)
        start = len(text)
        for attr in ATTRIBUTES:
            slots.append((text.count(" "), oid, attr))
            text += getattr(objs[oid], attr) + (" " if attr != "shape" else "")
        mentions.append(Mention(oid, start, len(text), text[start:]))

    for piece in re.split(r"(\{\d\})", template):
        if not re.fullmatch(r"\{\d\}", piece):
            text += piece
            continue
        e = graph.events[order[int(piece[1:-1])]]
        noun(e.subject)
        if e.kind == "move":
            text += f" moves {e.direction}"
        elif e.kind in _VERB:
            text += f" moves {e.direction} {_VERB[e.kind]} "
            assert e.object is not None
            noun(e.object)
        else:
            text += " appears" if e.kind == "appear" else " disappears"
        prev_only = e.subject if e.object is None else None
    return text, mentions, slots


def _plausible(events: Sequence[Event]) -> bool:
    """Could these events happen in this order? Appear needs an invisible object, everything else
    a visible one; each object's initial visibility is free."""
    state: dict[int, bool] = {}
    for e in events:
        if e.kind in ("appear", "disappear"):
            if state.get(e.subject, e.kind == "disappear") != (e.kind == "disappear"):
                return False
            state[e.subject] = e.kind == "appear"
        else:
            for p in (e.subject, e.object):
                if p is not None and not state.setdefault(p, True):
                    return False
    return True


def _order_negative(rng: np.random.Generator, graph: SceneGraph, template: str, caption: str) -> OrderNegative:
    """Preferably one swapped adjacent pair (the minimal order change) that could still happen, so the
    negative is only refutable by watching; else any other plausible order; else an adjacent swap."""
    ev, n = graph.events, len(graph.events)
    swaps = []
    for i in range(n - 1):
        order = list(range(n))
        order[i], order[i + 1] = order[i + 1], order[i]
        swaps.append(tuple(order))
    others = [o for o in itertools.permutations(range(n)) if o not in swaps and list(o) != sorted(o)]
    for tier in (swaps, others):
        good = [o for o in tier if _plausible([ev[i] for i in o])]
        if good:
            order, plausible = good[int(rng.integers(len(good)))], True
            break
    else:
        order, plausible = swaps[int(rng.integers(len(swaps)))], False
    text = _compose(graph, order, template)[0]
    if text == caption:  # impossible while event phrases are unique; guarded because it must never ship
        raise _Infeasible
    return OrderNegative(text, tuple(order), plausible)


def _attribute_negative(rng: np.random.Generator, graph: SceneGraph, caption: str, mentions: list[Mention],
                        slots: list[tuple[int, int, str]]) -> AttributeNegative:
    values = {"size": list(SIZES), "colour": list(COLOURS), "shape": list(SHAPES)}
    existing = {o.triple for o in graph.objects}
    named = [m.object_id for m in mentions]
    slots = [sl for sl in slots if named.count(sl[1]) == 1]  # see _compose: no text-only giveaway
    cands: list[tuple[int, int, str, str]] = []
    for attr in rng.permutation(ATTRIBUTES):  # attribute kind first, so sizes are not under-drawn
        cands = _attribute_candidates(graph, slots, str(attr), values, existing)
        if cands:
            break
    if not cands:
        raise _Infeasible
    wi, oid, a, v = cands[int(rng.integers(len(cands)))]
    words = caption.split(" ")
    old = getattr(graph.objects[oid], a)
    assert words[wi].startswith(old)
    words[wi] = v + words[wi][len(old):]  # keeps a trailing comma after a shape noun
    return AttributeNegative(" ".join(words), oid, a, old, v, wi)


def _attribute_candidates(graph: SceneGraph, slots: list[tuple[int, int, str]], attr: str, values: dict[str, list[str]],
                          existing: set[tuple[str, str, str]]) -> list[tuple[int, int, str, str]]:
    cands = []
    for wi, oid, a in slots:
        if a != attr:
            continue
        obj = graph.objects[oid]
        for v in values[a]:
            t = dict(zip(ATTRIBUTES, obj.triple))
            t[a] = v
            new = (t["size"], t["colour"], t["shape"])
            if v != getattr(obj, a) and new not in existing:  # names no object of the video: false
                cands.append((wi, oid, a, v))
    return cands


# ----------------------------------------------------------------------------- rendering
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


def object_masks(video: SyntheticVideo | SceneGraph) -> np.ndarray:
    """Per-frame label map int32 [T, H, W]: 0 background, id + 1 for objects, topmost wins.

    The renderer paints exactly these pixels, so grounding maps can be scored against it."""
    graph = video.graph if isinstance(video, SyntheticVideo) else video
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


def _sample_background(rng: np.random.Generator) -> Background:
    grey = int(rng.integers(45, 106))
    rgb = tuple(int(np.clip(grey + rng.integers(-10, 11), 0, 255)) for _ in range(3))
    waves = tuple((float(rng.uniform(-5, 5)), float(rng.uniform(-5, 5)), float(rng.uniform(0, 2 * np.pi)),
                   float(rng.uniform(3, 8))) for _ in range(3))
    return Background(rgb, waves, noise=6, seed=int(rng.integers(2**63 - 1)))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- public generation API
def generate_video(seed: int, index: int, frames: int = 8, size: int = 112) -> SyntheticVideo:
    """Video ``index`` of the stream ``seed``; depends only on (seed, index, frames, size)."""
    if frames < 4:
        raise ValueError(f"frames must be >= 4 (two ordered events need 3 transitions), got {frames}")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, int(index), 0x5EED])
    for attempt in range(200):
        objects = _sample_objects(rng)
        n_events = 3 if frames - 1 >= 5 and rng.random() < 0.35 else 2
        try:
            plan, initial = _sample_plan(rng, len(objects), n_events)
        except _Infeasible:
            continue
        for _ in range(25):  # layouts for this plan; then a new plan
            try:
                cen, vis, events = _realise(rng, objects, plan, initial, frames)
                graph = _graph(objects, cen, vis, events, size)
                if not _touch_explained(graph):
                    raise _Infeasible
                t = int(rng.integers(len(_TEMPLATES[n_events])))
                template = _TEMPLATES[n_events][t]
                caption, mentions, slots = _compose(graph, range(n_events), template)
                order_neg = _order_negative(rng, graph, template, caption)
                attr_neg = _attribute_negative(rng, graph, caption, mentions, slots)
            except _Infeasible:
                continue
            bg = _sample_background(rng)
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


def cut_and_paste(video_a: SyntheticVideo | np.ndarray, video_b: SyntheticVideo | np.ndarray,
                  cut_frame: int) -> tuple[np.ndarray, int]:
    """S-ViLM's artificial scene change: frames [0, cut_frame) of a, then [cut_frame, T) of b.

    Returns the spliced uint8 [T, H, W, 3] frames and the index of the first frame from b (the true
    scene boundary, equal to ``cut_frame``)."""
    a = video_a.frames if isinstance(video_a, SyntheticVideo) else np.asarray(video_a)
    b = video_b.frames if isinstance(video_b, SyntheticVideo) else np.asarray(video_b)
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"clips must have the same [T, H, W, C] shape, got {a.shape} and {b.shape}")
    if not 0 < cut_frame < a.shape[0]:
        raise ValueError(f"cut_frame must be in [1, {a.shape[0] - 1}], got {cut_frame}")
    out = np.concatenate([a[:cut_frame], b[cut_frame:]])
    return out, int(cut_frame)


def duplicate_rate(captions: Sequence[str]) -> float:
    """Fraction of captions that repeat an earlier caption."""
    return 1.0 - len(set(captions)) / len(captions) if captions else 0.0


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
