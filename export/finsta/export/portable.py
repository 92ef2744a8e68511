"""Portable ONNX functions for the finsta custom ops (docs/ops.md).

Each custom op in domain ``finsta`` has a model-local ONNX function with the same name and domain,
written in standard ops: the onnxscript function its declaration holds (``finsta.nn.OPS``). A model
that carries it runs in stock ONNX Runtime (which inlines the function); with the finsta op library
registered, ONNX Runtime runs our kernel instead. :func:`attach_portable_functions` turns a
custom-flavour model into the portable flavour.
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx
from onnx import FunctionProto, ModelProto, NodeProto, helper

from finsta_rt.ops import OPS_DOMAIN, OPS_VERSION

from ..nn import OPS
from ..nn.declaration import PORTABLE_OPSET

DEFAULT_OPSET = PORTABLE_OPSET

__all__ = ["DEFAULT_OPSET", "OPS_DOMAIN", "OPS_VERSION", "attach_portable_functions", "portable_function"]


def portable_function(op_type: str, opset: int = DEFAULT_OPSET) -> FunctionProto:
    """The portable ONNX function for one finsta op."""
    if op_type not in OPS:
        raise ValueError(f"no portable function for finsta op {op_type!r}; known: {sorted(OPS)}")
    return OPS[op_type].function_proto(opset)


def _finsta_nodes(model: ModelProto) -> Iterator[NodeProto]:
    def walk(graph: onnx.GraphProto) -> Iterator[NodeProto]:
        for node in graph.node:
            yield node
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    yield from walk(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for g in a.graphs:
                        yield from walk(g)

    yield from (n for n in walk(model.graph) if n.domain == OPS_DOMAIN)
    for f in model.functions:
        yield from (n for n in f.node if n.domain == OPS_DOMAIN)


def attach_portable_functions(model: ModelProto) -> ModelProto:
    """Adds the portable function of every finsta op the model uses (in place; returns the model).

    Checks each finsta node's attributes first (unknown, missing, mistyped or out of range), so a bad
    value fails here with the node's name rather than silently computing something else in stock
    ONNX Runtime.
    """
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), DEFAULT_OPSET)
    present = {(f.domain, f.name) for f in model.functions}
    for node in _finsta_nodes(model):
        if node.op_type not in OPS:
            raise ValueError(f"finsta op {node.op_type!r} (node {node.name!r}) has no portable function")
        OPS[node.op_type].check_node(node)
        if (OPS_DOMAIN, node.op_type) not in present:
            model.functions.append(portable_function(node.op_type, opset))
            present.add((OPS_DOMAIN, node.op_type))
    if present and not any(o.domain == OPS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(OPS_DOMAIN, OPS_VERSION))
    return model
