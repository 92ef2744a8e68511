"""An existing ONNX image encoder as a frozen frame backbone (``frame_backbone: onnx:PATH``).

Training runs the encoder in ONNX Runtime (its features are cached; no PyTorch copy exists). Exporting a
video tower over it traces a placeholder node where the encoder runs (domain ``finsta.encoder``), and
:func:`inline_encoders` then puts the user's graph in its place: one video graph, the user's encoder
composed with our structural head.

What is detected from the graph and what can be declared (``onnx:PATH?key=value&...``):

* ``input``: the one non-initializer input (detected); it must be float32 of rank 4;
* ``layout`` ``NCHW`` | ``NHWC``: from which axis is 3 (declare it when both are);
* ``size``: from the static spatial dims (declare it when they are symbolic);
* ``tokens``: the output holding the tokens [N, L, C] (default: the first float output of rank 3);
* ``cls`` ``first`` | ``none``: whether token 0 is a CLS token (default: first when L - 1 is a square
  number, none when L is; with none the CLS feature is the tokens' mean);
* ``mean`` / ``std``: three numbers each on the 0..255 scale (``mean=122.8,116.7,104.1``); also read from
  the model's metadata_props ``finsta.mean`` / ``finsta.std``; default OpenAI CLIP's, with a warning.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from .base import FrameBackbone, FramePreprocess

log = logging.getLogger(__name__)

ENCODER_DOMAIN = "finsta.encoder"  # the placeholder node's domain: never left in an exported graph
ENCODER_OP = "OnnxEncoder"
LAYOUTS = ("NCHW", "NHWC")
DECLARABLE = ("layout", "size", "tokens", "cls", "mean", "std")
_CLIP_MEAN = (122.7709383, 116.7460125, 104.09373615)  # OpenAI CLIP's mean/std on the 0..255 scale
_CLIP_STD = (68.5005327, 66.6321579, 70.32316305)


class OnnxEncoderError(ValueError):
    """An ONNX encoder that cannot serve as a frame backbone; the message names the file and what is wrong."""


@dataclass(frozen=True)
class EncoderSpec:
    """How to feed the encoder and read it: what was detected, overridden by what was declared."""

    path: Path
    input: str
    layout: str
    size: int
    tokens: str
    cls: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def parse_name(spec: str) -> tuple[Path, dict[str, str]]:
    """``PATH?key=value&...`` (the part after ``onnx:``) -> (path, declarations); unknown keys are refused."""
    path, _, query = spec.partition("?")
    decl = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    unknown = sorted(set(decl) - set(DECLARABLE))
    if unknown:
        raise OnnxEncoderError(f"onnx:{spec}: unknown declaration {unknown} (known: {', '.join(DECLARABLE)})")
    return Path(path), decl


def _dims(vi: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in vi.type.tensor_type.shape.dim]


def _three(text: str, key: str, where: str) -> tuple[float, float, float]:
    try:
        vals = tuple(float(x) for x in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 3 or not all(math.isfinite(v) for v in vals) or (key == "std" and min(vals) <= 0):
        raise OnnxEncoderError(
            f"{where}: {key} must be three finite numbers (0..255 scale{', > 0' if key == 'std' else ''}), got {text!r}"
        )
    return vals  # type: ignore[return-value]


def inspect_encoder(path: Path, decl: dict[str, str]) -> EncoderSpec:
    """Detects the input, layout, size and token output of the ONNX encoder at ``path``, applying ``decl``."""
    where = f"ONNX encoder {path}"
    if not path.is_file():
        raise OnnxEncoderError(f"{where}: file not found")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and others for a file that is not a model
        raise OnnxEncoderError(f"{where}: not an ONNX model ({e})") from None
    g = model.graph
    init = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in init]
    if len(inputs) != 1:
        raise OnnxEncoderError(f"{where}: expected one image input, got {len(inputs)}: {[i.name for i in inputs]}")
    x = inputs[0]
    shape = _dims(x)
    if x.type.tensor_type.elem_type != onnx.TensorProto.FLOAT or len(shape) != 4:
        dtype = (
            onnx.helper.tensor_dtype_to_np_dtype(x.type.tensor_type.elem_type) if x.type.tensor_type.elem_type else "?"
        )
        raise OnnxEncoderError(
            f"{where}: input {x.name!r} must be float32 images of rank 4 (NCHW or NHWC), got {dtype} {shape}"
        )
    layout = decl.get("layout", "").upper() or None
    if layout is None:
        candidates = [lay for lay, ax in (("NCHW", 1), ("NHWC", 3)) if shape[ax] == 3]
        if len(candidates) != 1:
            raise OnnxEncoderError(
                f"{where}: cannot tell the layout of input {x.name!r} {shape}: declare layout=NCHW|NHWC"
            )
        layout = candidates[0]
    if layout not in LAYOUTS:
        raise OnnxEncoderError(f"{where}: layout must be one of {LAYOUTS}, got {decl['layout']!r}")
    hw = shape[2:4] if layout == "NCHW" else shape[1:3]
    channels = shape[1] if layout == "NCHW" else shape[3]
    if channels not in (3, "?") and not isinstance(channels, str):
        raise OnnxEncoderError(f"{where}: input {x.name!r} {shape} has {channels} channels in layout {layout}, not 3")
    if "size" in decl:
        if not decl["size"].isdigit() or int(decl["size"]) < 1:
            raise OnnxEncoderError(f"{where}: size must be a positive integer, got {decl['size']!r}")
        size = int(decl["size"])
        if any(isinstance(d, int) and d != size for d in hw):
            raise OnnxEncoderError(f"{where}: declared size {size} but input {x.name!r} is {shape}")
    elif all(isinstance(d, int) and d > 0 for d in hw) and hw[0] == hw[1]:
        size = int(hw[0])
    else:
        raise OnnxEncoderError(f"{where}: input {x.name!r} {shape} has no fixed square size: declare size=S")
    outputs = {o.name: o for o in g.output}
    if "tokens" in decl:
        if decl["tokens"] not in outputs:
            raise OnnxEncoderError(
                f"{where}: tokens output {decl['tokens']!r} is not an output (outputs: {sorted(outputs)})"
            )
        tokens = decl["tokens"]
    else:
        rank3 = [
            o.name for o in g.output if o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT and len(_dims(o)) == 3
        ]
        if not rank3:
            raise OnnxEncoderError(
                f"{where}: no float output of rank 3 (tokens [N, L, C]) among {[(o.name, _dims(o)) for o in g.output]}; "
                "declare tokens=OUTPUT"
            )
        tokens = rank3[0]
    meta = {p.key: p.value for p in model.metadata_props}
    mean_s, std_s = decl.get("mean", meta.get("finsta.mean")), decl.get("std", meta.get("finsta.std"))
    if mean_s is None or std_s is None:
        log.warning("%s: no mean/std declared (onnx:PATH?mean=..&std=..); using OpenAI CLIP's", where)
    mean = _three(mean_s, "mean", where) if mean_s is not None else _CLIP_MEAN
    std = _three(std_s, "std", where) if std_s is not None else _CLIP_STD
    cls = decl.get("cls", "")
    if cls not in ("", "first", "none"):
        raise OnnxEncoderError(f"{where}: cls must be 'first' or 'none', got {cls!r}")
    return EncoderSpec(path, x.name, layout, size, tokens, cls, mean, std)


class OnnxFrameBackbone(FrameBackbone):
    """A frozen ONNX image encoder: normalised pixels [N, 3, S, S] -> (patch tokens [N, P, C], cls [N, C])."""

    def __init__(self, spec: EncoderSpec):
        super().__init__()
        import onnxruntime as ort

        self.spec = spec
        self.sha256 = hashlib.sha256(spec.path.read_bytes()).hexdigest()
        so = ort.SessionOptions()
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(spec.path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT's own exception types
            raise OnnxEncoderError(f"ONNX encoder {spec.path}: ONNX Runtime cannot load it: {e}") from None
        self.preprocess = FramePreprocess(size=spec.size, mean=spec.mean, std=spec.std)
        probe = self._run(np.zeros((1, 3, spec.size, spec.size), np.float32))
        if probe.ndim != 3:
            raise OnnxEncoderError(
                f"ONNX encoder {spec.path}: output {spec.tokens!r} is {list(probe.shape)}, not [N, L, C]"
            )
        L, C = probe.shape[1:]
        cls = spec.cls or ("first" if math.isqrt(L - 1) ** 2 == L - 1 and L > 1 else "none")
        P = L - 1 if cls == "first" else L
        side = math.isqrt(P)
        if P < 1 or side * side != P:
            raise OnnxEncoderError(
                f"ONNX encoder {spec.path}: output {spec.tokens!r} has {L} tokens: with cls={cls} that is {P} patch "
                "tokens, not a square grid"
            )
        self.cls_first = cls == "first"
        self.out_dim, self.grid, self.tokens_per_frame, self.length = int(C), (side, side), P, int(L)

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        x = pixels if self.spec.layout == "NCHW" else pixels.transpose(0, 2, 3, 1)
        return self.session.run([self.spec.tokens], {self.spec.input: np.ascontiguousarray(x, np.float32)})[0]

    def forward(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        x = pixels if self.spec.layout == "NCHW" else pixels.permute(0, 2, 3, 1)
        if torch.onnx.is_in_onnx_export():  # a placeholder that inline_encoders replaces by the encoder's graph
            out = torch.onnx.ops.symbolic(
                f"{ENCODER_DOMAIN}::{ENCODER_OP}",
                (x,),
                attrs={"sha256": self.sha256},
                dtype=torch.float32,
                shape=(x.shape[0], self.length, self.out_dim),
                version=1,
            )
        else:
            out = torch.from_numpy(self._run(pixels.detach().cpu().numpy()))
        if self.cls_first:
            return out[:, 1:], out[:, 0]
        return out, out.mean(dim=1)

    def encoder_proto(self, opset: int) -> onnx.ModelProto:
        """The encoder's model at ``opset`` of the default domain (to be inlined into a graph of that opset)."""
        model = onnx.load(str(self.spec.path))
        own = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
        if own != opset:
            try:
                model = onnx.version_converter.convert_version(model, opset)
            except Exception as e:  # the converter raises plain RuntimeErrors
                raise OnnxEncoderError(
                    f"ONNX encoder {self.spec.path}: cannot convert opset {own} to {opset}: {e}"
                ) from None
        return model


