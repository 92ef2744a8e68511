"""What a family hands the exporter for one trained run, and the export of it as a bundle.

Which family a run is, and how its towers are rebuilt from the checkpoint, is the family's
business (finsta.families: ``towers_from_run``, ``export_run``); this layer knows none of them."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from .bundle import ExportSpec, GraphBuilder, export_bundle
from .flat import flatten_bundle
from .precision import check_precision, convert_bundle

FLAVOURS = ("custom", "portable", "flat")


@dataclass
class ExportParts:
    """The modules of a bundle and how to trace them."""

    video: nn.Module
    text: nn.Module
    spec: ExportSpec
    scorer: nn.Module | None = None  # None: STGT's max-over-queries Scorer
    graphs: GraphBuilder | None = None  # None: export.bundle.stgt_graphs

    def towers(self) -> tuple[nn.Module, nn.Module, ExportSpec, nn.Module | None]:
        return self.video, self.text, self.spec, self.scorer


def bundle_dir(name: str, flavour: str = "custom", precision: str = "fp32") -> Path:
    """bundles/NAME, then -portable or -flat, then -fp16 or -int8 (fp32 and custom add nothing)."""
    suffix = "".join(f"-{s}" for s in (flavour, precision) if s not in ("custom", "fp32"))
    return Path("bundles") / f"{name}{suffix}"


def export_parts(
    parts: ExportParts,
    flavour: str = "custom",
    out_dir: str | Path | None = None,
    name: str | None = None,
    overwrite: bool = False,
    verify: bool = True,
    precision: str = "fp32",
    calibration: np.ndarray | None = None,
) -> Path:
    """Exports ``parts`` as a bundle (``name`` overrides the spec's); returns the bundle directory.

    fp32 custom and portable bundles are written by ``export_bundle`` (checked against PyTorch); a
    precision other than fp32 and the flat flavour are passes over that bundle, in that order (the
    converters need the finsta nodes to keep float32 and mistype inlined bodies), each checked against
    the bundle it starts from. ``calibration``: uint8 clips [N, T, S, S, 3] for int8."""
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {', '.join(FLAVOURS)}, got {flavour!r}")
    check_precision(precision, calibration, parts.spec.preprocess)  # before minutes of tracing
    if name:
        parts.spec.name = name
    out = Path(out_dir) if out_dir else bundle_dir(parts.spec.name, flavour, precision)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    steps = (["portable"] if flavour == "flat" else [flavour]) + ([precision] if precision != "fp32" else [])
    steps += ["flat"] if flavour == "flat" else []
    if len(steps) == 1:
        return _export_fp32(parts, flavour, out, overwrite, verify)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.steps.", dir=out.parent) as work:
        path = _export_fp32(parts, steps[0], Path(work) / steps[0], False, verify)
        for i, step in enumerate(steps[1:], 1):
            dest = out if i == len(steps) - 1 else Path(work) / step
            if step == "flat":
                path = flatten_bundle(path, dest, overwrite=overwrite, verify=verify)
            else:
                path = convert_bundle(path, step, dest, calibration, overwrite=overwrite, verify=verify)
    return path


def _export_fp32(parts: ExportParts, flavour: str, out: Path, overwrite: bool, verify: bool) -> Path:
    return export_bundle(
        parts.video,
        parts.text,
        parts.spec,
        out_dir=out,
        flavour=flavour,
        overwrite=overwrite,
        verify=verify,
        scorer=parts.scorer,
        graphs=parts.graphs,
    )
