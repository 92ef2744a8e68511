"""Text scene graphs as the padded tensors the text graph encoder reads.

Tensor contract (``encode_text_graphs``; B texts, N = max_nodes, ids from the WordPiece tokenizer
with [CLS] at 0, exactly ``tokenizer(texts, max_length=L)``):

=============  ==============  ==================================================================
``node_span``  int64 [B, N, 2] token start/end (exclusive) of each node; padding (0, 1) = [CLS]
``node_type``  int64 [B, N]    0 padding, 1 object, 2 attribute, 3 predicate
``node_mask``  bool  [B, N]    real nodes
``adj``        bool  [B, N, N] symmetric; self-loop on every node, padding included
                               (EdgeGraphAttention needs a non-empty row everywhere)
``edge_type``  int64 [B, N, N] [b, i, j] is the edge i -> j: 0 none, 1 self, 2 subj->pred,
                               3 pred->obj, 4 obj->attr, 5/6/7 the same edges seen from the
                               other end (edge_type[b, j, i] = edge_type[b, i, j] + 3);
                               ``adj == (edge_type != 0)``
``pred_order`` int64 [B, N]    0, 1, ... for predicates in caption order, -1 otherwise
=============  ==============  ==================================================================

Every node carries its character span in the caption, so the text tower mean-pools the host
model's word-piece features of exactly those characters.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..tokenizer import WordPieceTokenizer
from .graph import EDGE_TYPE_IDS, NODE_TYPE_IDS, SELF_EDGE, SceneGraphError, TextSceneGraph
from .parse import parse_text_graphs

log = logging.getLogger(__name__)


def _token_span(spans: list[tuple[int, int]], start: int, end: int, limit: int) -> tuple[int, int] | None:
    """Token range [a, b) of the word pieces overlapping chars [start, end), or None if none survives."""
    hit = [i for i in range(1, limit) if spans[i][1] > start and spans[i][0] < end and spans[i][1] > spans[i][0]]
    return (hit[0], hit[-1] + 1) if hit else None


def text_graph_feed(
    texts: Sequence[str],
    tokenizer: WordPieceTokenizer,
    max_nodes: int,
    parser: str = "auto",
    graphs: Sequence[TextSceneGraph] | None = None,
) -> dict[str, np.ndarray]:
    """Everything a text graph that takes scene graphs is fed: ``input_ids`` and ``attention_mask``
    (padded to the longest text) and the padded graph tensors of :func:`encode_text_graphs`, whose
    spans point into those ids. The runtime and the exporter both build their feed here."""
    ids, mask = tokenizer(list(texts))
    g = encode_text_graphs(graphs, list(texts), tokenizer, max_nodes=max_nodes, max_length=ids.shape[1], parser=parser)
    return {"input_ids": ids, "attention_mask": mask, **g}


def encode_text_graphs(
    graphs: Sequence[TextSceneGraph] | None,
    texts: Sequence[str],
    tokenizer: WordPieceTokenizer,
    max_nodes: int = 32,
    max_length: int | None = None,
    parser: str = "auto",
) -> dict[str, np.ndarray]:
    """Pad the text scene graphs of ``texts`` into the tensor contract of the module docstring.

    ``graphs[i]`` must be the graph of ``texts[i]`` (spans are character offsets into it);
    ``graphs=None`` parses the texts with ``parser``. Token spans refer to
    ``tokenizer(texts, max_length=max_length)`` (default the tokenizer's max_length). Nodes whose
    characters fall past the truncated tokens are dropped (a node cut in two keeps the pieces that
    survive), and a graph with more than ``max_nodes``
    nodes keeps its first ``max_nodes`` in caption order; both are logged as warnings."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of str, not one str")
    if max_nodes < 1:
        raise ValueError(f"max_nodes must be >= 1, got {max_nodes}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] must be str, got {type(t).__name__}")
        if not t.strip():
            raise SceneGraphError(f"texts[{i}] is empty: no scene graph to encode")
    if graphs is None:
        graphs = parse_text_graphs(texts, parser)
    if len(graphs) != len(texts):
        raise ValueError(f"got {len(graphs)} graphs for {len(texts)} texts")
    limit = tokenizer.max_length if max_length is None else max_length
    B, N = len(texts), int(max_nodes)
    node_span = np.zeros((B, N, 2), dtype=np.int64)
    node_span[:, :, 1] = 1
    node_type = np.zeros((B, N), dtype=np.int64)
    node_mask = np.zeros((B, N), dtype=bool)
    edge_type = np.zeros((B, N, N), dtype=np.int64)
    edge_type[:, np.arange(N), np.arange(N)] = SELF_EDGE
    pred_order = np.full((B, N), -1, dtype=np.int64)
    truncated: list[int] = []  # texts that lost nodes past max_length
    crowded: list[int] = []  # texts with more than max_nodes nodes
    for b, (g, text) in enumerate(zip(graphs, texts)):
        if g.text != text:
            raise SceneGraphError(f"graphs[{b}] was parsed from {g.text!r}, not from texts[{b}] = {text!r}")
        g.validate()
        ids, spans = tokenizer.encode_with_offsets(text, limit)
        last = len(ids) - 1  # [SEP]
        keep: list[int] = []
        tok_spans: dict[int, tuple[int, int]] = {}
        lost = 0
        for i, n in enumerate(g.nodes):
            ts = _token_span(spans, n.start, n.end, last)
            if ts is None:
                lost += 1
                continue
            tok_spans[i] = ts
            keep.append(i)
        if lost:  # one summary warning per call (a training set has thousands of texts)
            truncated.append(b)
            log.debug(
                "text %d (%.40r): %d scene-graph node(s) lie past max_length=%d tokens and were dropped",
                b,
                text,
                lost,
                limit,
            )
        if len(keep) > N:
            crowded.append(b)
            log.debug(
                "text %d (%.40r): %d scene-graph nodes, max_nodes=%d: the last %d (caption order) were dropped",
                b,
                text,
                len(keep),
                N,
                len(keep) - N,
            )
            keep = sorted(keep, key=lambda i: (g.nodes[i].start, i))[:N]
            keep.sort()
        slot = {old: new for new, old in enumerate(keep)}
        for i in keep:
            s = slot[i]
            node_span[b, s] = tok_spans[i]
            node_type[b, s] = NODE_TYPE_IDS[g.nodes[i].kind]
            node_mask[b, s] = True
        for e in g.edges:
            if e.source in slot and e.target in slot:
                u, v = slot[e.source], slot[e.target]
                edge_type[b, u, v] = EDGE_TYPE_IDS[e.kind]
                edge_type[b, v, u] = EDGE_TYPE_IDS[e.kind] + 3
        for k, i in enumerate(p for p in g.predicate_order if p in slot):
            pred_order[b, slot[i]] = k
    if truncated:
        log.warning(
            "%d of %d texts (e.g. text %d, %.40r) lost scene-graph nodes past max_length=%d tokens",
            len(truncated),
            B,
            truncated[0],
            texts[truncated[0]],
            limit,
        )
    if crowded:
        log.warning(
            "%d of %d texts (e.g. text %d, %.40r) have more than max_nodes=%d nodes; the last ones in "
            "caption order were dropped",
            len(crowded),
            B,
            crowded[0],
            texts[crowded[0]],
            N,
        )
    return {
        "node_span": node_span,
        "node_type": node_type,
        "node_mask": node_mask,
        "adj": edge_type != 0,
        "edge_type": edge_type,
        "pred_order": pred_order,
    }
