"""The flat flavour (docs/bundle.md): every model-local function inlined, standard ONNX only.

Runtimes that refuse or ignore model-local functions (OpenVINO: "No conversion rule found for
operations: finsta.STGraphAttention"; tract; TensorRT) run a flat graph: each finsta node is
replaced by the body of its portable function (docs/ops.md), so no node and no opset import of the
``finsta`` domain is left. :func:`flatten_bundle` is a pass over a custom or portable bundle and
checks the result against it (cosine >= 0.9999, the bound of every export).
"""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx.inliner

from finsta_rt.bundle import Bundle

from .passes import CHECK_TEXTS, check_frames, compare_bundles, require, rewrite_bundle
from .portable import OPS_DOMAIN, attach_portable_functions

__all__ = ["flatten_bundle", "flatten_model"]


def flatten_model(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` with every model-local function inlined and no ``finsta`` domain left (a new model)."""
    proto = attach_portable_functions(onnx.ModelProto.FromString(proto.SerializeToString()))
    flat = onnx.inliner.inline_local_functions(proto)
    del flat.functions[:]
    kept = [o for o in flat.opset_import if o.domain != OPS_DOMAIN]
    del flat.opset_import[:]
    flat.opset_import.extend(kept)
    left = sorted({n.op_type for n in _all_nodes(flat.graph) if n.domain not in ("", "ai.onnx")})
    if left:
        raise ValueError(f"flattening left nodes of other domains: {left}")
    return flat


def _all_nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for a in node.attribute:
            for g in [a.g] if a.type == onnx.AttributeProto.GRAPH else a.graphs:
                yield from _all_nodes(g)


def flatten_bundle(
    src: str | Path, out: str | Path, overwrite: bool = False, verify: bool = True, min_cosine: float = 0.9999
) -> Path:
    """Writes the flat bundle of the custom or portable bundle ``src`` into ``out``; returns ``out``."""
    source = Bundle.load(src)
    if source.flavour == "flat":
        raise ValueError(f"{source.root} is flat already")

    def check(source: Bundle, new: Path) -> None:
        if verify:
            report = compare_bundles(source, Bundle.load(new), check_frames(source), CHECK_TEXTS)
            require(report, min_cosine, 1e-4, f"flat bundle {new} against {source.root}")

    update = {"flavour": "flat", "custom_ops": []}
    return rewrite_bundle(source.root, out, lambda _name, proto: flatten_model(proto), update, check, overwrite)
