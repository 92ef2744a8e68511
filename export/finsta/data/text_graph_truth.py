"""The true textual scene graph of a synthetic caption, and node/edge F1 of a parsed graph against it.

Truth (derived from the generator's own records, never from parsing the text):

* objects: one node per ``Mention`` (every noun phrase that names an object, re-mentions "the large
  red circle" included); the node is the shape word (the head noun), its span the shape's characters.
  "it" is not a mention: an event told with "it" links to the latest mention of that object;
* attributes: the size and the colour word of each mention, each joined to its object (obj->attr);
* predicates: one per event, in caption order, spanning the event's verb phrase exactly as
  ``captions.compose`` writes it: "moves left", "moves left past", "moves up toward",
  "moves right and hits", "appears", "disappears"; subj edge from the subject's mention, obj edge to
  the object's mention for approach / pass / collide.

Matching rule (``score_graph``): a parsed node matches a true node when both have the same kind, the
same normalised text (lower case, whitespace collapsed, a leading article dropped) and overlapping
character spans; nodes are matched one-to-one, each parsed node (in caption order) taking the
first unmatched true node that qualifies. A parsed edge is correct when its kind is the same and
both of its ends are matched to the two ends of a true edge. Precision = correct / parsed,
recall = correct / true, for nodes and edges separately; ``score_graphs`` sums the counts over
captions (micro average).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from finsta_rt.scene_graph import GraphBuilder, TextSceneGraph

from .captions import INTERACTION_WORDS
from .synthetic import SyntheticVideo

__all__ = ["truth_graph", "GraphScore", "score_graph", "score_graphs", "normalise"]


def _event_phrase(kind: str, direction: str | None) -> str:
    if kind == "move":
        return f"moves {direction}"
    if kind in INTERACTION_WORDS:
        return f"moves {direction} {INTERACTION_WORDS[kind]}"
    return "appears" if kind == "appear" else "disappears"


def truth_graph(video: SyntheticVideo) -> TextSceneGraph:
    """The exact text scene graph of ``video.caption`` (see the module docstring)."""
    text = video.caption
    b = GraphBuilder(text, "truth")  # the parsers' builder: the same caption order of nodes and edges
    mention_node: list[tuple[int, int, int]] = []  # (caption start, object id, node index)
    add = b.node

    for m in video.mentions:
        size, colour, shape = m.text.split(" ")
        obj = add("object", m.end - len(shape), m.end)
        b.edge(obj, add("attribute", m.start, m.start + len(size)), "attr")
        c0 = m.start + len(size) + 1
        b.edge(obj, add("attribute", c0, c0 + len(colour)), "attr")
        mention_node.append((m.start, m.object_id, obj))

    def latest(object_id: int, before: int) -> int:
        """The node of the latest mention of ``object_id`` that starts before char ``before``."""
        cands = [(s, n) for s, oid, n in mention_node if oid == object_id and s < before]
        if not cands:
            raise AssertionError(f"object {object_id} is referred to before any mention in {text!r}")
        return max(cands)[1]

    pos = 0
    for e in video.events:  # captions tell the events in temporal order (generate_video)
        phrase = " " + _event_phrase(e.kind, e.direction)
        at = text.index(phrase, pos) + 1
        pred = add("predicate", at, at + len(phrase) - 1)
        b.edge(latest(e.subject, at), pred, "subj")
        pos = at + len(phrase) - 1
        if e.object is not None:
            # the object follows the phrase: its mention starts there, or it is "it" (an earlier mention)
            b.edge(pred, latest(e.object, pos + 2 + len("the ")), "obj")
    g = b.build()
    g.validate()
    return g


_ARTICLE = re.compile(r"^(a|an|the)\s+")


def normalise(s: str) -> str:
    """Lower case, whitespace collapsed, a leading article dropped."""
    return _ARTICLE.sub("", " ".join(s.lower().split()))


@dataclass
class GraphScore:
    node_tp: int = 0
    node_pred: int = 0
    node_true: int = 0
    edge_tp: int = 0
    edge_pred: int = 0
    edge_true: int = 0

    def __add__(self, o: GraphScore) -> GraphScore:
        return GraphScore(*(a + b for a, b in zip(self.counts(), o.counts())))

    def counts(self) -> tuple[int, ...]:
        return (self.node_tp, self.node_pred, self.node_true, self.edge_tp, self.edge_pred, self.edge_true)

    @staticmethod
    def _prf(tp: int, pred: int, true: int) -> tuple[float, float, float]:
        p = tp / pred if pred else float(true == 0)
        r = tp / true if true else float(pred == 0)
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    @property
    def node_prf(self) -> tuple[float, float, float]:
        return self._prf(self.node_tp, self.node_pred, self.node_true)

    @property
    def edge_prf(self) -> tuple[float, float, float]:
        return self._prf(self.edge_tp, self.edge_pred, self.edge_true)

    @property
    def node_f1(self) -> float:
        return self.node_prf[2]

    @property
    def edge_f1(self) -> float:
        return self.edge_prf[2]


def score_graph(parsed: TextSceneGraph, truth: TextSceneGraph) -> GraphScore:
    """Node and edge counts of ``parsed`` against ``truth`` (the matching rule is in the module docstring)."""
    if parsed.text != truth.text:
        raise ValueError(f"graphs of different texts: {parsed.text!r} vs {truth.text!r}")
    match: dict[int, int] = {}
    taken: set[int] = set()
    for i in sorted(range(len(parsed.nodes)), key=lambda i: (parsed.nodes[i].start, i)):
        a = parsed.nodes[i]
        for j, t in enumerate(truth.nodes):
            if (
                j not in taken
                and a.kind == t.kind
                and normalise(a.text) == normalise(t.text)
                and a.start < t.end
                and t.start < a.end
            ):
                match[i] = j
                taken.add(j)
                break
    true_edges = {(e.source, e.target, e.kind) for e in truth.edges}
    parsed_edges = {(e.source, e.target, e.kind) for e in parsed.edges}
    edge_tp = sum(1 for s, t, k in parsed_edges if s in match and t in match and (match[s], match[t], k) in true_edges)
    return GraphScore(len(match), len(parsed.nodes), len(truth.nodes), edge_tp, len(parsed_edges), len(true_edges))


def score_graphs(pairs: Iterable[tuple[TextSceneGraph, TextSceneGraph]]) -> GraphScore:
    """Micro-averaged counts over (parsed, truth) pairs."""
    total = GraphScore()
    for parsed, truth in pairs:
        total = total + score_graph(parsed, truth)
    return total
