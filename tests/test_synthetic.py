"""finsta.data.synthetic: determinism, pixels vs graph, events vs trajectories, relations, captions
and hard negatives (checked by an independent caption parser against the graph), JSON, cut-and-paste."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest

from finsta.data import cut_and_paste as cut_and_paste_module
from finsta.data import synthetic
from finsta.data.cut_and_paste import cut_and_paste
from finsta.data.synthetic import (
    COLOURS,
    DIRECTIONS,
    EVENT_KINDS,
    REL_EPS,
    SHAPES,
    SIZES,
    TOUCH_EPS,
    SceneGraph,
    SyntheticVideo,
    SyntheticVideoDataset,
    duplicate_rate,
    generate,
    object_masks,
)


@pytest.fixture(scope="module", params=[(150, 8, 112), (40, 16, 64), (40, 4, 96)], ids=lambda p: f"T{p[1]}-{p[2]}px")
def videos(request) -> list[SyntheticVideo]:
    n, frames, size = request.param
    return generate(n, seed=11, frames=frames, size=size)


# ----------------------------------------------------------------------------- independent caption reader
_NP = r"(?:(?:a|the) (small|large) (\w+) (\w+)|(it))"
_PHRASE = re.compile(rf"^{_NP} (?:(appears|disappears)|moves (left|right|up|down)(?: (toward|past|and hits) {_NP})?)$")
_CONNECTIVE = re.compile(r", (?:and then|then|after that|and finally|finally) ")
_KIND = {
    "appears": "appear",
    "disappears": "disappear",
    None: "move",
    "toward": "approach",
    "past": "pass",
    "and hits": "collide",
}


def parse(caption: str) -> list[tuple]:
    """(kind, subject triple, direction, object triple or None) per phrase, in mention order."""
    body = caption[len("first ") :] if caption.startswith("first ") else caption
    out: list[tuple] = []
    for part in _CONNECTIVE.split(body):
        m = _PHRASE.match(part)
        assert m, f"unparseable phrase {part!r} in {caption!r}"
        size, colour, shape, it, vis, direction, rel, osize, ocolour, oshape, oit = m.groups()
        if it or oit:  # "it" is only used for the single object of the previous phrase
            assert out and out[-1][3] is None, caption
            prev = out[-1][1]
        subj = prev if it else (size, colour, shape)
        obj = None if rel is None else prev if oit else (osize, ocolour, oshape)
        out.append((_KIND[vis] if vis else _KIND[rel], subj, direction, obj))
    return out


def describes(caption: str, graph: SceneGraph) -> bool:
    """True iff every phrase is an event of the graph and they happen in the stated order."""
    triple = {o.id: (o.size, o.colour, o.shape) for o in graph.objects}
    last_end = -1
    for kind, subj, direction, obj in parse(caption):
        match = [
            e
            for e in graph.events
            if e.kind == kind
            and triple[e.subject] == subj
            and e.direction == direction
            and (obj is None) == (e.object is None)
            and (obj is None or triple[e.object] == obj)
            and e.start_frame > last_end
        ]
        if not match:
            return False
        last_end = min(e.end_frame for e in match)
    return True


# ----------------------------------------------------------------------------- tests
def test_deterministic_per_seed_and_index():
    a, b = generate(6, seed=5), generate(6, seed=5)
    assert [v.frames.tobytes() for v in a] == [v.frames.tobytes() for v in b]
    assert [json.dumps(v.to_dict()) for v in a] == [json.dumps(v.to_dict()) for v in b]
    # item i depends only on (seed, i): not on n, not on what was generated before
    assert SyntheticVideoDataset(50, seed=5)[4].frames.tobytes() == a[4].frames.tobytes()
    assert SyntheticVideoDataset(6, seed=5)[-1].caption == a[5].caption
    assert len({v.frames.tobytes() for v in a}) == 6 and len({v.caption for v in a}) == 6  # items differ
    c = generate(6, seed=6)
    assert all(x.frames.tobytes() != y.frames.tobytes() for x, y in zip(a, c))
    assert [v.caption for v in a] != [v.caption for v in c]


def test_shapes_dtypes_and_config(videos):
    for v in videos[:10]:
        T, S = v.graph.frames, v.graph.size
        assert v.frames.shape == (T, S, S, 3) and v.frames.dtype == np.uint8
        m = object_masks(v)
        assert m.shape == (T, S, S) and np.issubdtype(m.dtype, np.integer)
        assert set(np.unique(m)) <= {0} | {o.id + 1 for o in v.graph.objects}
    v = SyntheticVideoDataset(3, seed=1, frames=12, size=64)[2]
    assert v.frames.shape == (12, 64, 64, 3) and v.graph.frames == 12 and v.graph.size == 64
    assert object_masks(v.graph).shape == (12, 64, 64)
    ds = SyntheticVideoDataset(3, seed=1)
    assert len(ds) == 3 and len(list(ds)) == 3
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(ValueError, match="frames must be >= 4"):
        generate(1, frames=3)


def test_features_interface(videos):
    """What finsta.train.features reads: frames, caption, negatives["order"], negatives["attribute"]."""
    v = videos[0]
    assert isinstance(v.caption, str) and set(v.negatives) == {"order", "attribute"}
    assert len({v.caption, v.negatives["order"], v.negatives["attribute"]}) == 3


def test_pixels_and_masks_agree_with_boxes(videos):
    checked = occluded = 0
    for v in videos[:60]:
        g, labels = v.graph, object_masks(v)
        S = g.size
        vis, cen, boxes = g.visible(), g.centres(), g.boxes()
        for t in range(g.frames):
            for o in g.objects:
                mask = labels[t] == o.id + 1
                if not vis[t, o.id]:
                    assert not mask.any(), "an invisible object owns pixels"
                    continue
                x, y = (cen[t, o.id] * S).astype(int)
                if labels[t, y, x] != o.id + 1:
                    occluded += 1
                    continue
                checked += 1
                assert np.abs(v.frames[t, y, x].astype(int) - COLOURS[o.colour]).max() <= 12, (v.index, t, o)
                # every mask pixel lies inside the box (1 px slack for pixel-centre sampling) ...
                ys, xs = np.nonzero(mask)
                x0, y0, x1, y1 = boxes[t, o.id] * S
                assert xs.min() >= x0 - 1 and xs.max() + 1 <= x1 + 1 and ys.min() >= y0 - 1 and ys.max() + 1 <= y1 + 1
                # ... and, for an object nobody covers, the mask spans the box (the shape touches its box)
                covered = any(
                    p.id > o.id
                    and vis[t, p.id]
                    and np.max(np.abs(cen[t, p.id] - cen[t, o.id])) < SIZES[p.size] + SIZES[o.size]
                    for p in g.objects
                )  # a box drawn on top overlaps
                if not covered:
                    assert abs(xs.min() - x0) <= 1.5 and abs(xs.max() + 1 - x1) <= 1.5
                    assert abs(ys.min() - y0) <= 1.5 and abs(ys.max() + 1 - y1) <= 1.5
                    # the painted pixels have the object's colour (noise is +-6)
                    assert np.abs(v.frames[t][mask].mean(0) - COLOURS[o.colour]).max() <= 3
                # boxes are the exact extents: inside the frame and of the object's size
                assert np.allclose(boxes[t, o.id, 2:] - boxes[t, o.id, :2], 2 * SIZES[o.size])
                assert boxes[t, o.id].min() >= 0 and boxes[t, o.id].max() <= 1
    assert checked > 200 and occluded <= 0.01 * checked


def test_events_follow_trajectories_and_are_complete(videos):
    for v in videos:
        g = v.graph
        vis, cen, ev = g.visible(), g.centres(), g.events
        assert len(ev) >= 2 and all(e.kind in EVENT_KINDS for e in ev)
        assert all(a.end_frame < b.start_frame for a, b in zip(ev, ev[1:])), "events must be strictly ordered"
        for e in ev:
            s, a, b = e.subject, e.start_frame, e.end_frame
            assert 0 <= a < b < g.frames
            if e.kind == "appear":
                assert not vis[a, s] and vis[b, s]
            elif e.kind == "disappear":
                assert vis[a, s] and not vis[b, s]
            else:
                axis, sign = DIRECTIONS[e.direction]
                track = cen[a : b + 1, s]
                assert np.all(sign * np.diff(track[:, axis]) > 0), (v.index, e)  # e.g. "left": x decreases
                assert np.allclose(track[:, 1 - axis], track[0, 1 - axis])  # along one axis only
                assert vis[a : b + 1, s].all()
                assert e.object is None or vis[a : b + 1, e.object].all()
            if e.kind in ("approach", "pass", "collide"):
                o = e.object
                rel_a = {r.predicate for r in g.relations_at(a) if (r.subject, r.object) == (s, o)}
                rel_b = {r.predicate for r in g.relations_at(b) if (r.subject, r.object) == (s, o)}
                gaps = [
                    np.max(np.abs(cen[t, s] - cen[t, o])) - SIZES[g.objects[s].size] - SIZES[g.objects[o].size]
                    for t in range(a, b + 1)
                ]
                if e.kind == "approach":
                    assert np.all(np.diff(gaps) < 0) and gaps[-1] > TOUCH_EPS and "touching" not in rel_b
                elif e.kind == "collide":
                    assert "touching" in rel_b and "touching" not in rel_a and np.all(np.diff(gaps) < 0)
                else:  # the subject ends on the other side of the object along the motion axis
                    before, after = {
                        "right": ("left of", "right of"),
                        "left": ("right of", "left of"),
                        "down": ("above", "below"),
                        "up": ("below", "above"),
                    }[e.direction]
                    assert before in rel_a and after in rel_b and all(x > TOUCH_EPS for x in gaps)
        # completeness: every change of position or visibility is inside an event of that object
        for t in range(g.frames - 1):
            for o in g.objects:
                moved = not np.allclose(cen[t, o.id], cen[t + 1, o.id])
                flipped = vis[t, o.id] != vis[t + 1, o.id]
                covering = [e for e in ev if e.subject == o.id and e.start_frame <= t < e.end_frame]
                if moved:
                    assert any(e.kind not in ("appear", "disappear") for e in covering), (v.index, t, o)
                if flipped:
                    assert any(e.kind in ("appear", "disappear") for e in covering), (v.index, t, o)


def test_relations_match_centres(videos):
    for v in videos:
        g = v.graph
        vis, cen = g.visible(), g.centres()
        half = {o.id: SIZES[o.size] for o in g.objects}
        expected = set()
        for t in range(g.frames):
            for a in g.objects:
                for b in g.objects:
                    if a.id == b.id or not (vis[t, a.id] and vis[t, b.id]):
                        continue
                    (xa, ya), (xb, yb) = cen[t, a.id], cen[t, b.id]
                    for pred, holds in (
                        ("left of", xa < xb - REL_EPS),
                        ("right of", xa > xb + REL_EPS),
                        ("above", ya < yb - REL_EPS),
                        ("below", ya > yb + REL_EPS),
                        ("touching", max(abs(xa - xb), abs(ya - yb)) - half[a.id] - half[b.id] <= TOUCH_EPS),
                    ):
                        if holds:
                            expected.add((t, a.id, pred, b.id))
        assert {(r.frame, r.subject, r.predicate, r.object) for r in g.relations} == expected
        # every new contact is the end of a collide event between the two (no unnamed collisions)
        for r in g.relations:
            if r.predicate == "touching" and not any(
                q.frame == r.frame - 1 and (q.subject, q.predicate, q.object) == (r.subject, "touching", r.object)
                for q in g.relations
            ):
                assert any(
                    e.kind == "collide" and e.end_frame == r.frame and {e.subject, e.object} == {r.subject, r.object}
                    for e in g.events
                ), (v.index, r)


def test_caption_true_and_negatives_false(videos):
    for v in videos:
        g = v.graph
        assert len(parse(v.caption)) == len(g.events)
        assert describes(v.caption, g), v.caption
        for neg in (v.negatives["order"], v.negatives["attribute"]):
            assert neg != v.caption
            assert not describes(neg, g), (v.caption, neg)


def possible(phrases: list[tuple]) -> bool:
    """Could the told sequence happen at all? (appear needs the object unseen, the rest visible)"""
    shown: dict[tuple, bool] = {}
    for kind, subj, _, obj in phrases:
        if kind in ("appear", "disappear"):
            if shown.get(subj, kind == "disappear") != (kind == "disappear"):
                return False
            shown[subj] = kind == "appear"
        elif not all(shown.setdefault(p, True) for p in (subj, obj) if p is not None):
            return False
    return True


def test_order_negative_swaps_real_events(videos):
    flags = []
    for v in videos:
        ev, neg = v.graph.events, v.order_negative
        assert sorted(neg.event_order) == list(range(len(ev))) and list(neg.event_order) != sorted(neg.event_order)
        # the same phrases, told in an order the graph contradicts: some event mentioned earlier starts later
        assert sorted(parse(neg.text)) == sorted(parse(v.caption))
        mentioned = [ev[i] for i in neg.event_order]
        assert any(a.start_frame > b.end_frame for a, b in zip(mentioned, mentioned[1:]))
        assert [parse(v.caption)[i] for i in neg.event_order] == parse(neg.text)
        # plausible: the told order could happen, so only the video refutes it (no text-only giveaway)
        assert possible(parse(v.caption)) and neg.plausible == possible(parse(neg.text))
        if not neg.plausible:  # only when no reordering at all could happen
            assert not any(
                possible([parse(v.caption)[i] for i in o])
                for o in itertools.permutations(range(len(v.events)))
                if list(o) != sorted(o)
            )
        flags.append(neg.plausible)
    assert np.mean(flags) >= 0.75


def test_attribute_negative_differs_in_exactly_one_word(videos):
    kinds = set()
    for v in videos:
        neg, g = v.attribute_negative, v.graph
        w0, w1 = v.caption.split(" "), neg.text.split(" ")
        diff = [i for i, (a, b) in enumerate(zip(w0, w1)) if a != b]
        assert len(w0) == len(w1) and diff == [neg.word_index]
        old, new = w0[diff[0]].rstrip(","), w1[diff[0]].rstrip(",")
        values = {"size": set(SIZES), "colour": set(COLOURS), "shape": set(SHAPES)}[neg.attribute]
        assert old == neg.old and new == neg.new and old != new and {old, new} <= values
        assert getattr(g.objects[neg.object_id], neg.attribute) == old
        # false by construction: the changed noun phrase names no object of the video
        changed = [p for p in parse(neg.text) if p not in parse(v.caption)]
        assert changed and all(g.find(*p[1]) is None or (p[3] is not None and g.find(*p[3]) is None) for p in changed)
        # and not detectable from the text alone: the edited object is named in full only once
        assert [m.object_id for m in v.mentions].count(neg.object_id) == 1
        kinds.add(neg.attribute)
    assert kinds == {"size", "colour", "shape"}


def test_mentions_ground_caption_nouns(videos):
    for v in videos[:50]:
        assert v.mentions
        named = set()
        for m in v.mentions:
            assert v.caption[m.start : m.end] == m.text == v.graph.objects[m.object_id].name
            named.add(m.object_id)
        assert named == {e.subject for e in v.events} | {e.object for e in v.events if e.object is not None}


def test_json_round_trip(videos):
    for v in videos[:15]:
        d = json.loads(json.dumps(v.to_dict()))
        w = SyntheticVideo.from_dict(d)
        assert w.to_dict() == v.to_dict()
        assert w.graph == v.graph and w.caption == v.caption and w.negatives == v.negatives
        assert w.frames.tobytes() == v.frames.tobytes()  # re-rendered bit-exactly from graph + background
        assert SceneGraph.from_dict(json.loads(json.dumps(v.graph.to_dict()))) == v.graph


def test_cut_and_paste(videos):
    a, b = videos[0], videos[1]
    T = a.graph.frames
    for k in (1, T // 2, T - 1):
        frames, boundary = cut_and_paste(a, b, k)
        assert boundary == k and frames.shape == a.frames.shape and frames.dtype == np.uint8
        assert np.array_equal(frames[:k], a.frames[:k]) and np.array_equal(frames[k:], b.frames[k:])
        # the splice is where consecutive frames differ most (different background and objects)
        d = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
        assert int(np.argmax(d)) + 1 == boundary
    assert cut_and_paste(a.frames, b.frames, 2)[1] == 2
    for bad in (0, T, -1):
        with pytest.raises(ValueError, match="cut_frame"):
            cut_and_paste(a, b, bad)
    with pytest.raises(ValueError, match="same"):
        cut_and_paste(a.frames, b.frames[:, :, :-1], 2)


def test_held_out_captions_are_diverse():
    held = generate(200, seed=100_000)
    rate = duplicate_rate([v.caption for v in held])
    assert rate <= 0.02, rate
    assert duplicate_rate(["x", "y", "x", "x"]) == 0.5
    # and the train stream is another one
    assert not {v.caption for v in held} & {v.caption for v in generate(200, seed=0)}
    kinds = {e.kind for v in held for e in v.events}
    assert kinds == set(EVENT_KINDS)
    assert {len(v.graph.objects) for v in held} == {1, 2, 3} and {len(v.events) for v in held} == {2, 3}
    assert {o.colour for v in held for o in v.graph.objects} == set(COLOURS)
    assert {o.shape for v in held for o in v.graph.objects} == set(SHAPES)
    assert len({v.template for v in held}) == 4
    assert len({e.start_frame for v in held for e in v.events[:1]}) >= 3  # varied start times


def test_split_modules_keep_the_public_names():
    """finsta.data.synthetic names every piece of the generator it lists; S-ViLM's splices live only in
    finsta.data.cut_and_paste."""
    for name in ("cut_and_paste", "cell_coverage", "temporal_cuts"):
        assert not hasattr(synthetic, name) and callable(getattr(cut_and_paste_module, name))
    for name in synthetic.__all__:
        assert getattr(synthetic, name) is not None
