"""Textual scene graphs (Finsta's TSG, docs/families.md): parse a caption into objects, attributes and
predicates, and encode the graphs as the padded tensors the text graph encoder reads.

Predicates are nodes, so "a dog chases a red ball" is

    object "dog" --subj--> predicate "chases" --obj--> object "ball" --attr--> attribute "red"

and every node carries its character span in the caption. The modules:

* :mod:`.graph`: the graph types (``TextSceneGraph``, ``GraphNode``, ``GraphEdge``) and ``GraphBuilder``;
* :mod:`.lexicon` and :mod:`.rules`: the built-in rule parser (``rule_parse``, no dependencies);
* :mod:`.spacy_parser`: the optional spaCy parser (``spacy_parse``, ``pip install "finsta-rt[graph]"``;
  spaCy is imported on the first parse only);
* :mod:`.parse`: ``parse_text_graph(text, parser="auto" | "rules" | "spacy")``;
* :mod:`.encode`: ``encode_text_graphs`` / ``text_graph_feed`` and the tensor contract.

numpy and the standard library only (never torch): this runs inside ``finsta_rt``.
"""

from .encode import encode_text_graphs, text_graph_feed
from .graph import (
    EDGE_KINDS,
    EDGE_TYPE_IDS,
    NODE_KINDS,
    NODE_TYPE_IDS,
    SELF_EDGE,
    GraphBuilder,
    GraphEdge,
    GraphNode,
    SceneGraphError,
    TextSceneGraph,
)
from .parse import PARSERS, parse_text_graph, parse_text_graphs
from .rules import rule_parse
from .spacy_parser import SPACY_MODEL, spacy_available, spacy_parse

_Builder = GraphBuilder  # the old private name (finsta.data.text_graph_truth used it); use GraphBuilder

__all__ = [
    "NODE_KINDS",
    "EDGE_KINDS",
    "NODE_TYPE_IDS",
    "EDGE_TYPE_IDS",
    "SELF_EDGE",
    "PARSERS",
    "SPACY_MODEL",
    "GraphNode",
    "GraphEdge",
    "GraphBuilder",
    "TextSceneGraph",
    "SceneGraphError",
    "parse_text_graph",
    "parse_text_graphs",
    "rule_parse",
    "spacy_parse",
    "spacy_available",
    "encode_text_graphs",
    "text_graph_feed",
]
