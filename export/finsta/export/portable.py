"""Portable ONNX functions for the finsta custom ops (DESIGN.md §4).

Each custom op in domain ``finsta`` has a model-local ONNX function with the same name and domain,
written in standard ops. A model that carries it runs in stock ONNX Runtime (which inlines the
function); with the finsta op library registered, ONNX Runtime runs our kernel instead.
:func:`attach_portable_functions` turns a custom-flavour model into the portable flavour.
"""

from __future__ import annotations

import math
from typing import Callable

import onnx
from onnx import FunctionProto, ModelProto, NodeProto, TensorProto, helper

OPS_DOMAIN = "finsta"
OPS_VERSION = 1
DEFAULT_OPSET = 18


def _attr_ref(name: str, attr_type: int) -> onnx.AttributeProto:
    a = onnx.AttributeProto()
    a.name = "value_float" if attr_type == onnx.AttributeProto.FLOAT else "value_int"
    a.ref_attr_name = name
    a.type = attr_type
    return a


def _constant_from_attr(out: str, attr: str, attr_type: int) -> NodeProto:
    node = helper.make_node("Constant", [], [out])
    node.attribute.append(_attr_ref(attr, attr_type))
    return node


def _const(out: str, value: float | int | list, dtype: int) -> NodeProto:
    vals = value if isinstance(value, list) else [value]
    dims = [len(vals)] if isinstance(value, list) else []
    return helper.make_node("Constant", [], [out], value=helper.make_tensor(out, dtype, dims, vals))


def st_graph_attention_function(opset: int = DEFAULT_OPSET) -> FunctionProto:
    """STGraphAttention as a dense decomposition: [B, L, L] similarity, band and mask, softmax.

    Attributes: tokens_per_frame (required), frame_radius (default 1), sim_threshold (required),
    scale (default 0, meaning d^-1/2; the custom kernel rejects scale <= 0 given explicitly).
    """
    n = helper.make_node
    I, F = onnx.AttributeProto.INT, onnx.AttributeProto.FLOAT
    nodes = [
        _constant_from_attr("P", "tokens_per_frame", I),
        _constant_from_attr("r", "frame_radius", I),
        _constant_from_attr("tau", "sim_threshold", F),
        _constant_from_attr("scale_attr", "scale", F),
        _const("axes_last", [-1], TensorProto.INT64),
        _const("eps", 1e-12, TensorProto.FLOAT),
        _const("zero_f", 0.0, TensorProto.FLOAT),
        _const("one_f", 1.0, TensorProto.FLOAT),
        _const("neg_inf", -math.inf, TensorProto.FLOAT),
        _const("zero_i", 0, TensorProto.INT64),
        _const("one_i", 1, TensorProto.INT64),
        _const("neg_half", -0.5, TensorProto.FLOAT),
        # xn = x / max(|x|, eps);  S = xn xn^T
        n("ReduceSumSquare", ["x", "axes_last"], ["sumsq"], keepdims=1),
        n("Sqrt", ["sumsq"], ["norm"]),
        n("Max", ["norm", "eps"], ["norm_c"]),
        n("Div", ["x", "norm_c"], ["xn"]),
        n("Transpose", ["xn"], ["xn_t"], perm=[0, 2, 1]),
        n("MatMul", ["xn", "xn_t"], ["S"]),
        # band(i, j) = |i // P - j // P| <= r, self-loops on the diagonal
        n("Shape", ["x"], ["L"], start=1, end=2),
        n("Squeeze", ["L"], ["L_s"]),
        n("Range", ["zero_i", "L_s", "one_i"], ["idx"]),
        n("Div", ["idx", "P"], ["frame"]),
        n("Unsqueeze", ["frame", "axes_last"], ["frame_col"]),
        n("Sub", ["frame_col", "frame"], ["frame_diff"]),
        n("Abs", ["frame_diff"], ["frame_dist"]),
        n("LessOrEqual", ["frame_dist", "r"], ["band"]),
        n("Unsqueeze", ["idx", "axes_last"], ["idx_col"]),
        n("Equal", ["idx_col", "idx"], ["eye"]),
        # A = where(S >= tau, S, 0) * band;  A(i, i) = 1
        n("GreaterOrEqual", ["S", "tau"], ["above"]),
        n("And", ["above", "band"], ["keep"]),
        n("Where", ["keep", "S", "zero_f"], ["A0"]),
        n("Where", ["eye", "one_f", "A0"], ["A"]),
        _const("axis1", [1], TensorProto.INT64),
        n("Unsqueeze", ["A", "axis1"], ["A_h"]),
        # scale: the attribute if > 0, else d^-1/2
        n("Shape", ["q"], ["d"], start=3, end=4),
        n("Cast", ["d"], ["d_f"], to=TensorProto.FLOAT),
        n("Pow", ["d_f", "neg_half"], ["auto_scale"]),
        n("Greater", ["scale_attr", "zero_f"], ["has_scale"]),
        n("Where", ["has_scale", "scale_attr", "auto_scale"], ["scale_v"]),
        # logits = scale * q k^T * A;  logits[A == 0] = -inf;  out = softmax(logits) v
        n("Transpose", ["k"], ["k_t"], perm=[0, 1, 3, 2]),
        n("MatMul", ["q", "k_t"], ["qk"]),
        n("Mul", ["qk", "scale_v"], ["qk_s"]),
        n("Mul", ["qk_s", "A_h"], ["logits0"]),
        n("Equal", ["A_h", "zero_f"], ["masked"]),
        n("Where", ["masked", "neg_inf", "logits0"], ["logits"]),
        n("Softmax", ["logits"], ["probs"], axis=-1),
        n("MatMul", ["probs", "v"], ["out"]),
    ]
    fn = helper.make_function(
        OPS_DOMAIN,
        "STGraphAttention",
        inputs=["x", "q", "k", "v"],
        outputs=["out"],
        nodes=nodes,
        opset_imports=[helper.make_opsetid("", opset)],
        attributes=["tokens_per_frame", "sim_threshold"],
    )
    fn.attribute_proto.extend([helper.make_attribute("frame_radius", 1), helper.make_attribute("scale", 0.0)])
    fn.doc_string = "finsta STGraphAttention, portable decomposition (DESIGN.md §4)"
    return fn


