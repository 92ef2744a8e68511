"""fp16 and int8 bundles (docs/bundle.md): a pass over the fp32 bundle that ``export_bundle`` wrote.

* ``int8`` (CPU): the video tower's convolutional backbone is quantized statically (QDQ: Conv and the
  Clip/Relu after it; weights int8 per channel in 7 bits, activations uint8) with ranges calibrated on
  frames the caller hands in (the run's training frames: ``finsta-export`` decodes them). The stem (a conv
  over the 3 image channels) stays float32, and so does the text tower: its MatMuls quantized dynamically
  (int8 weights per channel) ran 1.7x faster but cost the demo 0.025-0.05 synthetic R@1 (target: 0.02).
  ONNX Runtime fuses each DQ -> Conv -> Q into one QLinearConv (NHWC, u8 x s8). Its calibrator opens a
  plain session, without our op library, so a custom-flavour graph is calibrated through its portable twin
  (the same graph plus the portable functions) and the functions are dropped again. The quantizer leaves finsta nodes float32 (it never
  touches a node it does not know, nor a function body).
* ``fp16`` (GPU): weights and arithmetic float16 with graph inputs and outputs as declared; finsta
  nodes stay float32 with Casts around them (the converter's block list, which *replaces* its default
  list, so the default is extended, not dropped).

The scorer (a max over cosines of a few vectors) stays float32 in both. The result is compared with the
fp32 bundle on frames not used for calibration: every float output's lowest row cosine must reach
``MIN_COSINE[precision]``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from finsta_rt.bundle import PRECISIONS, Bundle
from finsta_rt.model import Model

from ..nn import OPS
from .passes import CHECK_TEXTS, check_frames, compare_bundles, require, rewrite_bundle
from .portable import OPS_DOMAIN, attach_portable_functions

log = logging.getLogger(__name__)

__all__ = ["MIN_COSINE", "PRECISIONS", "PrecisionError", "convert_bundle"]

# Against the fp32 bundle, the lowest row cosine of every float output. int8's bound only catches a broken
# conversion (a Clip range left to the conv output gave 0.10); its accuracy is benchmarks/bench_precision.py's
# (the demo's video embedding: 0.95 on held-out synthetic clips).
MIN_COSINE = {"fp16": 0.999, "int8": 0.6}
MAX_SCORE_DIFF = {"fp16": 2e-3, "int8": 0.3}  # scores are cosines in [-1, 1]
MAX_MISMATCH_RATE = {"fp16": 0.01, "int8": 0.05}  # integer outputs (an argmax) that may flip
BACKBONE_OPS = ["Conv", "Clip", "Relu"]  # Clip/Relu too: their output range replaces the conv output's
MAX_STEM_TERMS = 147  # a Conv over the image whose dot product is at most 3x7x7 (the stems of CNNs) stays float32
MIN_CALIBRATION_CLIPS = 2


class PrecisionError(ValueError):
    """A precision that cannot be made: unknown, or int8 without calibration frames."""


def check_precision(precision: str, calibration: np.ndarray | None, preprocess=None) -> None:
    """Refuses an unknown precision and int8 without usable calibration frames (before anything is exported)."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "int8":
        return
    if calibration is None or len(calibration) < MIN_CALIBRATION_CLIPS:
        got = "none" if calibration is None else f"{len(calibration)} clip(s)"
        raise PrecisionError(
            f"precision int8 needs at least {MIN_CALIBRATION_CLIPS} calibration clips (uint8 [N, T, S, S, 3]) "
            f"to set the backbone's activation ranges, got {got}: keep the run's training data where its "
            "config says or pass --calibration FRAMES.npy|VIDEO_DIR"
        )
    c = calibration
    if not isinstance(c, np.ndarray) or c.dtype != np.uint8 or c.ndim != 5 or c.shape[-1] != 3:
        desc = f"{c.dtype} {list(c.shape)}" if isinstance(c, np.ndarray) else type(c).__name__
        raise PrecisionError(f"calibration frames must be uint8 [N, T, S, S, 3], got {desc}")
    if preprocess is not None and c.shape[2:4] != (preprocess.size, preprocess.size):
        raise PrecisionError(
            f"calibration frames are {c.shape[2]}x{c.shape[3]}, the bundle takes {preprocess.size}x{preprocess.size}"
        )


def _no_portable_functions(proto: onnx.ModelProto) -> onnx.ModelProto:
    keep = [f for f in proto.functions if f.domain != OPS_DOMAIN]
    del proto.functions[:]
    proto.functions.extend(keep)
    return proto


