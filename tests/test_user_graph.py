"""User-supplied video scene graphs: a valid file becomes the documented tensors; every kind of
malformed file raises UserGraphError naming the file, the frame and the field."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from finsta_rt.user_graph import (
    UserGraphError,
    UserVideoGraph,
    load_user_graph,
    parse_user_graph,
    user_graph_tensors,
)

VALID = {
    "width": 200,
    "height": 100,
    "frames": [
        {
            "t": 0,
            "objects": [
                {"id": "car1", "box": [0, 0, 50, 20], "label": "car"},
                {"id": "p2", "box": [100, 50, 200, 100], "label": "person"},
            ],
            "relations": [{"subject": "car1", "predicate": "left of", "object": "p2"}],
        },
        {
            "t": 2,
            "objects": [{"id": "p2", "box": [90, 50, 190, 100]}, {"id": 7, "box": [10, 10, 30, 30], "label": "dog"}],
        },
    ],
}


def write(tmp_path, doc, name="graph.json"):
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return p


def test_valid_file_round_trips(tmp_path):
    path = write(tmp_path, VALID)
    g = load_user_graph(path)
    assert isinstance(g, UserVideoGraph) and g.source == str(path)
    assert g.track_ids == ["car1", "p2", "7"]
    assert g.frames[0].objects[0].box == (0.0, 0.0, 0.25, 0.2)
    assert g.frames[0].objects[0].label == "car" and g.frames[1].objects[0].label is None
    assert g.frames[0].relations[0].predicate == "left of"
    out = g.to_tensors(frames=4, slots=3)
    assert set(out) == {"slot_box", "slot_pos", "slot_mask", "track", "rel_adj"}
    assert out["slot_box"].dtype == np.float32 and out["slot_box"].shape == (4, 3, 4)
    assert out["slot_pos"].dtype == np.float32 and out["slot_pos"].shape == (4, 3, 2)
    assert out["slot_mask"].dtype == np.bool_ and out["slot_mask"].shape == (4, 3)
    assert out["track"].dtype == np.int64 and out["track"].shape == (4, 3)
    assert out["rel_adj"].dtype == np.bool_ and out["rel_adj"].shape == (4, 3, 3)
    # 3 tracks <= 3 slots: track m sits in slot m in every frame
    np.testing.assert_array_equal(out["slot_mask"], [[1, 1, 0], [0, 0, 0], [0, 1, 1], [0, 0, 0]])
    np.testing.assert_array_equal(out["track"], [[0, 1, -1], [-1, -1, -1], [-1, 1, 2], [-1, -1, -1]])
    np.testing.assert_allclose(out["slot_box"][0, 1], [0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(out["slot_box"][2, 1], [0.45, 0.5, 0.95, 1.0])
    np.testing.assert_allclose(out["slot_pos"][2, 2], [0.1, 0.2])
    np.testing.assert_allclose(out["slot_pos"][0, 0], [0.125, 0.1])
    assert (out["slot_box"][~out["slot_mask"]] == 0).all()
    adj = out["rel_adj"]
    assert adj[:, np.arange(3), np.arange(3)].all()  # self-loops everywhere
    assert (adj == adj.transpose(0, 2, 1)).all()
    assert adj[0, 0, 1] and adj[0, 1, 0] and adj.sum() == 4 * 3 + 2


def test_normalised_units_and_dict_input():
    doc = {
        "units": "normalized",
        "num_frames": 2,
        "frames": [{"t": 1, "objects": [{"id": "a", "box": [0.1, 0.2, 0.3, 0.4]}]}],
    }
    g = parse_user_graph(doc)
    assert g.frames[0].objects[0].box == (0.1, 0.2, 0.3, 0.4)
    out = user_graph_tensors(g, frames=2, slots=1)
    np.testing.assert_allclose(out["slot_pos"][1, 0], [0.2, 0.3])


def test_more_tracks_than_slots_fill_slots_in_file_order():
    doc = {
        "units": "normalized",
        "frames": [
            {"t": 0, "objects": [{"id": "a", "box": [0, 0, 0.1, 0.1]}, {"id": "b", "box": [0, 0, 0.2, 0.2]}]},
            {"t": 1, "objects": [{"id": "c", "box": [0, 0, 0.3, 0.3]}, {"id": "a", "box": [0, 0, 0.4, 0.4]}]},
        ],
    }
    out = parse_user_graph(doc).to_tensors(frames=2, slots=2)
    np.testing.assert_array_equal(out["track"], [[0, 1], [2, 0]])
    np.testing.assert_allclose(out["slot_box"][1, 1, 2], 0.4)


def mutated(fn):
    doc = copy.deepcopy(VALID)
    fn(doc)
    return doc


def _set(path, value):
    def fn(doc):
        d = doc
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value

    return fn


MALFORMED = [
    # (case, document, words the message must contain)
    (
        "unknown subject id",
        mutated(_set(["frames", 0, "relations", 0, "subject"], "car9")),
        ["frame t=0", "relations[0].subject", "unknown object id 'car9'"],
    ),
    (
        "unknown object id",
        mutated(_set(["frames", 0, "relations", 0, "object"], "nobody")),
        ["frame t=0", "relations[0].object", "'nobody'"],
    ),
    (
        "box right of the frame",
        mutated(_set(["frames", 1, "objects", 0, "box"], [90, 50, 201, 100])),
        ["frame t=2", "object 'p2'", "box", "outside the frame"],
    ),
    (
        "box with a negative corner",
        mutated(_set(["frames", 0, "objects", 0, "box"], [-1, 0, 50, 20])),
        ["frame t=0", "object 'car1'", "outside the frame"],
    ),
    (
        "inverted box",
        mutated(_set(["frames", 0, "objects", 1, "box"], [100, 50, 100, 100])),
        ["frame t=0", "object 'p2'", "x1 > x0"],
    ),
    (
        "box of 3 numbers",
        mutated(_set(["frames", 0, "objects", 1, "box"], [1, 2, 3])),
        ["frame t=0", "object 'p2'", "box", "4 finite numbers"],
    ),
    ("box with a string", mutated(_set(["frames", 0, "objects", 1, "box"], [1, 2, "3", 4])), ["object 'p2'", "box"]),
    ("box with a boolean", mutated(_set(["frames", 0, "objects", 1, "box"], [0, 0, True, 1])), ["box"]),
    (
        "duplicate id",
        mutated(_set(["frames", 0, "objects", 1, "id"], "car1")),
        ["frame t=0", "object 'car1'", "duplicate id"],
    ),
    ("negative frame index", mutated(_set(["frames", 1, "t"], -1)), ["frames[1].t", "out of range"]),
    ("frame index past num_frames", mutated(lambda d: d.update(num_frames=2)), ["frames[1].t", "frame index 2"]),
    ("duplicate frame index", mutated(_set(["frames", 1, "t"], 0)), ["frames[1].t", "listed twice"]),
    ("frame index as a string", mutated(_set(["frames", 1, "t"], "2")), ["frames[1].t", "integer"]),
    ("id as a list", mutated(_set(["frames", 0, "objects", 0, "id"], ["car"])), ["objects[0].id", "string"]),
    ("label as a number", mutated(_set(["frames", 0, "objects", 0, "label"], 3)), ["object 'car1'", "label"]),
    (
        "predicate missing",
        mutated(lambda d: d["frames"][0]["relations"][0].pop("predicate")),
        ["relations[0]", "missing field 'predicate'"],
    ),
    ("predicate empty", mutated(_set(["frames", 0, "relations", 0, "predicate"], " ")), ["predicate"]),
    ("objects not a list", mutated(_set(["frames", 0, "objects"], {"id": "a"})), ["frame t=0", "objects", "array"]),
    ("frames not a list", mutated(_set(["frames"], {})), ["'frames'", "array"]),
    ("frame not an object", mutated(_set(["frames", 1], 5)), ["frames[1]", "expected an object"]),
    ("missing box", mutated(lambda d: d["frames"][0]["objects"][0].pop("box")), ["object 'car1'", "'box'"]),
    ("missing width", mutated(lambda d: d.pop("width")), ["missing field 'width'"]),
    ("zero height", mutated(_set(["height"], 0)), ["'height'", "positive"]),
    ("unknown units", mutated(_set(["units"], "inches")), ["'units'"]),
    (
        "unknown field",
        mutated(_set(["frames", 0, "objects", 0, "colour"], "red")),
        ["objects[0]", "unknown field", "colour"],
    ),
    (
        "normalised box above 1",
        {"units": "normalized", "frames": [{"t": 0, "objects": [{"id": "a", "box": [0.5, 0.5, 1.5, 0.9]}]}]},
        ["object 'a'", "outside the frame ([0, 1])"],
    ),
    ("top level not an object", [1, 2], ["top level", "JSON object"]),
]


@pytest.mark.parametrize("case,doc,words", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_files_name_the_problem(tmp_path, case, doc, words):
    path = write(tmp_path, doc)
    with pytest.raises(UserGraphError) as ei:
        load_user_graph(path)
    msg = str(ei.value)
    assert msg.startswith(str(path) + ":"), msg
    for w in words:
        assert w in msg, (w, msg)
    assert isinstance(ei.value, ValueError)


@pytest.mark.parametrize(
    "text,words",
    [
        ('{"width": 10, "height": 10, "frames": [', ["invalid JSON", "line 1"]),
        ("{'frames': []}", ["invalid JSON"]),
        ("", ["invalid JSON"]),
        ("[" * 100_000, ["nested deeper than"]),  # RecursionError in json.loads before
        ('{"frames": [' + "[" * 200 + "]" * 200 + "]}", ["nested deeper than"]),
    ],
)
def test_invalid_json(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(UserGraphError) as ei:
        load_user_graph(path)
    assert str(ei.value).startswith(str(path))
    for w in words:
        assert w in str(ei.value)


def test_too_big_a_file_is_refused_unread(tmp_path):
    from finsta_rt.user_graph import MAX_FILE_BYTES

    p = tmp_path / "big.json"
    with open(p, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(UserGraphError, match="larger than"):
        load_user_graph(p)


def test_not_utf8_and_missing_file(tmp_path):
    p = tmp_path / "latin1.json"
    p.write_bytes(b'{"label": "caf\xe9"}')
    with pytest.raises(UserGraphError, match="not UTF-8"):
        load_user_graph(p)
    with pytest.raises(UserGraphError, match="does not exist"):
        load_user_graph(tmp_path / "nope.json")


def test_conversion_errors_name_the_frame(tmp_path):
    g = load_user_graph(write(tmp_path, VALID))
    with pytest.raises(
        UserGraphError,
        match=r"graph\.json: frame t=0 \(frames\[0\]\): 2 objects, more than the 1 "
        "slots",
    ):
        g.to_tensors(frames=4, slots=1)
    with pytest.raises(UserGraphError, match=r"frame t=2 \(frames\[1\]\): frame index out of range for 2 frames"):
        g.to_tensors(frames=2, slots=3)
    with pytest.raises(ValueError, match="frames and slots"):
        g.to_tensors(frames=0, slots=3)