def onnx_frame_backbone(spec: str) -> FrameBackbone:
    """``PATH?declarations`` (the name after ``onnx:``) as a frozen frame backbone."""
    path, decl = parse_name(spec)
    return OnnxFrameBackbone(inspect_encoder(path, decl)).eval()


def inline_encoders(proto: onnx.ModelProto, module: nn.Module) -> int:
    """Replaces each encoder placeholder in ``proto`` (traced from ``module``) by its ONNX encoder's graph,
    names prefixed so that nothing collides; returns how many were inlined."""
    encoders = {m.sha256: m for m in module.modules() if isinstance(m, OnnxFrameBackbone)}
    g = proto.graph
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    done = 0
    for idx in [i for i, n in enumerate(g.node) if n.domain == ENCODER_DOMAIN][::-1]:
        node = g.node[idx]
        sha = next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "sha256")
        enc = encoders[sha.decode() if isinstance(sha, bytes) else sha]
        sub = enc.encoder_proto(opset)
        prefix = f"encoder{done}/"
        rename = {enc.spec.input: node.input[0], enc.spec.tokens: node.output[0]}

        def name(n: str, rename=rename, prefix=prefix) -> str:
            return "" if not n else rename.get(n, prefix + n)

        new_nodes = []
        for n in sub.graph.node:
            c = onnx.NodeProto()
            c.CopyFrom(n)
            c.name = prefix + (n.name or n.op_type)
            c.input[:] = [name(i) for i in n.input]
            c.output[:] = [name(o) for o in n.output]
            _rename_subgraphs(c, name)
            new_nodes.append(c)
        for t in sub.graph.initializer:
            c = onnx.TensorProto()
            c.CopyFrom(t)
            c.name = name(t.name)
            g.initializer.append(c)
        for vi in sub.graph.value_info:
            c = onnx.ValueInfoProto()
            c.CopyFrom(vi)
            c.name = name(vi.name)
            g.value_info.append(c)
        del g.node[idx]
        for k, n in enumerate(new_nodes):
            g.node.insert(idx + k, n)
        have = {(o.domain or "") for o in proto.opset_import}
        for o in sub.opset_import:
            if (o.domain or "") not in have and o.domain != "ai.onnx":
                proto.opset_import.append(o)
        have_fn = {(f.domain, f.name) for f in proto.functions}
        proto.functions.extend(f for f in sub.functions if (f.domain, f.name) not in have_fn)
        done += 1
    for i in [k for k, o in enumerate(proto.opset_import) if o.domain == ENCODER_DOMAIN][::-1]:
        del proto.opset_import[i]
    return done


def _rename_subgraphs(node: onnx.NodeProto, name) -> None:
    """Names inside If/Loop/Scan bodies that refer to the outer graph follow the renaming too."""
    for a in node.attribute:
        for sg in [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs):
            for n in sg.node:
                n.input[:] = [name(i) for i in n.input]
                n.output[:] = [name(o) for o in n.output]
                _rename_subgraphs(n, name)
            for coll in (sg.input, sg.output, sg.value_info):
                for vi in coll:
                    vi.name = name(vi.name)
            for t in sg.initializer:
                t.name = name(t.name)