def _validate_st_graph_attention(node: NodeProto) -> None:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    where = f"STGraphAttention node {node.name or node.output[0]!r}"
    for name in ("tokens_per_frame", "sim_threshold"):
        if name not in attrs:
            raise ValueError(f"{where}: required attribute '{name}' is missing")
    if attrs["tokens_per_frame"] <= 0:
        raise ValueError(f"{where}: tokens_per_frame must be > 0, got {attrs['tokens_per_frame']}")
    if attrs.get("frame_radius", 1) < 0:
        raise ValueError(f"{where}: frame_radius must be >= 0, got {attrs['frame_radius']}")
    if "scale" in attrs and not (math.isfinite(attrs["scale"]) and attrs["scale"] > 0):
        raise ValueError(f"{where}: scale must be finite and > 0, got {attrs['scale']}")


def _head_dim_scale(nodes: list[NodeProto]) -> str:
    """Appends nodes computing d^-1/2 from q's last dimension; returns the output name."""
    n = helper.make_node
    nodes += [
        _const("neg_half", -0.5, TensorProto.FLOAT),
        n("Shape", ["q"], ["d"], start=3, end=4),
        n("Cast", ["d"], ["d_f"], to=TensorProto.FLOAT),
        n("Pow", ["d_f", "neg_half"], ["scale"]),
    ]
    return "scale"


