"""What a family hands the exporter for one trained run, and the export of it as a bundle.

Which family a run is, and how its towers are rebuilt from the checkpoint, is the family's
business (finsta.families: ``towers_from_run``, ``export_run``); this layer knows none of them."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from .bundle import ExportSpec, GraphBuilder, export_bundles
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

    fp32 custom and portable bundles are written by ``export_bundles`` (checked against PyTorch); a
    precision other than fp32 and the flat flavour are passes over that bundle, in that order (the
    converters need the finsta nodes to keep float32 and mistype inlined bodies), each checked against
    the bundle it starts from. ``calibration``: uint8 clips [N, T, S, S, 3] for int8."""
    return export_flavours(parts, {flavour: out_dir}, name, overwrite, verify, precision, calibration)[flavour]


def export_flavours(
    parts: ExportParts,
    outs: Mapping[str, str | Path | None],
    name: str | None = None,
    overwrite: bool = False,
    verify: bool = True,
    precision: str = "fp32",
    calibration: np.ndarray | None = None,
) -> dict[str, Path]:
    """As :func:`export_parts`, one bundle per flavour in ``outs`` ({flavour: directory or None for the
    default}) from one trace of each graph (what costs the time); returns {flavour: directory}."""
    bad = [f for f in outs if f not in FLAVOURS]
    if bad or not outs:
        raise ValueError(f"flavour must be one of {', '.join(FLAVOURS)}, got {bad[0] if bad else 'none'!r}")
    check_precision(precision, calibration, parts.spec.preprocess)  # before minutes of tracing
    if name:
        parts.spec.name = name
    dirs = {fl: Path(o) if o else bundle_dir(parts.spec.name, fl, precision) for fl, o in outs.items()}
    for out in dirs.values():
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    # fp32 custom/portable bundles are the export's own output; flat and other precisions are passes
    # over the fp32 bundle of their base flavour (flat: portable), written into a work folder first.
    base = {fl: "portable" if fl == "flat" else fl for fl in dirs}
    direct = {fl: d for fl, d in dirs.items() if fl == base[fl] and precision == "fp32"}
    passes = [fl for fl in dirs if fl not in direct]
    first = dirs[passes[0]] if passes else None  # the work folder sits beside it (same file system as the target)
    if first is not None:
        first.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix=f".{first.name}.steps.", dir=first.parent)
        if first is not None
        else contextlib.nullcontext() as work
    ):
        traced = {b: direct.get(b) or Path(work) / b for b in set(base.values())}
        export_bundles(
            parts.video,
            parts.text,
            parts.spec,
            traced,
            overwrite=overwrite,
            verify=verify,
            scorer=parts.scorer,
            graphs=parts.graphs,
        )
        for fl in passes:
            path = traced[base[fl]]
            steps = ([precision] if precision != "fp32" else []) + (["flat"] if fl == "flat" else [])
            for i, step in enumerate(steps):
                dest = dirs[fl] if i == len(steps) - 1 else Path(work) / f"{fl}-{step}"
                if step == "flat":
                    path = flatten_bundle(path, dest, overwrite=overwrite, verify=verify)
                else:
                    path = convert_bundle(path, step, dest, calibration, overwrite=overwrite, verify=verify)
    return dirs
