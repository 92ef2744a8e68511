"""What a family hands the exporter for one trained run, and the export of it as a bundle.

Which family a run is, and how its towers are rebuilt from the checkpoint, is the family's
business (finsta.families: ``towers_from_run``, ``export_run``); this layer knows none of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .bundle import ExportSpec, GraphBuilder, export_bundle


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


def export_parts(
    parts: ExportParts,
    flavour: str = "custom",
    out_dir: str | Path | None = None,
    name: str | None = None,
    overwrite: bool = False,
    verify: bool = True,
) -> Path:
    """Exports ``parts`` as a bundle (``name`` overrides the spec's); returns the bundle directory."""
    if name:
        parts.spec.name = name
    return export_bundle(
        parts.video,
        parts.text,
        parts.spec,
        out_dir=out_dir,
        flavour=flavour,
        overwrite=overwrite,
        verify=verify,
        scorer=parts.scorer,
        graphs=parts.graphs,
    )