def edge_graph_attention_function(opset: int = DEFAULT_OPSET) -> FunctionProto:
    """EdgeGraphAttention as a dense decomposition: [B, H, N, N, d] scores, clipped exp, weighted mean.

    Attribute: clamp (default 5).
    """
    n = helper.make_node
    nodes: list[NodeProto] = [
        _constant_from_attr("clamp_hi", "clamp", onnx.AttributeProto.FLOAT),
        n("Neg", ["clamp_hi"], ["clamp_lo"]),
        _const("axis1", [1], TensorProto.INT64),
        _const("axis2", [2], TensorProto.INT64),
        _const("axis3", [3], TensorProto.INT64),
        _const("axes_last", [-1], TensorProto.INT64),
        _const("zero_f", 0.0, TensorProto.FLOAT),
        _const("eps", 1e-6, TensorProto.FLOAT),
    ]
    scale = _head_dim_scale(nodes)
    nodes += [
        # s_ij = (q_i * k_j) d^-1/2 * e_ij;  e_out = s
        n("Unsqueeze", ["q", "axis3"], ["q_i"]),
        n("Unsqueeze", ["k", "axis2"], ["k_j"]),
        n("Mul", ["q_i", "k_j"], ["qk"]),
        n("Mul", ["qk", scale], ["qk_s"]),
        n("Mul", ["qk_s", "e"], ["e_out"]),
        # w_ij = adj_ij exp(clip(sum_d s_ij, -clamp, clamp))
        n("ReduceSum", ["e_out", "axes_last"], ["logits"], keepdims=0),
        n("Clip", ["logits", "clamp_lo", "clamp_hi"], ["clipped"]),
        n("Exp", ["clipped"], ["w_all"]),
        n("Unsqueeze", ["adj", "axis1"], ["adj_h"]),
        n("Where", ["adj_h", "w_all", "zero_f"], ["w"]),
        # h_i = sum_j w_ij v_j / (sum_j w_ij + 1e-6)
        n("MatMul", ["w", "v"], ["num"]),
        n("ReduceSum", ["w", "axes_last"], ["den0"], keepdims=1),
        n("Add", ["den0", "eps"], ["den"]),
        n("Div", ["num", "den"], ["h"]),
    ]
    fn = helper.make_function(
        OPS_DOMAIN,
        "EdgeGraphAttention",
        inputs=["q", "k", "v", "e", "adj"],
        outputs=["h", "e_out"],
        nodes=nodes,
        opset_imports=[helper.make_opsetid("", opset)],
        attributes=[],
    )
    fn.attribute_proto.extend([helper.make_attribute("clamp", 5.0)])
    fn.doc_string = "finsta EdgeGraphAttention, portable decomposition (DESIGN.md §4)"
    return fn


