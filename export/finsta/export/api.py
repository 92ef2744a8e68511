"""The public export of any module built on our ops: :func:`export_onnx` (docs/extending.md).

It traces with ``torch.onnx.export(dynamo=True)`` at our opset, clamps the IR version to what ONNX Runtime
reads, writes flavour ``custom`` (finsta nodes: run with the op library) or ``portable`` (plus model-local
functions: stock ONNX Runtime), and verifies: fresh random inputs whose dynamic dims take *other* sizes than
the traced ``args`` run through ONNX Runtime and PyTorch eager, compared per output (max abs error, cosine).
An ONNX frame encoder inside the module (``onnx:PATH`` backbones) is inlined, so the file is one graph.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from .portable import attach_portable_functions

log = logging.getLogger(__name__)
for _noisy in ("onnx_ir", "onnxscript"):  # the exporter's passes log every rewrite at INFO
    logging.getLogger(_noisy).setLevel(logging.WARNING)

IR_VERSION = 10  # onnxruntime 1.31 reads IR <= 13; onnx 1.23 would write 14 (docs/environment.md)
OPSET = 18
FLAVOURS = ("custom", "portable")


class ExportError(RuntimeError):
    """The export failed or the exported model does not reproduce PyTorch."""


class _DropMessages(logging.Filter):
    def __init__(self, *prefixes: str):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


@contextlib.contextmanager
def exporter_noise_silenced():
    """The torch exporter's known, harmless noise, silenced only while it exports: a warning per
    torchvision op when torchvision is absent (we export none), a FutureWarning from torch's own
    use of a deprecated pytree API, and a UserWarning per dynamic axis that shares its name's
    constraints (our axis names are chosen per graph: the merge is what we ask for)."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    drop = _DropMessages("torchvision is not installed")
    registration.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
            warnings.filterwarnings("ignore", r"# The axis name: .* will not be used, since it shares", UserWarning)
            yield
    finally:
        registration.removeFilter(drop)


def trace(
    module: nn.Module, args: tuple, input_names: list[str], output_names: list[str], dynamic_shapes: Any
) -> onnx.ModelProto:
    """``module`` traced to ONNX at :data:`OPSET`, IR version at most :data:`IR_VERSION`."""
    module.eval()
    with torch.no_grad(), exporter_noise_silenced():
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=dynamic_shapes,
            opset_version=OPSET,
            verbose=False,
        )
    proto = program.model_proto
    proto.ir_version = min(proto.ir_version, IR_VERSION)
    return proto


def finish(
    proto: onnx.ModelProto, flavour: str, meta: Mapping[str, str], path: Path, module: nn.Module | None = None
) -> None:
    """Inlines the ONNX encoders ``module`` holds, adds the portable functions (flavour portable), sets
    ``metadata_props`` to ``meta``, checks the model and saves it to ``path``."""
    if module is not None:
        from ..models.backbones.onnx_encoder import inline_encoders

        inline_encoders(proto, module)
    if flavour == "portable":
        attach_portable_functions(proto)
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


@dataclass
class OutputParity:
    """One output: its largest absolute error and its cosine (the smallest over rows of dim 0)."""

    max_abs_error: float
    cosine: float
    shape: list[int]


@dataclass
class ParityReport:
    """What :func:`export_onnx` measured: the shapes it fed (other than traced) and each output's parity."""

    path: Path
    flavour: str
    inputs: dict[str, list[int]]
    outputs: dict[str, OutputParity] = field(default_factory=dict)

    def __str__(self) -> str:
        rows = [f"{self.path} ({self.flavour}) on inputs {self.inputs}:"]
        rows += [f"  {n}: max abs error {o.max_abs_error:.3g}, cosine {o.cosine:.6f}" for n, o in self.outputs.items()]
        return "\n".join(rows)


def _dims_by_arg(module: nn.Module, args: tuple, dynamic_shapes: Any) -> list[dict[int, Any]]:
    """Per positional argument, its dynamic axes (axis -> Dim), from a dict keyed by forward's parameter
    names or a sequence in argument order."""
    out: list[dict[int, Any]] = [{} for _ in args]
    if dynamic_shapes is None:
        return out
    if isinstance(dynamic_shapes, Mapping):
        params = list(inspect.signature(module.forward).parameters)
        unknown = sorted(set(dynamic_shapes) - set(params[: len(args)]))
        if unknown:
            raise ValueError(f"dynamic_shapes names {unknown}, not arguments of forward {params[: len(args)]}")
        per = [dynamic_shapes.get(p) for p in params[: len(args)]]
    else:
        per = list(dynamic_shapes)
    for i, spec in enumerate(per):
        if isinstance(spec, Mapping):
            out[i] = dict(spec)
        elif isinstance(spec, Sequence):
            out[i] = {ax: d for ax, d in enumerate(spec) if d is not None}
    return out