def _without_value_info(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy without the exporter's intermediate shapes: the quantizer re-infers them and refuses a
    traced shape that inference contradicts ("Inferred shape and existing shape differ")."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    del proto.graph.value_info[:]
    return proto


def _feeds(model: Model, frames: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
    for clip in frames:
        yield {"frames": clip[None], **model.video_inputs(clip[None])}


def quantize_video(proto: onnx.ModelProto, model: Model, frames: np.ndarray, method: str = "MinMax") -> onnx.ModelProto:
    """Static QDQ int8 of the convolutional backbone, calibrated on ``frames`` fed one clip at a time."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = _feeds(model, frames)

        def get_next(self):
            return next(self.it, None)

    had_functions = any(f.domain == OPS_DOMAIN for f in proto.functions)
    keep_float = stem_nodes(proto)
    portable = attach_portable_functions(_without_value_info(proto))
    with tempfile.TemporaryDirectory(prefix="finsta-int8-") as d:
        src, dst = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        onnx.save(portable, src)
        quantize_static(
            src,
            dst,
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=BACKBONE_OPS,
            per_channel=True,
            # U8S8 with 7-bit weights: AVX2 without VNNI sums u8 x s8 pairs in int16, which 8-bit weights overflow;
            # S8S8 (ORT's default) measured slower than fp32 on such a CPU (docs/bundle.md, bench_precision.py)
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            reduce_range=True,
            nodes_to_exclude=keep_float,
            calibrate_method=getattr(CalibrationMethod, method),
        )
        out = onnx.load(dst)
    return out if had_functions else _no_portable_functions(out)


def stem_nodes(proto: onnx.ModelProto) -> list[str]:
    """The stem convs (over at most 4 image channels, a dot product of at most MAX_STEM_TERMS: not a ViT's patch
    embedding) and the Clip/Relu right after them, kept float32: ONNX Runtime's int8 kernels run such a short
    dot product (27 terms for EfficientNet's 3x3) no faster than float32, and its 7-bit weights cost accuracy
    (the demo with an int8 stem: synthetic R@1 0.60 vs 0.65, docs/bundle.md)."""
    weights = {t.name: t for t in proto.graph.initializer}

    def is_stem(n: onnx.NodeProto) -> bool:
        w = weights.get(n.input[1]) if n.op_type == "Conv" and len(n.input) > 1 else None
        if w is None or len(w.dims) != 4 or next((a.i for a in n.attribute if a.name == "group"), 1) != 1:
            return False
        return w.dims[1] <= 4 and w.dims[1] * w.dims[2] * w.dims[3] <= MAX_STEM_TERMS

    stems = [n for n in proto.graph.node if is_stem(n)]
    outputs = {n.output[0] for n in stems}
    after = [n for n in proto.graph.node if n.op_type in ("Clip", "Relu") and n.input[0] in outputs]
    return [n.name for n in stems + after]


def to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """float16 weights and arithmetic; finsta nodes (and graph inputs/outputs) stay float32 behind Casts."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(OPS))  # the list replaces the default: extend it
    out = convert_float_to_float16(proto, keep_io_types=True, op_block_list=block)
    _topological_sort(out.graph)  # the converter appends the Casts it puts before a blocked node at the end
    return out


def _topological_sort(graph: onnx.GraphProto) -> None:
    """Orders ``graph.node`` so that each node follows the producers of its inputs (stable otherwise)."""
    produced = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    nodes, ordered = list(graph.node), []
    while nodes:
        ready = [n for n in nodes if all(i in produced for i in n.input)]
        if not ready:
            raise ValueError(f"graph {graph.name!r} has a cycle or an input no node produces: {nodes[0].name!r}")
        ids = {id(n) for n in ready}
        nodes = [n for n in nodes if id(n) not in ids]
        for n in ready:
            produced.update(n.output)
        ordered += ready
    del graph.node[:]
    graph.node.extend(ordered)


def convert_bundle(
    src: str | Path,
    precision: str,
    out: str | Path,
    calibration: np.ndarray | None = None,
    overwrite: bool = False,
    verify: bool = True,
    method: str = "MinMax",
) -> Path:
    """Writes the ``precision`` version of the fp32 bundle ``src`` into ``out``; returns ``out``.

    ``calibration``: uint8 clips [N, T, S, S, 3] (int8 only); the last quarter (at least one) is kept
    out of calibration to check the result on. ``method``: ONNX Runtime's calibration method
    (``MinMax``, ``Percentile``, ``Entropy``)."""
    source = Bundle.load(src)
    check_precision(precision, calibration, source.preprocess)
    if source.flavour == "flat":  # the converters mistype the inlined bodies (CastLike, reused Cast names)
        raise PrecisionError(
            f"{source.root} is flat: convert its custom or portable bundle, then flatten the result "
            "(finsta-export --flavour flat --precision ... does both, in that order)"
        )
    if source.precision != "fp32":
        raise PrecisionError(f"{source.root} is {source.precision} already; convert an fp32 bundle")
    if precision == "fp32":
        raise PrecisionError(f"{source.root} is fp32 already: nothing to convert")
    ref = Model(source, device="cpu")
    if precision == "int8":
        held = max(1, len(calibration) // 4)
        calib, check = calibration[:-held], calibration[-held:]
    else:
        calib, check = None, check_frames(source)
    how: dict[str, str] = {}

    def graph_pass(name: str, proto: onnx.ModelProto) -> onnx.ModelProto | None:
        if name == "scorer" or (name == "text" and precision == "int8"):
            how[name] = "float32 (unchanged)"
            return None
        if precision == "fp16":
            how[name] = "float16, finsta nodes float32"
            return to_fp16(proto)
        how[name] = (
            f"int8 static QDQ of {'/'.join(BACKBONE_OPS)} (U8S8, 7-bit weights, {method}, {len(calib)} clips), "
            "stem and rest float32"
        )
        return quantize_video(proto, ref, calib, method)

    def check_result(source: Bundle, new: Path) -> None:
        if verify:
            report = compare_bundles(ref, Bundle.load(new), check, CHECK_TEXTS)
            what = f"{precision} bundle {new} against fp32 {source.root}"
            require(report, MIN_COSINE[precision], MAX_SCORE_DIFF[precision], what, MAX_MISMATCH_RATE[precision])

    exporter = dict(source.manifest.get("exporter") or {})
    exporter["precision"] = how  # filled by graph_pass before the manifest is written
    return rewrite_bundle(
        source.root, out, graph_pass, {"precision": precision, "exporter": exporter}, check_result, overwrite
    )