def gaussian_diff_graph_attention_function(opset: int = DEFAULT_OPSET) -> FunctionProto:
    """GaussianDiffGraphAttention as a dense decomposition: [B, H, N, N] logits with the Gaussian
    log-bias computed directly as -((pos_i - pos_j) / sigma)^2 / 2, masked softmax, context and change."""
    n = helper.make_node
    nodes: list[NodeProto] = [
        _const("axis0_2_3", [0, 2, 3], TensorProto.INT64),
        _const("axis1", [1], TensorProto.INT64),
        _const("axis2", [2], TensorProto.INT64),
        _const("axes_last", [-1], TensorProto.INT64),
        _const("neg_inf", -math.inf, TensorProto.FLOAT),
    ]
    scale = _head_dim_scale(nodes)
    nodes += [
        n("Transpose", ["k"], ["k_t"], perm=[0, 1, 3, 2]),
        n("MatMul", ["q", "k_t"], ["qk"]),
        n("Mul", ["qk", scale], ["qk_s"]),
        # log g_ij = -sum_c ((pos_ic - pos_jc) / sigma_hc)^2 / 2   [B, H, N, N]
        n("Unsqueeze", ["pos", "axis2"], ["pos_i"]),
        n("Unsqueeze", ["pos", "axis1"], ["pos_j"]),
        n("Sub", ["pos_i", "pos_j"], ["diff"]),
        n("Unsqueeze", ["diff", "axis1"], ["diff_h"]),
        n("Unsqueeze", ["sigma", "axis0_2_3"], ["sigma_b"]),
        n("Div", ["diff_h", "sigma_b"], ["z"]),
        n("ReduceSumSquare", ["z", "axes_last"], ["z2"], keepdims=0),
        n("Mul", ["z2", "neg_half"], ["log_g"]),  # neg_half from _head_dim_scale
        # alpha = softmax over adj;  out = [alpha v, alpha v - v_i]
        n("Add", ["qk_s", "log_g"], ["logits0"]),
        n("Unsqueeze", ["adj", "axis1"], ["adj_h"]),
        n("Where", ["adj_h", "logits0", "neg_inf"], ["logits"]),
        n("Softmax", ["logits"], ["alpha"], axis=-1),
        n("MatMul", ["alpha", "v"], ["ctx"]),
        n("Sub", ["ctx", "v"], ["change"]),
        n("Concat", ["ctx", "change"], ["out"], axis=-1),
    ]
    fn = helper.make_function(
        OPS_DOMAIN,
        "GaussianDiffGraphAttention",
        inputs=["q", "k", "v", "pos", "adj", "sigma"],
        outputs=["out"],
        nodes=nodes,
        opset_imports=[helper.make_opsetid("", opset)],
        attributes=[],
    )
    fn.doc_string = "finsta GaussianDiffGraphAttention, portable decomposition (DESIGN.md §4)"
    return fn


def _validate_edge_graph_attention(node: NodeProto) -> None:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    where = f"EdgeGraphAttention node {node.name or node.output[0]!r}"
    if "clamp" in attrs and not (math.isfinite(attrs["clamp"]) and attrs["clamp"] > 0):
        raise ValueError(f"{where}: clamp must be finite and > 0, got {attrs['clamp']}")


def _validate_no_attributes(node: NodeProto) -> None:
    if node.attribute:
        names = sorted(a.name for a in node.attribute)
        raise ValueError(f"{node.op_type} node {node.name or node.output[0]!r}: takes no attributes, got {names}")


# op_type -> (function builder, node validator)
PORTABLE_FUNCTIONS: dict[str, tuple[Callable[[int], FunctionProto], Callable[[NodeProto], None]]] = {
    "STGraphAttention": (st_graph_attention_function, _validate_st_graph_attention),
    "EdgeGraphAttention": (edge_graph_attention_function, _validate_edge_graph_attention),
    "GaussianDiffGraphAttention": (gaussian_diff_graph_attention_function, _validate_no_attributes),
}


def portable_function(op_type: str, opset: int = DEFAULT_OPSET) -> FunctionProto:
    """The portable ONNX function for one finsta op."""
    try:
        return PORTABLE_FUNCTIONS[op_type][0](opset)
    except KeyError:
        raise ValueError(f"no portable function for finsta op {op_type!r}; known: {sorted(PORTABLE_FUNCTIONS)}") from None


def _finsta_nodes(model: ModelProto):
    def walk(graph: onnx.GraphProto):
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

    Checks each finsta node's attributes first, so a bad value fails here with the node's name
    rather than silently computing something else in stock ONNX Runtime.
    """
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), DEFAULT_OPSET)
    present = {(f.domain, f.name) for f in model.functions}
    for node in _finsta_nodes(model):
        if node.op_type not in PORTABLE_FUNCTIONS:
            raise ValueError(f"finsta op {node.op_type!r} (node {node.name!r}) has no portable function")
        PORTABLE_FUNCTIONS[node.op_type][1](node)
        if (OPS_DOMAIN, node.op_type) not in present:
            model.functions.append(portable_function(node.op_type, opset))
            present.add((OPS_DOMAIN, node.op_type))
    if present and not any(o.domain == OPS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(OPS_DOMAIN, OPS_VERSION))
    return model