def fresh_inputs(module: nn.Module, args: tuple, dynamic_shapes: Any, seed: int = 1) -> tuple[torch.Tensor, ...]:
    """Random inputs like ``args`` whose every dynamic dim takes another size (one more, or one less at its
    maximum; one Dim keeps one size across the inputs): floats with the example's mean and spread, integers
    within the example's range, booleans at random."""
    g = torch.Generator().manual_seed(seed)
    sizes: dict[str, int] = {}
    new = []
    for a, dims in zip(args, _dims_by_arg(module, args, dynamic_shapes)):
        shape = list(a.shape)
        for ax, d in dims.items():
            key = getattr(d, "__name__", None) or f"{id(a)}:{ax}"
            if key not in sizes:
                hi = getattr(d, "max", None)
                hi = math.inf if not isinstance(hi, int) else hi
                sizes[key] = shape[ax] + 1 if shape[ax] + 1 <= hi else max(shape[ax] - 1, getattr(d, "min", 1) or 1)
            shape[ax] = sizes[key]
        if a.dtype == torch.bool:
            new.append(torch.rand(shape, generator=g) < 0.5)
        elif a.dtype.is_floating_point:
            af = a.double()
            mean, std = float(af.mean()), float(af.std()) if a.numel() > 1 else 1.0
            new.append((torch.randn(shape, generator=g, dtype=torch.float64) * (std or 1.0) + mean).to(a.dtype))
        else:
            lo, hi = (int(a.min()), int(a.max())) if a.numel() else (0, 1)
            new.append(torch.randint(lo, hi + 1, shape, generator=g, dtype=a.dtype))
    return tuple(new)


def _session(path: Path, flavour: str):
    import onnxruntime as ort

    import finsta_rt

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if flavour == "custom":  # portable runs in stock ONNX Runtime: no op library
        finsta_rt.register(so)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _cosine(got: np.ndarray, ref: np.ndarray) -> float:
    a, b = got.astype(np.float64), ref.astype(np.float64)
    a, b = (a.reshape(len(a), -1), b.reshape(len(b), -1)) if a.ndim > 1 else (a[None], b[None])
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.where(
        den > 0, (a * b).sum(axis=1) / np.where(den > 0, den, 1.0), np.where(np.abs(a - b).max(1) == 0, 1.0, 0.0)
    )
    return float(cos.min()) if len(cos) else 1.0


def check_parity(
    path: Path,
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    input_names: list[str],
    output_names: list[str],
    flavour: str,
    min_cosine: float = 0.9999,
    max_abs_error: float = 1e-4,
) -> ParityReport:
    """Runs the ONNX file at ``path`` and ``module`` on ``inputs``; raises ExportError when an output's
    cosine is below ``min_cosine`` or its max abs error above ``max_abs_error`` (integer and boolean outputs
    must be equal)."""
    sess = _session(path, flavour)
    got = sess.run(output_names, {n: t.numpy() for n, t in zip(input_names, inputs)})
    with torch.no_grad():
        ref = module.eval()(*inputs)
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    report = ParityReport(Path(path), flavour, {n: list(t.shape) for n, t in zip(input_names, inputs)})
    bad = []
    for name, g_, r in zip(output_names, got, ref):
        r = r.detach().cpu().numpy()
        if g_.shape != r.shape:
            raise ExportError(
                f"{path}: output {name!r} has shape {list(g_.shape)} in ONNX Runtime, {list(r.shape)} in PyTorch"
            )
        err = float(np.abs(g_.astype(np.float64) - r.astype(np.float64)).max(initial=0.0))
        cos = _cosine(g_, r) if np.issubdtype(r.dtype, np.floating) else float(err == 0)
        report.outputs[name] = OutputParity(err, cos, list(r.shape))
        if not (cos >= min_cosine and err <= (max_abs_error if np.issubdtype(r.dtype, np.floating) else 0)):
            bad.append(
                f"{name}: max abs error {err:.3g} (limit {max_abs_error:g}), cosine {cos:.6f} (limit {min_cosine})"
            )
    if bad:
        raise ExportError(f"{path} ({flavour}) does not reproduce PyTorch on inputs {report.inputs}: " + "; ".join(bad))
    return report


def export_onnx(
    module: nn.Module,
    args: tuple | torch.Tensor,
    path: str | Path,
    *,
    flavour: str,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_shapes: Any = None,
    verify: bool = True,
    verify_inputs: tuple[torch.Tensor, ...] | None = None,
    min_cosine: float = 0.9999,
    max_abs_error: float = 1e-4,
    metadata: Mapping[str, str] | None = None,
) -> ParityReport | None:
    """Exports ``module`` traced on ``args`` to ``path`` as flavour ``custom`` or ``portable``.

    ``dynamic_shapes`` is torch.onnx.export's (keyed by forward's parameter names, axis -> torch.export.Dim).
    With ``verify`` the file is run on ``verify_inputs`` (default :func:`fresh_inputs`: every dynamic dim at
    another size than traced) and compared with ``module`` in eager PyTorch; returns the report, or raises
    ExportError naming each output that misses ``min_cosine`` / ``max_abs_error`` (the file stays at ``path``
    for inspection)."""
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}, got {flavour!r}")
    args = (args,) if isinstance(args, torch.Tensor) else tuple(args)
    input_names, output_names = list(input_names), list(output_names)
    if len(input_names) != len(args):
        raise ValueError(f"input_names {input_names} name {len(input_names)} inputs, args holds {len(args)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        proto = trace(module, args, input_names, output_names, dynamic_shapes)
    except Exception as e:  # torch.export's errors are long; say what was being exported first
        raise ExportError(f"cannot export {type(module).__name__} to {path}: {e}") from e
    finish(proto, flavour, dict(metadata or {}), path, module)
    if not verify:
        return None
    inputs = verify_inputs if verify_inputs is not None else fresh_inputs(module, args, dynamic_shapes)
    report = check_parity(path, module, tuple(inputs), input_names, output_names, flavour, min_cosine, max_abs_error)
    log.info("%s", report)
    return report
