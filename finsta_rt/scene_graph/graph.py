"""Textual scene graph types: nodes with character spans, typed edges, and the builder the parsers share.

Predicates are nodes (docs/families.md, Finsta), so "a dog chases a red ball" is

    object "dog" --subj--> predicate "chases" --obj--> object "ball" --attr--> attribute "red"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

NodeKind = Literal["object", "attribute", "predicate"]
EdgeKind = Literal["subj", "obj", "attr"]
NODE_KINDS: tuple[str, ...] = ("object", "attribute", "predicate")
# subj: subject object -> predicate, obj: predicate -> object, attr: object -> attribute
EDGE_KINDS: tuple[str, ...] = ("subj", "obj", "attr")
NODE_TYPE_IDS: dict[str, int] = {"object": 1, "attribute": 2, "predicate": 3}
EDGE_TYPE_IDS: dict[str, int] = {"subj": 2, "obj": 3, "attr": 4}  # reverse direction: +3
SELF_EDGE = 1


class SceneGraphError(ValueError):
    """A text cannot be parsed or encoded (empty text, a graph that does not belong to its text...)."""


@dataclass(frozen=True)
class GraphNode:
    kind: NodeKind
    text: str  # == caption[start:end]
    start: int  # character span in the caption
    end: int


@dataclass(frozen=True)
class GraphEdge:
    source: int  # node indices; direction as in EDGE_KINDS
    target: int
    kind: EdgeKind


@dataclass
class TextSceneGraph:
    """A parsed caption. ``nodes`` are in caption order (by start, then kind) unless built by hand."""

    text: str
    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[GraphEdge] = field(default_factory=list)
    parser: str = "manual"

    @property
    def predicate_order(self) -> list[int]:
        """Indices of the predicate nodes in the order they appear in the caption."""
        preds = [i for i, n in enumerate(self.nodes) if n.kind == "predicate"]
        return sorted(preds, key=lambda i: (self.nodes[i].start, i))

    def validate(self) -> None:
        """Raise SceneGraphError unless spans, kinds and edges are consistent with ``text``."""
        for i, n in enumerate(self.nodes):
            if n.kind not in NODE_KINDS:
                raise SceneGraphError(f"node {i}: unknown kind {n.kind!r} (expected one of {NODE_KINDS})")
            if not (0 <= n.start < n.end <= len(self.text)) or self.text[n.start : n.end] != n.text:
                raise SceneGraphError(
                    f"node {i} ({n.text!r}): span [{n.start}, {n.end}) does not hold its text in {self.text!r}"
                )
        want = {"subj": ("object", "predicate"), "obj": ("predicate", "object"), "attr": ("object", "attribute")}
        for e in self.edges:
            if e.kind not in want:
                raise SceneGraphError(f"edge {e}: unknown kind {e.kind!r} (expected one of {EDGE_KINDS})")
            if not (0 <= e.source < len(self.nodes) and 0 <= e.target < len(self.nodes)):
                raise SceneGraphError(f"edge {e}: node index out of range (graph has {len(self.nodes)} nodes)")
            kinds = (self.nodes[e.source].kind, self.nodes[e.target].kind)
            if kinds != want[e.kind]:
                raise SceneGraphError(
                    f"edge {e}: a {e.kind} edge joins {want[e.kind][0]} -> {want[e.kind][1]}, "
                    f"not {kinds[0]} -> {kinds[1]}"
                )

    def triples(self) -> list[tuple[str, str, str | None]]:
        """(subject, predicate, object-or-None) texts, one per subject of each predicate, for reading."""
        out = []
        for p in self.predicate_order:
            subs = [e.source for e in self.edges if e.kind == "subj" and e.target == p] or [None]
            objs = [e.target for e in self.edges if e.kind == "obj" and e.source == p] or [None]
            for s in subs:
                for o in objs:
                    out.append(
                        (
                            self.nodes[s].text if s is not None else "?",
                            self.nodes[p].text,
                            self.nodes[o].text if o is not None else None,
                        )
                    )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "parser": self.parser,
            "nodes": [{"kind": n.kind, "text": n.text, "start": n.start, "end": n.end} for n in self.nodes],
            "edges": [{"source": e.source, "target": e.target, "kind": e.kind} for e in self.edges],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextSceneGraph:
        g = cls(
            str(d["text"]),
            [GraphNode(n["kind"], n["text"], int(n["start"]), int(n["end"])) for n in d["nodes"]],
            [GraphEdge(int(e["source"]), int(e["target"]), e["kind"]) for e in d["edges"]],
            str(d.get("parser", "manual")),
        )
        g.validate()
        return g


class GraphBuilder:
    """Collects nodes and edges; dedupes edges; sorts nodes into caption order at the end."""

    def __init__(self, text: str, parser: str):
        self.text, self.parser = text, parser
        self.nodes: list[GraphNode] = []
        self.edges: dict[GraphEdge, None] = {}  # insertion-ordered set

    def node(self, kind: NodeKind, start: int, end: int) -> int:
        self.nodes.append(GraphNode(kind, self.text[start:end], start, end))
        return len(self.nodes) - 1

    def edge(self, source: int, target: int, kind: EdgeKind) -> None:
        self.edges[GraphEdge(source, target, kind)] = None

    def build(self) -> TextSceneGraph:
        kind_rank = {k: i for i, k in enumerate(NODE_KINDS)}
        order = sorted(range(len(self.nodes)), key=lambda i: (self.nodes[i].start, kind_rank[self.nodes[i].kind], i))
        new = {old: new for new, old in enumerate(order)}
        edges = sorted(
            {GraphEdge(new[e.source], new[e.target], e.kind) for e in self.edges},
            key=lambda e: (e.source, e.target, e.kind),
        )
        return TextSceneGraph(self.text, [self.nodes[i] for i in order], edges, self.parser)


def check_text(text: Any) -> None:
    """What every parser accepts: a str with some non-space character."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    if not text.strip():
        raise SceneGraphError("cannot parse a scene graph from an empty text")
