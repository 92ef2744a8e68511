"""Planning and playing out a synthetic video: objects, an event plan consistent with visibility, a
schedule, a layout, and the trajectories that realise the plan under the clearance rules; then the
per-frame scene graph (states and relations) of the result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .scene import (
    CLEARANCE,
    COLOURS,
    DIRECTIONS,
    EVENT_KINDS,
    MARGIN,
    MIN_TRAVEL,
    MOTION_KINDS,
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

# Plans with interactions are rejected more often (they need aligned layouts), so they are drawn more
# often; realised events come out roughly move 40%, pass/approach/collide 9-13% each, appear/disappear
# 10-15% (seed 0, 1000 videos).
_KIND_WEIGHTS = {"move": 2.5, "approach": 2.5, "pass": 3.0, "collide": 2.5, "appear": 1.0, "disappear": 1.0}


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


@dataclass
class _Step:
    kind: str
    subject: int
    object: int | None = None


def sample_objects(rng: np.random.Generator) -> list[ObjectSpec]:
    n = int(rng.choice([1, 2, 3], p=[0.2, 0.4, 0.4]))
    triples: list[tuple[str, str, str]] = []
    while len(triples) < n:  # unique attribute triples: every caption mention names exactly one object
        t = (str(rng.choice(list(SIZES))), str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES)))
        if t not in triples:
            triples.append(t)
    return [ObjectSpec(i, shape=t[2], colour=t[1], size=t[0]) for i, t in enumerate(triples)]


def sample_plan(rng: np.random.Generator, n_obj: int, n_events: int) -> tuple[list[_Step], list[bool]]:
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
            raise Infeasible
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
    lead, gaps, extra = int(alloc[0]), alloc[2 : 2 + n - 1], dict(zip(motion, alloc[1 + n :]))
    out, t = [], lead
    for i in range(n):
        d = mins[i] + int(extra.get(i, 0))
        out.append((t, t + d))
        t += d + 1 + (int(gaps[i]) if i < n - 1 else 0)
    return out


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
        for j in range(len(self.objects)):
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
        raise Infeasible
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
    raise Infeasible


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
            raise Infeasible
    # Random layouts rarely line two objects up for a collision or a pass, so most of the time the
    # subject of an interaction is placed relative to its object, provided neither has moved before
    # that event and the subject was not already placed or used as an anchor (the rest stays random).
    moved: set[int] = set()
    fixed: set[int] = set()
    for st in plan:
        o = st.object
        if (
            o is not None
            and st.subject not in moved | fixed
            and o not in moved
            and rng.random() < 0.9
            and _place_for(rng, st, pos, r, move_anchor=o not in fixed)
        ):
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


def realise(
    rng: np.random.Generator, objects: list[ObjectSpec], plan: list[_Step], initial: list[bool], frames: int
) -> tuple[np.ndarray, np.ndarray, list[Event]]:
    """Plays the plan out: centres [T, N, 2], visibility [T, N] and the events, or Infeasible."""
    sched = _schedule(rng, [st.kind for st in plan], frames)
    w = _World(objects, _initial_layout(rng, objects, plan), initial)
    n = len(objects)
    cen = np.zeros((frames, n, 2))
    vis = np.zeros((frames, n), dtype=bool)
    events: list[Event] = []
    t = 0
    for st, (a, b) in zip(plan, sched):
        cen[t : a + 1], vis[t : a + 1] = w.pos, w.vis  # static until the event starts
        s = st.subject
        if st.kind in MOTION_KINDS:
            end, d = _realise_motion(rng, w, st)
            u = (np.arange(1, b - a + 1) / (b - a))[:, None]
            cen[a + 1 : b + 1] = w.pos
            cen[a + 1 : b + 1, s] = w.pos[s] + (end - w.pos[s]) * u  # constant speed along one axis
            vis[a + 1 : b + 1] = w.vis
            w.pos = w.pos.copy()
            w.pos[s] = end
            w.used_dirs[s].add(d)
            events.append(Event(st.kind, s, st.object, d, a, b))
        else:
            if st.kind == "appear":  # may not appear on top of (or touching) a visible object
                if any(
                    w.vis[j] and box_gap(w.pos[s], w.r[s], w.pos[j], w.r[j]) < CLEARANCE for j in range(n) if j != s
                ):
                    raise Infeasible
            w.vis = list(w.vis)
            w.vis[s] = st.kind == "appear"
            cen[a + 1 : b + 1], vis[a + 1 : b + 1] = w.pos, w.vis
            events.append(Event(st.kind, s, None, None, a, b))
        t = b + 1
    cen[t:], vis[t:] = w.pos, w.vis
    return cen, vis, events


def build_graph(
    objects: list[ObjectSpec], cen: np.ndarray, vis: np.ndarray, events: list[Event], size: int
) -> SceneGraph:
    frames = cen.shape[0]
    states = [
        [
            ObjectState(
                bool(vis[t, o.id]), _box(cen[t, o.id], o.half), (float(cen[t, o.id, 0]), float(cen[t, o.id, 1]))
            )
            for o in objects
        ]
        for t in range(frames)
    ]
    relations = [r for t in range(frames) for r in _relations(t, objects, cen[t], vis[t])]
    return SceneGraph(frames, size, objects, states, relations, events)


def touch_explained(g: SceneGraph) -> bool:
    """Every new contact is the end of a collide event between those two objects (no accidental
    collisions), so "touching" is part of the described dynamics."""
    touching = [
        {(r.subject, r.object) for r in g.relations_at(t) if r.predicate == "touching"} for t in range(g.frames)
    ]
    for t in range(g.frames):
        for a, b in touching[t]:
            if t > 0 and (a, b) in touching[t - 1]:
                continue
            if not any(e.kind == "collide" and e.end_frame == t and {e.subject, e.object} == {a, b} for e in g.events):
                return False
    return True
